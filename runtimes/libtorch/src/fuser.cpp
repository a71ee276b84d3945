#include "fuser.hpp"

#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/csrc/jit/tensorexpr/kernel.h>

// overrideCanFuseOnCPU lives in torch/csrc/jit/codegen/fuser/interface.h upstream (and in torch 2.x's
// wheel); Debian's libtorch-dev 1.13 ships no such header but exports the symbol, so declare it there.
#if __has_include(<torch/csrc/jit/codegen/fuser/interface.h>)
#include <torch/csrc/jit/codegen/fuser/interface.h>
#else
namespace torch {
namespace jit {
TORCH_API void overrideCanFuseOnCPU(bool);
}  // namespace jit
}  // namespace torch
#endif

namespace ttd {

void enable_cpu_tensorexpr_fuser() {
  torch::jit::tensorexpr::getTEMustUseLLVMOnCPU() = false;
  torch::jit::overrideCanFuseOnCPU(true);
  torch::jit::setTensorExprFuserEnabled(true);
}

}  // namespace ttd
