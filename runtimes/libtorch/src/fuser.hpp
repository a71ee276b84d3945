// Turns on the TensorExpr fuser for CPU without requiring LLVM (fused kernels then run through
// the TensorExpr interpreter: correct but not fast).
#pragma once

namespace ttd {

void enable_cpu_tensorexpr_fuser();

}  // namespace ttd
