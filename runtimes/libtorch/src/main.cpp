// ttd-libtorch-runner: the libtorch parity runner (docs/protocol.md, sections 2 and 3).
// stdout carries exactly one JSON line (result or error); details go to stderr.
#include <iostream>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "errors.hpp"
#include "fuser.hpp"
#include "runner.hpp"
#include "tensor_io.hpp"

namespace {

#ifdef TORCH_VERSION
const char* const kTorchVersion = TORCH_VERSION;
#else
const char* const kTorchVersion = "unknown";
#endif

// The JSON message is one line: a multi-line message (a TorchScript traceback) is cut to its
// first line plus its last non-empty line (the exception itself); stderr gets all of it.
std::string one_line(const std::string& message) {
  const auto first_nl = message.find('\n');
  if (first_nl == std::string::npos) return message;
  std::string head = message.substr(0, first_nl);
  std::string rest = message.substr(first_nl + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.pop_back();
  const auto last_nl = rest.rfind('\n');
  const std::string tail = last_nl == std::string::npos ? rest : rest.substr(last_nl + 1);
  return tail.empty() ? head : head + " " + tail;
}

int report_error(const std::string& stage, const std::string& message, int code) {
  std::cerr << "ttd-libtorch-runner: " << stage << " error: " << message << std::endl;
  if (stage == "args") std::cerr << ttd::kUsage << std::endl;
  nlohmann::json j = {{"error", {{"stage", stage}, {"message", one_line(message)}}}};
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return code;
}

int run(const std::vector<std::string>& argv) {
  // `--version`: which libtorch this runner was built against, for `ttd env list`.
  if (argv.size() == 1 && argv[0] == "--version") {
    std::cout << nlohmann::json{{"torch_version", kTorchVersion}}.dump() << std::endl;
    return 0;
  }
  const ttd::Args args = ttd::parse_args(argv);

  at::set_num_threads(args.threads);
  try {
    // Only allowed before any inter-op work has started; harmless to skip otherwise.
    at::set_num_interop_threads(args.threads);
  } catch (const std::exception& e) {
    std::cerr << "ttd-libtorch-runner: note: could not set inter-op threads: " << e.what() << std::endl;
  }
  // Read before any flag changes: what a server of this build runs with.
  const nlohmann::json build = ttd::fusion_build_facts();
  // A server warms up on production traffic; fused kernels appear from the profiling executor's second call. Without
  // any fuser that can act, a warm-up changes nothing, so it is skipped.
  const bool may_fuse = args.fuser || (build["texpr_fuser_enabled"].get<bool>() &&
                                       build["can_fuse_on_cpu"].get<bool>() && build["llvm_enabled"].get<bool>());
  if (args.fuser) {
    try {
      ttd::enable_cpu_tensorexpr_fuser(args.fusion);
    } catch (const std::exception& e) {
      throw ttd::StageError("load", std::string("cannot enable the TensorExpr fuser: ") + e.what());
    }
  }

  const std::unique_ptr<ttd::Model> model =
      args.format == "aoti" ? ttd::load_aoti(args.model, kTorchVersion) : ttd::load_torchscript(args.model);
  const std::vector<ttd::Case> cases = ttd::read_references(args.references);
  const auto outputs = ttd::run_cases(*model, cases, may_fuse && args.format == "torchscript" ? 3 : 0);
  ttd::write_outputs(args.out, outputs, {{"runtime", "libtorch"}, {"torch_version", kTorchVersion}});

  nlohmann::json j = {{"runtime", "libtorch"},
                      {"format", args.format},
                      {"torch_version", kTorchVersion},
                      {"threads", args.threads},
                      {"flags", {{"fuser", args.fuser}, {"mode", args.fusion}}},
                      {"fusion", build},
                      {"cases", cases.size()}};
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string stage = "run";  // for errors not tagged with a stage
  try {
    return run(args);
  } catch (const ttd::StageError& e) {
    return report_error(e.stage(), e.what(), e.stage() == "args" ? 2 : 1);
  } catch (const c10::Error& e) {
    return report_error(stage, e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return report_error(stage, e.what(), 1);
  } catch (...) {
    return report_error(stage, "unknown exception", 1);
  }
}
