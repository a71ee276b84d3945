// The TensorExpr fuser of this libtorch build: what it does by default, and switching it on.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ttd {

// The build's own fuser configuration, read before anything is changed: whether it has LLVM (without it a CPU
// server never fuses), whether CPU/GPU fusion is on by default, and whether it sees CUDA.
nlohmann::json fusion_build_facts();

// mode "fused": the CPU fuser on, as a deployment that enables it would (LLVM still required, as torch ships it);
// mode "interpreter": also without LLVM, through NNC's interpreter (correct, about a hundred times slower).
void enable_cpu_tensorexpr_fuser(const std::string& mode);

}  // namespace ttd
