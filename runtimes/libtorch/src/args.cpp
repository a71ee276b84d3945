#include "args.hpp"

#include <cerrno>
#include <cstdlib>

#include "errors.hpp"

namespace ttd {

const char* const kUsage =
    "usage: ttd-libtorch-runner --model ARTIFACT.pt --references REFS.safetensors "
    "--out OUTPUTS.safetensors [--threads N] [--fusion serving|fused|interpreter] [--fuser] "
    "[--format torchscript|aoti]";

namespace {

[[noreturn]] void bad(const std::string& message) { throw StageError("args", message); }

int parse_threads(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    bad("--threads: expected a positive integer, got '" + s + "'");
  errno = 0;
  const long v = std::strtol(s.c_str(), nullptr, 10);
  if (errno != 0 || v < 1 || v > 4096) bad("--threads: expected a positive integer up to 4096, got '" + s + "'");
  return static_cast<int>(v);
}

}  // namespace

Args parse_args(const std::vector<std::string>& argv) {
  Args args;
  bool have_model = false, have_refs = false, have_out = false, have_threads = false, have_format = false,
       have_fusion = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string flag = argv[i];
    std::string value;
    bool inline_value = false;
    const auto eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    auto take = [&](bool& seen) -> std::string {
      if (seen) bad(flag + " given more than once");
      seen = true;
      if (inline_value) {
        if (value.empty()) bad(flag + ": expected a value");
        return value;
      }
      if (i + 1 >= argv.size()) bad(flag + ": expected a value");
      return argv[++i];
    };
    if (flag == "--model") {
      args.model = take(have_model);
    } else if (flag == "--references") {
      args.references = take(have_refs);
    } else if (flag == "--out") {
      args.out = take(have_out);
    } else if (flag == "--threads") {
      args.threads = parse_threads(take(have_threads));
    } else if (flag == "--format") {
      args.format = take(have_format);
      if (args.format != "torchscript" && args.format != "aoti")
        bad("--format: expected torchscript or aoti, got '" + args.format + "'");
    } else if (flag == "--fusion") {
      args.fusion = take(have_fusion);
      if (args.fusion != "serving" && args.fusion != "fused" && args.fusion != "interpreter")
        bad("--fusion: expected serving, fused or interpreter, got '" + args.fusion + "'");
    } else if (flag == "--fuser") {
      if (inline_value) bad("--fuser takes no value");
      if (have_fusion) bad("--fuser is --fusion interpreter; give one of them");
      have_fusion = true;
      args.fusion = "interpreter";
    } else {
      bad("unknown argument '" + argv[i] + "'");
    }
  }
  if (!have_model) bad("missing --model PATH");
  if (!have_refs) bad("missing --references PATH");
  if (!have_out) bad("missing --out PATH");
  args.fuser = args.fusion != "serving";
  if (args.fuser && args.format != "torchscript")
    bad("--fusion " + args.fusion + ": fuser flags apply to TorchScript only (got --format " + args.format + ")");
  return args;
}

}  // namespace ttd
