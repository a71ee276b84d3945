#include "runner.hpp"

#include <fstream>

#include "errors.hpp"

namespace ttd {

namespace {

class TorchScriptModel : public Model {
 public:
  explicit TorchScriptModel(torch::jit::Module module) : module_(std::move(module)) {}
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) override {
    std::vector<c10::IValue> args(inputs.begin(), inputs.end());
    std::vector<at::Tensor> out;
    flatten_outputs(module_.forward(args), "output", &out);
    return out;
  }

 private:
  torch::jit::Module module_;
};

}  // namespace

void require_readable(const std::string& path, const std::string& what) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw StageError("load", path + ": cannot open the " + what + " (no such file or not readable)");
}

std::unique_ptr<Model> load_torchscript(const std::string& path) {
  require_readable(path, "TorchScript archive");
  try {
    torch::jit::Module module = torch::jit::load(path, torch::kCPU);
    module.eval();
    if (!module.find_method("forward"))
      throw StageError("load", path + ": expected a TorchScript module with a forward method");
    return std::make_unique<TorchScriptModel>(std::move(module));
  } catch (const StageError&) {
    throw;
  } catch (const c10::Error& e) {
    throw StageError("load", path + ": not a loadable TorchScript archive: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw StageError("load", path + ": not a loadable TorchScript archive: " + e.what());
  }
}

void flatten_outputs(const c10::IValue& value, const std::string& where, std::vector<at::Tensor>* out) {
  if (value.isTensor()) {
    out->push_back(value.toTensor());
  } else if (value.isTuple()) {
    const auto& elems = value.toTupleRef().elements();
    for (std::size_t i = 0; i < elems.size(); ++i)
      flatten_outputs(elems[i], where + "[" + std::to_string(i) + "]", out);
  } else if (value.isList()) {
    const auto list = value.toList();
    for (std::size_t i = 0; i < list.size(); ++i)
      flatten_outputs(list.get(i), where + "[" + std::to_string(i) + "]", out);
  } else {
    throw std::runtime_error("forward returned " + value.tagKind() + " at " + where +
                             "; expected a tensor or a tuple/list of tensors");
  }
}

std::vector<CaseOutputs> run_cases(Model& model, const std::vector<Case>& cases, int warmup) {
  torch::NoGradGuard no_grad;
  std::vector<CaseOutputs> results;
  for (const auto& c : cases) {
    try {
      for (int k = 0; k < warmup; ++k) (void)model.run(c.inputs);
      CaseOutputs co;
      co.name = c.name;
      co.outputs = model.run(c.inputs);
      results.push_back(std::move(co));
    } catch (const c10::Error& e) {
      throw StageError("run", "case '" + c.name + "': forward failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw StageError("run", "case '" + c.name + "': " + without_backtrace(e.what()));
    }
  }
  return results;
}

}  // namespace ttd
