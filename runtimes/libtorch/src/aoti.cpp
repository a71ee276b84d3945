// AOTInductor packages (.pt2 from torch._inductor.aoti_compile_and_package), when the libtorch this
// runner is built against has the loader (TTD_HAS_AOTI, detected by CMakeLists.txt).
#include <string>

#include "errors.hpp"
#include "runner.hpp"

#ifdef TTD_HAS_AOTI
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#endif

namespace ttd {

#ifdef TTD_HAS_AOTI

namespace {

class AotiModel : public Model {
 public:
  explicit AotiModel(const std::string& path) : loader_(path) {}
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) override {
    return loader_.run(inputs);  // already flat, in the exported program's output order
  }

 private:
  torch::inductor::AOTIModelPackageLoader loader_;
};

}  // namespace

std::unique_ptr<Model> load_aoti(const std::string& path, const std::string& torch_version) {
  require_readable(path, "AOTInductor package");
  try {
    return std::make_unique<AotiModel>(path);
  } catch (const c10::Error& e) {
    throw StageError("load", path + ": not a loadable AOTInductor package: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw StageError("load", path + ": not a loadable AOTInductor package: " + without_backtrace(e.what()));
  }
}

#else

std::unique_ptr<Model> load_aoti(const std::string& path, const std::string& torch_version) {
  throw StageError("load", "this runner was built against libtorch " + torch_version +
                               " without AOTInductor; --format aoti needs a runner built against "
                               "torch 2.x (build/libtorch-2.13, see infra/setup.sh)");
}

#endif

}  // namespace ttd
