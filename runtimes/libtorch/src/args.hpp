// Command-line parsing:
//   ttd-libtorch-runner --model PATH --references PATH --out PATH [--threads N] [--fuser]
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
};

// Throws StageError("args", ...) on unknown, missing or malformed arguments.
Args parse_args(const std::vector<std::string>& argv);

extern const char* const kUsage;

}  // namespace ttd
