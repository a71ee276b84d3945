// Command-line parsing:
//   ttd-libtorch-runner --model PATH --references PATH --out PATH [--threads N]
//                       [--fusion serving|fused|interpreter] [--fuser] [--format torchscript|aoti]
#pragma once

#include <string>
#include <vector>

namespace ttd {

struct Args {
  std::string model;
  std::string references;
  std::string out;
  int threads = 1;
  bool fuser = false;  // fusion != "serving"
  // serving: the build's own fuser flags, untouched (what a server of this build runs);
  // fused: the CPU TensorExpr fuser switched on, as a deployment that enables it would (fuses only with LLVM);
  // interpreter: also without LLVM, through NNC's interpreter (no server runs it; `--fuser` means this).
  std::string fusion = "serving";
  std::string format = "torchscript";  // "torchscript" (.pt archive) or "aoti" (.pt2 AOTInductor package)
};

// Throws StageError("args", ...) on unknown, missing or malformed arguments.
Args parse_args(const std::vector<std::string>& argv);

extern const char* const kUsage;

}  // namespace ttd
