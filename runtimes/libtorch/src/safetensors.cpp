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

constexpr uint64_t kMaxHeaderBytes = 100000000;  // the reference implementation's cap
constexpr int kMaxDepth = 3;
constexpr uint64_t kMaxInt = (uint64_t{1} << 53) - 1;  // what every reader (TypeScript's numbers too) holds exactly

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw FormatError(path + ": " + what); }

[[noreturn]] void reject(const std::string& where, const std::string& code, const std::string& what) {
  throw FormatError(code, where + ": " + what + " (" + code + ")");
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Well-formed UTF-8 (Unicode's table 3-7): no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(const uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const uint8_t b = p[i];
    std::size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
      ++i;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF)
      len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else
      return false;
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

// Rule 6, on the bytes: `{` and `[` outside strings open a level; inside a string a backslash skips the next byte.
bool nesting_too_deep(const uint8_t* p, std::size_t n) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < n; ++i) {
    const uint8_t b = p[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (b == '\\')
        escaped = true;
      else if (b == '"')
        in_string = false;
    } else if (b == '"') {
      in_string = true;
    } else if (b == '{' || b == '[') {
      if (++depth > kMaxDepth) return true;
    } else if (b == '}' || b == ']') {
      --depth;
    }
  }
  return false;
}

// The header as parsed, in document order and with duplicate keys kept (nlohmann::json would merge them).
struct Node {
  enum class Kind { object, array, string, integer, other };
  Kind kind = Kind::other;
  std::vector<std::string> keys;  // object: keys[i] names items[i]
  std::vector<Node> items;        // object values or array items
  std::string str;                // string
  bool in_range = false;          // integer: written without fraction or exponent, 0..2^53-1
  uint64_t value = 0;             // integer, when in_range
  std::string text;               // the number or literal as written (for messages)
};

// Builds Nodes from nlohmann's SAX events; its parser keeps its own stack, so no recursion on hostile input.
class TreeBuilder : public nlohmann::json_sax<nlohmann::json> {
 public:
  Node root;
  std::string error;

  bool null() override { return add(leaf("null")); }
  bool boolean(bool v) override { return add(leaf(v ? "true" : "false")); }
  bool number_integer(number_integer_t v) override {
    Node n = leaf(std::to_string(v));
    n.kind = Node::Kind::integer;
    n.in_range = v >= 0 && static_cast<uint64_t>(v) <= kMaxInt;
    n.value = n.in_range ? static_cast<uint64_t>(v) : 0;
    return add(std::move(n));
  }
  bool number_unsigned(number_unsigned_t v) override {
    Node n = leaf(std::to_string(v));
    n.kind = Node::Kind::integer;
    n.in_range = v <= kMaxInt;
    n.value = n.in_range ? v : 0;
    return add(std::move(n));
  }
  bool number_float(number_float_t, const string_t& s) override { return add(leaf(s)); }
  bool string(string_t& s) override {
    Node n;
    n.kind = Node::Kind::string;
    n.str = s;
    return add(std::move(n));
  }
  bool binary(binary_t&) override { return add(leaf("binary")); }
  bool start_object(std::size_t) override {
    Node n;
    n.kind = Node::Kind::object;
    stack_.push_back(std::move(n));
    return true;
  }
  bool key(string_t& k) override {
    stack_.back().keys.push_back(k);
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    Node n;
    n.kind = Node::Kind::array;
    stack_.push_back(std::move(n));
    return true;
  }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    return false;
  }

 private:
  std::vector<Node> stack_;

  static Node leaf(std::string text) {
    Node n;
    n.text = std::move(text);
    return n;
  }
  bool add(Node n) {
    if (stack_.empty())
      root = std::move(n);
    else
      stack_.back().items.push_back(std::move(n));
    return true;
  }
  bool close() {
    Node n = std::move(stack_.back());
    stack_.pop_back();
    return add(std::move(n));
  }
};

