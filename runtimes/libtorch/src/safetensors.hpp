// Minimal safetensors reader/writer, independent of torch.
// Layout: 8-byte little-endian header length N, N bytes of JSON header
// {"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the raw little-endian data; offsets are relative to the start of the data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace safetensors {

// Thrown for unreadable or malformed files; the message names the file and what was expected.
// code(): the rule broken (docs/trust-safetensors.md, the same codes as the TS and Python readers), or ""
// for an I/O failure.
class FormatError : public std::runtime_error {
 public:
  explicit FormatError(const std::string& message) : std::runtime_error(message) {}
  FormatError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
// Returns false when the name is not one of the supported dtypes.
bool parse_dtype(const std::string& name, DType* out);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // points into the owning File's buffer (or caller memory when writing)
  std::size_t nbytes;
};

struct File {
  std::map<std::string, std::string> metadata;
  std::vector<TensorView> tensors;  // in data-offset order (the header's order among equal offsets)
  std::vector<uint8_t> buffer;      // the whole file; TensorView::data points into it

  const TensorView* find(const std::string& name) const;
};

// Reads and validates a whole file against docs/trust-safetensors.md. Throws FormatError.
File read_file(const std::string& path);

// Validates a file already in memory; `where` names it in messages. Throws FormatError.
File parse(std::vector<uint8_t> buffer, const std::string& where);

// Writes tensors in the given order. Throws FormatError on I/O failure or inconsistent sizes.
// The file is written to a temporary name next to `path` and renamed into place.
void write_file(const std::string& path, const std::map<std::string, std::string>& metadata,
                const std::vector<TensorView>& tensors);

}  // namespace safetensors
