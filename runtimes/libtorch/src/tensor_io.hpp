// Conversion between safetensors views and at::Tensor, and the references/outputs file layout:
// names "<case>/input/<i>" and "<case>/output/<j>", __metadata__.cases (comma-separated).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "safetensors.hpp"

namespace ttd {

struct Case {
  std::string name;
  std::vector<at::Tensor> inputs;  // input/0, input/1, ... in order
};

// Reads a references file (format ttd-references/1). Throws StageError("read", ...).
std::vector<Case> read_references(const std::string& path);

struct CaseOutputs {
  std::string name;
  std::vector<at::Tensor> outputs;
};

// Writes an outputs file (format ttd-outputs/1). Throws StageError("write", ...).
void write_outputs(const std::string& path, const std::vector<CaseOutputs>& cases,
                   const std::map<std::string, std::string>& extra_metadata);

}  // namespace ttd
