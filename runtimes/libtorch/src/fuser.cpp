#include "fuser.hpp"

#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/csrc/jit/tensorexpr/codegen.h>
#include <torch/csrc/jit/tensorexpr/kernel.h>
#include <torch/cuda.h>

// These live in torch/csrc/jit/codegen/fuser/interface.h upstream (and in torch 2.x's wheel); Debian's
// libtorch-dev 1.13 ships no such header but exports the symbols, so declare them there.
#if __has_include(<torch/csrc/jit/codegen/fuser/interface.h>)
#include <torch/csrc/jit/codegen/fuser/interface.h>
#else
namespace torch {
namespace jit {
TORCH_API void overrideCanFuseOnCPU(bool);
TORCH_API bool canFuseOnCPU();
TORCH_API bool canFuseOnGPU();
}  // namespace jit
}  // namespace torch
#endif

namespace ttd {

namespace {

// A build with LLVM registers the "llvm_codegen" backend; one without has only the interpreter.
bool llvm_enabled() {
  try {
    torch::jit::tensorexpr::RegisterCodeGenList::GetInstance().FindStmtFactoryMethod("llvm_codegen");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

nlohmann::json fusion_build_facts() {
  return {{"llvm_enabled", llvm_enabled()},
          {"texpr_fuser_enabled", torch::jit::tensorExprFuserEnabled()},
          {"can_fuse_on_cpu", torch::jit::canFuseOnCPU()},
          {"can_fuse_on_gpu", torch::jit::canFuseOnGPU()},
          {"te_must_use_llvm_cpu", torch::jit::tensorexpr::getTEMustUseLLVMOnCPU()},
          {"cuda_available", torch::cuda::is_available()}};
}

void enable_cpu_tensorexpr_fuser(const std::string& mode) {
  if (mode == "interpreter") torch::jit::tensorexpr::getTEMustUseLLVMOnCPU() = false;
  torch::jit::overrideCanFuseOnCPU(true);
  torch::jit::setTensorExprFuserEnabled(true);
}

}  // namespace ttd
