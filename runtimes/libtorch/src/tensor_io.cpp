#include "tensor_io.hpp"

#include <cstring>
#include <regex>
#include <sstream>

#include <ATen/ATen.h>

#include "errors.hpp"

namespace ttd {
namespace {

at::ScalarType to_scalar_type(safetensors::DType d) {
  using safetensors::DType;
  switch (d) {
    case DType::F64:
      return at::kDouble;
    case DType::F32:
      return at::kFloat;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I64:
      return at::kLong;
    case DType::I32:
      return at::kInt;
    case DType::I16:
      return at::kShort;
    case DType::I8:
      return at::kChar;
    case DType::U8:
      return at::kByte;
    case DType::BOOL:
      return at::kBool;
  }
  return at::kFloat;
}

bool from_scalar_type(at::ScalarType s, safetensors::DType* out) {
  using safetensors::DType;
  switch (s) {
    case at::kDouble:
      *out = DType::F64;
      return true;
    case at::kFloat:
      *out = DType::F32;
      return true;
    case at::kHalf:
      *out = DType::F16;
      return true;
    case at::kBFloat16:
      *out = DType::BF16;
      return true;
    case at::kLong:
      *out = DType::I64;
      return true;
    case at::kInt:
      *out = DType::I32;
      return true;
    case at::kShort:
      *out = DType::I16;
      return true;
    case at::kChar:
      *out = DType::I8;
      return true;
    case at::kByte:
      *out = DType::U8;
      return true;
    case at::kBool:
      *out = DType::BOOL;
      return true;
    default:
      return false;
  }
}

at::Tensor to_tensor(const safetensors::TensorView& v) {
  // Copy into fresh (aligned, owned) storage: the view points into the file buffer.
  at::Tensor t = at::empty(v.shape, at::TensorOptions().dtype(to_scalar_type(v.dtype)));
  if (v.nbytes) std::memcpy(t.data_ptr(), v.data, v.nbytes);
  return t;
}

std::vector<std::string> split_cases(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  if (!s.empty() && s.back() == ',') out.push_back("");
  return out;
}

}  // namespace

std::vector<Case> read_references(const std::string& path) {
  safetensors::File file;
  try {
    file = safetensors::read_file(path);
  } catch (const safetensors::FormatError& e) {
    throw StageError("read", e.what());
  }
  auto bad = [&](const std::string& what) -> StageError { return StageError("read", path + ": " + what); };

  const auto fmt = file.metadata.find("format");
  if (fmt == file.metadata.end()) throw bad("expected __metadata__.format 'ttd-references/1', found none");
  if (fmt->second != "ttd-references/1")
    throw bad("expected __metadata__.format 'ttd-references/1', got '" + fmt->second + "'");
  const auto cases_it = file.metadata.find("cases");
  if (cases_it == file.metadata.end() || cases_it->second.empty())
    throw bad("expected __metadata__.cases listing the case names (comma-separated)");

  static const std::regex kCaseName("[a-z0-9_]+");
  std::vector<Case> cases;
  for (const std::string& name : split_cases(cases_it->second)) {
    if (!std::regex_match(name, kCaseName))
      throw bad("__metadata__.cases: case name '" + name + "' does not match [a-z0-9_]+");
    for (const auto& c : cases)
      if (c.name == name) throw bad("__metadata__.cases: case '" + name + "' listed twice");

    // Collect <case>/input/<i>; indices must be exactly 0..n-1.
    const std::string prefix = name + "/input/";
    std::size_t count = 0;
    for (const auto& t : file.tensors) {
      if (t.name.rfind(prefix, 0) != 0) continue;
      const std::string idx = t.name.substr(prefix.size());
      if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos || (idx.size() > 1 && idx[0] == '0'))
        throw bad("tensor '" + t.name + "': expected '" + prefix + "<index>'");
      ++count;
    }
    if (count == 0) throw bad("case '" + name + "' has no inputs (expected tensor '" + prefix + "0')");
    Case c;
    c.name = name;
    for (std::size_t i = 0; i < count; ++i) {
      const auto* v = file.find(prefix + std::to_string(i));
      if (!v)
        throw bad("case '" + name + "' has " + std::to_string(count) + " inputs but no tensor '" + prefix +
                  std::to_string(i) + "' (indices must be 0.." + std::to_string(count - 1) + ")");
      c.inputs.push_back(to_tensor(*v));
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

void write_outputs(const std::string& path, const std::vector<CaseOutputs>& cases,
                   const std::map<std::string, std::string>& extra_metadata) {
  std::map<std::string, std::string> metadata = extra_metadata;
  metadata["format"] = "ttd-outputs/1";
  std::string names;
  for (const auto& c : cases) names += (names.empty() ? "" : ",") + c.name;
  metadata["cases"] = names;

  std::vector<at::Tensor> keep;  // owns contiguous CPU copies while writing
  std::vector<safetensors::TensorView> views;
  for (const auto& c : cases) {
    for (std::size_t j = 0; j < c.outputs.size(); ++j) {
      const std::string name = c.name + "/output/" + std::to_string(j);
      at::Tensor t = c.outputs[j].detach().to(at::kCPU).contiguous();
      safetensors::DType dtype;
      if (!from_scalar_type(t.scalar_type(), &dtype))
        throw StageError("write", path + ": output '" + name + "' has dtype " +
                                      std::string(c10::toString(t.scalar_type())) +
                                      ", expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
      safetensors::TensorView v;
      v.name = name;
      v.dtype = dtype;
      v.shape = t.sizes().vec();
      v.data = static_cast<const uint8_t*>(t.data_ptr());
      v.nbytes = t.numel() * t.element_size();
      keep.push_back(t);
      views.push_back(std::move(v));
    }
  }
  try {
    safetensors::write_file(path, metadata, views);
  } catch (const safetensors::FormatError& e) {
    throw StageError("write", e.what());
  }
}

}  // namespace ttd
