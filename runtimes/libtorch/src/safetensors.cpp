#include "safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this implementation assumes a little-endian host"
#endif

namespace safetensors {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;  // same cap as the reference library

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw FormatError(path + ": " + what);
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses a JSON value that must be a non-negative integer.
uint64_t as_u64(const nlohmann::json& v, const std::string& path, const std::string& where) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail(path, where + ": expected a non-negative integer, got " + v.dump());
}

}  // namespace

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& d : kDTypes) {
    if (name == d.name) {
      *out = d.dtype;
      return true;
    }
  }
  return false;
}

const TensorView* File::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

File read_file(const std::string& path) {
  File file;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, std::string("cannot open for reading (") + std::strerror(errno) + ")");
    in.seekg(0, std::ios::end);
    std::streamoff size = in.tellg();
    if (size < 0) fail(path, "cannot determine the file size");
    in.seekg(0, std::ios::beg);
    file.buffer.resize(static_cast<std::size_t>(size));
    if (size > 0 && !in.read(reinterpret_cast<char*>(file.buffer.data()), size))
      fail(path, "read error");
  }
  const std::size_t size = file.buffer.size();
  if (size < 8)
    fail(path, "not a safetensors file: expected at least 8 bytes (header length), got " +
                   std::to_string(size));
  const uint64_t header_len = read_u64_le(file.buffer.data());
  if (header_len == 0 || header_len > kMaxHeaderBytes)
    fail(path, "not a safetensors file: header length " + std::to_string(header_len) +
                   " is outside 1.." + std::to_string(kMaxHeaderBytes));
  if (header_len > size - 8)
    fail(path, "truncated: header length " + std::to_string(header_len) + " but only " +
                   std::to_string(size - 8) + " bytes follow the length field");

  const char* hbegin = reinterpret_cast<const char*>(file.buffer.data() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbegin, hbegin + header_len);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header: expected a JSON object");

  const uint8_t* data = file.buffer.data() + 8 + header_len;
  const uint64_t data_len = size - 8 - header_len;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__: expected an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__." + m.key() + ": expected a string, got " + m.value().dump());
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(path, where + ": expected an object with dtype, shape, data_offsets");
    if (!v.contains("dtype") || !v["dtype"].is_string())
      fail(path, where + ": expected a string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array())
      fail(path, where + ": expected an array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      fail(path, where + ": expected 'data_offsets' as [begin, end]");
    for (auto k = v.begin(); k != v.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        fail(path, where + ": unexpected field '" + k.key() + "'");

    TensorView t;
    t.name = name;
    const std::string dname = v["dtype"].get<std::string>();
    if (!parse_dtype(dname, &t.dtype))
      fail(path, where + ": unsupported dtype '" + dname +
                     "' (expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");

    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      const uint64_t dim = as_u64(d, path, where + " shape");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      numel *= dim;
    }
    const uint64_t esize = dtype_size(t.dtype);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize)
      fail(path, where + ": shape is too large");
    const uint64_t expected = numel * esize;

    const uint64_t begin = as_u64(v["data_offsets"][0], path, where + " data_offsets[0]");
    const uint64_t end = as_u64(v["data_offsets"][1], path, where + " data_offsets[1]");
    if (begin > end)
      fail(path, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] has begin > end");
    if (end > data_len)
      fail(path, where + ": data_offsets end " + std::to_string(end) +
                     " is past the end of the data section (" + std::to_string(data_len) +
                     " bytes); file truncated?");
    if (end - begin != expected)
      fail(path, where + ": data_offsets span " + std::to_string(end - begin) +
                     " bytes but dtype " + dname + " and shape " + v["shape"].dump() + " need " +
                     std::to_string(expected));
    t.data = data + begin;
    t.nbytes = static_cast<std::size_t>(expected);
    file.tensors.push_back(std::move(t));
  }

  std::sort(file.tensors.begin(), file.tensors.end(),
            [&](const TensorView& a, const TensorView& b) { return a.data < b.data; });
  const uint8_t* prev_end = data;
  const std::string* prev_name = nullptr;
  for (const auto& t : file.tensors) {
    if (t.nbytes == 0) continue;
    if (t.data < prev_end)
      fail(path, "tensor '" + t.name + "' overlaps tensor '" + (prev_name ? *prev_name : "") + "'");
    prev_end = t.data + t.nbytes;
    prev_name = &t.name;
  }
  return file;
}

void write_file(const std::string& path, const std::map<std::string, std::string>& metadata,
                const std::vector<TensorView>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) {
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || header.contains(t.name))
      fail(path, "duplicate or reserved tensor name '" + t.name + "'");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(path, "tensor '" + t.name + "': negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      fail(path, "tensor '" + t.name + "': " + std::to_string(t.nbytes) +
                     " bytes do not match its dtype and shape");
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // align the data section to 8 bytes
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, std::string("cannot open for writing (") + std::strerror(errno) + ")");
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : tensors)
      if (t.nbytes) out.write(reinterpret_cast<const char*>(t.data), static_cast<std::streamsize>(t.nbytes));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      fail(tmp, "write error (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(path, "cannot rename " + tmp + " into place (" + err + ")");
  }
}

}  // namespace safetensors
