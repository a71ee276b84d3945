// Loads a TorchScript archive and runs its forward on each case.
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include "tensor_io.hpp"

namespace ttd {

// torch::jit::load in eval mode. Throws StageError("load", ...).
torch::jit::Module load_module(const std::string& path);

// Calls forward once per case (after `warmup` unrecorded calls) under no-grad and flattens
// each result. Throws StageError("run", ...).
std::vector<CaseOutputs> run_cases(torch::jit::Module& module, const std::vector<Case>& cases,
                                   int warmup);

// Flattens a Tensor or a (nested) Tuple/List of tensors, in order. Throws std::runtime_error
// naming the offending element for any other value.
void flatten_outputs(const c10::IValue& value, const std::string& where,
                     std::vector<at::Tensor>* out);

}  // namespace ttd
