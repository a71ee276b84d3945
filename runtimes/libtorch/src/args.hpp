// Command-line parsing:
//   ttd-libtorch-runner --model PATH --references PATH --out PATH [--threads N] [--fuser]
//                       [--format torchscript|aoti]
#pragma once

#include <string>
#include <vector>

namespace ttd {

struct Args {
  std::string model;
  std::string references;
  std::string out;
  int threads = 1;
  bool fuser = false;
  std::string format = "torchscript";  // "torchscript" (.pt archive) or "aoti" (.pt2 AOTInductor package)
};

// Throws StageError("args", ...) on unknown, missing or malformed arguments.
Args parse_args(const std::vector<std::string>& argv);

extern const char* const kUsage;

}  // namespace ttd
