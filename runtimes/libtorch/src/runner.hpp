// Loads a model (a TorchScript archive or an AOTInductor package) and runs it on each case.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/script.h>

#include "tensor_io.hpp"

namespace ttd {

// A loaded model of either format: one call on a case's inputs, outputs flattened in order.
class Model {
 public:
  virtual ~Model() = default;
  virtual std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) = 0;
};

// torch::jit::load in eval mode. Throws StageError("load", ...).
std::unique_ptr<Model> load_torchscript(const std::string& path);

// An AOTInductor .pt2 package (aoti.cpp). Throws StageError("load", ...), also when this runner
// was built against a libtorch without the AOTInductor loader.
std::unique_ptr<Model> load_aoti(const std::string& path, const std::string& torch_version);

// Calls the model once per case (after `warmup` unrecorded calls) under no-grad.
// Throws StageError("run", ...).
std::vector<CaseOutputs> run_cases(Model& model, const std::vector<Case>& cases, int warmup);

// Flattens a Tensor or a (nested) Tuple/List of tensors, in order. Throws std::runtime_error
// naming the offending element for any other value.
void flatten_outputs(const c10::IValue& value, const std::string& where, std::vector<at::Tensor>* out);

// Throws StageError("load", ...) naming the file when it cannot be opened.
void require_readable(const std::string& path, const std::string& what);

}  // namespace ttd
