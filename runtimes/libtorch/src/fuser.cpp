#include "fuser.hpp"

#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/csrc/jit/tensorexpr/kernel.h>

// Exported by libtorch_cpu but declared in no header of Debian's libtorch-dev
// (it lives in torch/csrc/jit/codegen/fuser/interface.h upstream).
namespace torch {
namespace jit {
TORCH_API void overrideCanFuseOnCPU(bool);
}  // namespace jit
}  // namespace torch

namespace ttd {

void enable_cpu_tensorexpr_fuser() {
  torch::jit::tensorexpr::getTEMustUseLLVMOnCPU() = false;
  torch::jit::overrideCanFuseOnCPU(true);
  torch::jit::setTensorExprFuserEnabled(true);
}

}  // namespace ttd
