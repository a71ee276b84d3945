// Checks the C++ safetensors reader against the rules of docs/trust-safetensors.md.
//   ttd-safetensors-check --vectors DIR   every vector of DIR/manifest.json; prints "N passed, N failed"
//   ttd-safetensors-check --serve         reads inputs from stdin (4-byte little-endian length, then the bytes) and
//                                         answers each with one JSON line: the reader's verdict (the fuzzer's C++ side)
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "safetensors.hpp"

namespace {

std::string hex(const uint8_t* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

// The verdict on one file: {"ok": true, "tensors": {name: {dtype, shape, hex}}, "metadata": {...}} or
// {"ok": false, "code": ..., "message": ...}.
nlohmann::json verdict(std::vector<uint8_t> bytes, const std::string& where) {
  try {
    const safetensors::File file = safetensors::parse(std::move(bytes), where);
    nlohmann::json tensors = nlohmann::json::object();
    for (const auto& t : file.tensors)
      tensors[t.name] = {
          {"dtype", safetensors::dtype_name(t.dtype)}, {"shape", t.shape}, {"hex", hex(t.data, t.nbytes)}};
    return {{"ok", true}, {"tensors", tensors}, {"metadata", file.metadata}};
  } catch (const safetensors::FormatError& e) {
    return {{"ok", false}, {"code", e.code()}, {"message", e.what()}};
  }
}

int check_vectors(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  if (!in) {
    std::cerr << "cannot open " << dir << "/manifest.json\n";
    return 2;
  }
  const nlohmann::json manifest = nlohmann::json::parse(in);
  int passed = 0, failed = 0;
  for (const auto& v : manifest.at("vectors")) {
    const std::string path = dir + "/" + v.at("file").get<std::string>();
    std::string problem;
    try {
      const safetensors::File file = safetensors::read_file(path);
      if (!v.at("valid").get<bool>()) {
        problem = "accepted; expected " + v.at("code").get<std::string>();
      } else {
        const auto& want = v.at("tensors");
        if (file.tensors.size() != want.size()) problem = "tensor count " + std::to_string(file.tensors.size());
        for (const auto& w : want) {
          const safetensors::TensorView* t = file.find(w.at("name").get<std::string>());
          if (!t) {
            problem += " missing " + w.at("name").dump();
            continue;
          }
          if (safetensors::dtype_name(t->dtype) != w.at("dtype").get<std::string>() ||
              t->shape != w.at("shape").get<std::vector<int64_t>>() ||
              hex(t->data, t->nbytes) != w.at("hex").get<std::string>())
            problem += " tensor " + w.at("name").dump() + " differs";
        }
        if (file.metadata != v.at("metadata").get<std::map<std::string, std::string>>()) problem += " metadata differs";
      }
    } catch (const safetensors::FormatError& e) {
      if (v.at("valid").get<bool>())
        problem = std::string("rejected: ") + e.what();
      else if (e.code() != v.at("code").get<std::string>())
        problem = std::string("wrong rule: ") + e.what();
      else if (std::string(e.what()).rfind(path + ": ", 0) != 0)
        problem = std::string("message lacks the path: ") + e.what();
    }
    if (problem.empty()) {
      ++passed;
    } else {
      ++failed;
      std::cout << "FAIL " << v.at("file").get<std::string>() << ": " << problem << "\n";
    }
  }
  std::cout << "safetensors vectors (C++): " << passed << " passed, " << failed << " failed\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}

int serve() {
  std::ios::sync_with_stdio(false);
  for (;;) {
    uint8_t len[4];
    if (!std::cin.read(reinterpret_cast<char*>(len), 4)) return 0;
    const uint32_t n = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
    std::vector<uint8_t> bytes(n);
    if (n && !std::cin.read(reinterpret_cast<char*>(bytes.data()), n)) return 1;
    std::cout << verdict(std::move(bytes), "input").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--vectors" && argc == 3) return check_vectors(argv[2]);
  if (mode == "--serve" && argc == 2) return serve();
  std::cerr << "usage: ttd-safetensors-check --vectors DIR | --serve\n";
  return 2;
}
