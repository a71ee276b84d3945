// StageError: an error tagged with the protocol stage it belongs to
// ("args", "load", "read", "run", "write"). main() turns it into the JSON error line.
#pragma once

#include <stdexcept>
#include <string>

namespace ttd {

// A c10 error's text up to its C++ backtrace ("Exception raised from ..."). AOTInductor's runner
// rethrows c10 errors as std::runtime_error with the backtrace inside what().
inline std::string without_backtrace(const std::string& message) {
  const auto at = message.find("Exception raised from ");
  if (at == std::string::npos) return message;
  std::string head = message.substr(0, at);
  while (!head.empty() && (head.back() == ' ' || head.back() == '\n' || head.back() == '(')) head.pop_back();
  return head;
}

class StageError : public std::runtime_error {
 public:
  StageError(std::string stage, const std::string& message) : std::runtime_error(message), stage_(std::move(stage)) {}
  const std::string& stage() const { return stage_; }

 private:
  std::string stage_;
};

}  // namespace ttd
