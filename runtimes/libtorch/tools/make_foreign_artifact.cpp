// ttd-make-foreign-artifact: makes a "foreign" TorchScript artifact with libtorch alone, as a producer
// outside ttd would (no Python, no tracing): a module built in C++ from registered parameters and a
// TorchScript forward, saved to OUT_DIR/model.pt, and its outputs on seeded inputs recorded in
// OUT_DIR/refs.safetensors as <case>/input/<i> and <case>/output/<j> with __metadata__.cases.
// Usage: ttd-make-foreign-artifact OUT_DIR
#include <cstdint>
#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/script.h>

#include "safetensors.hpp"

namespace {

constexpr uint64_t kSeed = 20240607;

// A 3 -> 8 -> 1 network: tanh(linear), a scaled relu (the scale is a buffer), then linear.
const char* kForward = R"(
def forward(self, x):
    h = torch.tanh(torch.matmul(x, self.w1.t()) + self.b1)
    h = torch.relu(h * self.scale)
    return torch.matmul(h, self.w2.t()) + self.b2
)";

torch::jit::Module build_module() {
  at::manual_seed(kSeed);
  torch::jit::Module module("ForeignMlp");
  module.register_parameter("w1", at::randn({8, 3}) * 0.5, false);
  module.register_parameter("b1", at::randn({8}) * 0.1, false);
  module.register_parameter("w2", at::randn({1, 8}) * 0.5, false);
  module.register_parameter("b2", at::randn({1}) * 0.1, false);
  module.register_buffer("scale", at::full({8}, 1.5));
  module.define(kForward);
  module.eval();
  return module;
}

// A float32 view of a contiguous CPU tensor that `keep` owns while the file is written.
safetensors::TensorView view_of(const std::string& name, const at::Tensor& tensor, std::vector<at::Tensor>* keep) {
  at::Tensor t = tensor.detach().to(at::kFloat).contiguous();
  keep->push_back(t);
  safetensors::TensorView v;
  v.name = name;
  v.dtype = safetensors::DType::F32;
  v.shape = t.sizes().vec();
  v.data = static_cast<const uint8_t*>(t.data_ptr());
  v.nbytes = static_cast<std::size_t>(t.numel()) * t.element_size();
  return v;
}

int run(const std::string& out_dir) {
  torch::jit::Module module = build_module();
  const std::string model_path = out_dir + "/model.pt";
  module.save(model_path);

  // Cases: a batch of 16 rows, a single row, and one unbatched 1-D input (as R's jit_trace example).
  at::manual_seed(kSeed + 1);
  const std::vector<std::pair<std::string, at::Tensor>> cases = {
      {"batch", at::randn({16, 3})}, {"one_row", at::randn({1, 3})}, {"unbatched", at::randn({3})}};

  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> keep;
  std::vector<safetensors::TensorView> views;
  std::string names;
  for (const auto& c : cases) {
    at::Tensor output = module.forward({c.second}).toTensor();
    views.push_back(view_of(c.first + "/input/0", c.second, &keep));
    views.push_back(view_of(c.first + "/output/0", output, &keep));
    names += (names.empty() ? "" : ",") + c.first;
  }
  const std::string refs_path = out_dir + "/refs.safetensors";
  safetensors::write_file(refs_path, {{"cases", names}, {"producer", "ttd-make-foreign-artifact"}}, views);
  std::cout << "{\"model\": \"" << model_path << "\", \"references\": \"" << refs_path
            << "\", \"cases\": " << cases.size() << "}" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ttd-make-foreign-artifact OUT_DIR (an existing directory)" << std::endl;
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const std::exception& e) {
    std::cerr << "ttd-make-foreign-artifact: " << e.what() << std::endl;
    return 1;
  }
}