// The first key seen twice in any object, looking at an object's own keys before its children's.
const std::string* duplicate_key(const Node& n) {
  if (n.kind == Node::Kind::object) {
    for (std::size_t i = 0; i < n.keys.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (n.keys[i] == n.keys[j]) return &n.keys[i];
  }
  for (const Node& child : n.items)
    if (const std::string* found = duplicate_key(child)) return found;
  return nullptr;
}

// A short JSON rendering of a node for messages.
std::string show(const Node& n) {
  std::string out;
  switch (n.kind) {
    case Node::Kind::string:
      out = nlohmann::json(n.str).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      break;
    case Node::Kind::object:
    case Node::Kind::array: {
      const bool obj = n.kind == Node::Kind::object;
      out = obj ? "{" : "[";
      for (std::size_t i = 0; i < n.items.size() && out.size() < 80; ++i) {
        if (i) out += ",";
        if (obj) out += nlohmann::json(n.keys[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ":";
        out += show(n.items[i]);
      }
      out += obj ? "}" : "]";
      break;
    }
    default:
      out = n.text;
  }
  return out.size() > 80 ? out.substr(0, 80) : out;
}

std::string quote(const std::string& name) {
  const std::string s =
      nlohmann::json(name.substr(0, 80)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return "'" + s.substr(1, s.size() - 2) + "'";
}

bool all_ints(const Node& n) {
  for (const Node& item : n.items)
    if (item.kind != Node::Kind::integer || !item.in_range) return false;
  return true;
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
  std::vector<uint8_t> buffer;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open for reading (") + std::strerror(errno) + ")");
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) fail(path, "cannot determine the file size");
  in.seekg(0, std::ios::beg);
  buffer.resize(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(buffer.data()), size)) fail(path, "read error");
  return parse(std::move(buffer), path);
}

File parse(std::vector<uint8_t> buffer, const std::string& where) {
  File file;
  file.buffer = std::move(buffer);
  const std::size_t size = file.buffer.size();
  if (size < 8)
    reject(where, "st_file_too_short",
           "file is " + std::to_string(size) + " bytes; expected at least 8 (the header length)");
  const uint64_t header_len = read_u64_le(file.buffer.data());
  if (header_len > kMaxHeaderBytes)
    reject(where, "st_header_too_large",
           "header length " + std::to_string(header_len) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
               " bytes");
  if (header_len > size - 8)
    reject(where, "st_header_out_of_bounds",
           "header length " + std::to_string(header_len) + " runs past the end of the file (" +
               std::to_string(size - 8) + " bytes follow the length field)");
  const uint8_t* header = file.buffer.data() + 8;
  if (!valid_utf8(header, header_len)) reject(where, "st_header_not_utf8", "header is not UTF-8");
  std::size_t body_len = header_len;
  while (body_len > 0 && header[body_len - 1] == ' ') --body_len;
  if (body_len == 0 || header[0] != '{' || header[body_len - 1] != '}')
    reject(where, "st_header_framing", "header must begin with '{' and end with '}' followed only by spaces");
  if (nesting_too_deep(header, header_len))
    reject(where, "st_header_too_deep",
           "header nests deeper than " + std::to_string(kMaxDepth) + " levels of objects and arrays");
  TreeBuilder tree;
  const char* text = reinterpret_cast<const char*>(header);
  // A NUL byte is never valid JSON, but nlohmann's lexer takes it for the end of the input (found by the fuzzer).
  if (std::memchr(text, 0, body_len) != nullptr)
    reject(where, "st_header_not_json", "header is not valid JSON: it holds a NUL byte");
  if (!nlohmann::json::sax_parse(text, text + body_len, &tree))
    reject(where, "st_header_not_json", "header is not valid JSON: " + tree.error);
  const Node& doc = tree.root;
  if (const std::string* key = duplicate_key(doc))
    reject(where, "st_header_duplicate_key", "header has the key " + quote(*key) + " twice; keys must be unique");

  for (std::size_t i = 0; i < doc.keys.size(); ++i) {
    if (doc.keys[i] != "__metadata__") continue;
    const Node& meta = doc.items[i];
    bool ok = meta.kind == Node::Kind::object;
    for (const Node& v : meta.items) ok = ok && v.kind == Node::Kind::string;
    if (!ok) reject(where, "st_metadata_invalid", "__metadata__ must be an object of strings (got " + show(meta) + ")");
    for (std::size_t k = 0; k < meta.keys.size(); ++k) file.metadata[meta.keys[k]] = meta.items[k].str;
  }

  struct Entry {
    TensorView view;
    uint64_t begin, end;
    std::size_t index;
  };
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < doc.keys.size(); ++i) {
    const std::string& name = doc.keys[i];
    if (name == "__metadata__") continue;
    if (name.empty()) reject(where, "st_tensor_name_empty", "a tensor has an empty name");
    const std::string label = "tensor " + quote(name);
    const Node& info = doc.items[i];
    std::vector<std::string> keys = info.keys;
    std::sort(keys.begin(), keys.end());
    if (info.kind != Node::Kind::object || keys != std::vector<std::string>{"data_offsets", "dtype", "shape"})
      reject(where, "st_tensor_entry_invalid",
             label + " must be an object with exactly dtype, shape and data_offsets (got " + show(info) + ")");
    const Node* fields[3];
    for (std::size_t k = 0; k < 3; ++k) {
      const std::string& key = info.keys[k];
      fields[key == "dtype" ? 0 : key == "shape" ? 1 : 2] = &info.items[k];
    }
    const Node& dtype = *fields[0];
    const Node& shape = *fields[1];
    const Node& offsets = *fields[2];

    TensorView t;
    t.name = name;
    if (dtype.kind != Node::Kind::string || !parse_dtype(dtype.str, &t.dtype))
      reject(where, "st_tensor_dtype",
             label + " has dtype " + show(dtype) + "; expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
    if (shape.kind != Node::Kind::array || !all_ints(shape))
      reject(where, "st_tensor_shape", label + " has shape " + show(shape) + "; expected integers from 0 to 2^53-1");
    // Each dim <= 2^53-1 and the running product stays <= 2^53-1, so nothing here overflows 64 bits.
    uint64_t strides = 1;
    bool too_big = false;
    for (const Node& d : shape.items) {
      const uint64_t dim = std::max<uint64_t>(d.value, 1);
      if (strides > kMaxInt / dim)
        too_big = true;
      else
        strides *= dim;
      t.shape.push_back(static_cast<int64_t>(d.value));
    }
    if (too_big) reject(where, "st_tensor_shape", label + " has shape " + show(shape) + " whose size exceeds 2^53-1");
    if (offsets.kind != Node::Kind::array || offsets.items.size() != 2 || !all_ints(offsets) ||
        offsets.items[0].value > offsets.items[1].value)
      reject(where, "st_tensor_offsets",
             label + " has data_offsets " + show(offsets) +
                 "; expected [begin, end], integers from 0 to 2^53-1 with begin <= end");
    const uint64_t begin = offsets.items[0].value, end = offsets.items[1].value;
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);  // <= strides <= 2^53-1
    const unsigned __int128 need = static_cast<unsigned __int128>(numel) * dtype_size(t.dtype);
    if (need != end - begin) {
      std::string dims = "[";
      for (std::size_t k = 0; k < t.shape.size(); ++k) dims += (k ? ", " : "") + std::to_string(t.shape[k]);
      reject(where, "st_tensor_size_mismatch",
             label + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] spanning " +
                 std::to_string(end - begin) + " bytes; dtype " + dtype.str + " and shape " + dims + "] need " +
                 std::to_string(static_cast<uint64_t>(need)));
    }
    t.nbytes = static_cast<std::size_t>(end - begin);
    t.data = nullptr;
    entries.push_back({std::move(t), begin, end, entries.size()});
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.index < b.index;
  });
  uint64_t position = 0;
  for (const Entry& e : entries) {
    if (e.begin != position)
      reject(where, "st_tensors_not_contiguous",
             "tensor " + quote(e.view.name) + " begins at " + std::to_string(e.begin) +
                 " but the previous tensor ends at " + std::to_string(position) + ": it " +
                 (e.begin > position ? "leaves a gap" : "overlaps the tensor before it"));
    position = e.end;
  }
  const uint64_t data_len = size - 8 - header_len;
  if (position > data_len)
    reject(where, "st_data_truncated",
           "tensors need " + std::to_string(position) + " bytes of data but the file has " + std::to_string(data_len));
  if (position < data_len)
    reject(where, "st_data_trailing",
           std::to_string(data_len - position) + " bytes follow the last tensor; the data section must end there");
  const uint8_t* data = file.buffer.data() + 8 + header_len;
  for (Entry& e : entries) {
    e.view.data = data + e.begin;
    file.tensors.push_back(std::move(e.view));
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
      fail(path, "tensor '" + t.name + "': " + std::to_string(t.nbytes) + " bytes do not match its dtype and shape");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
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
