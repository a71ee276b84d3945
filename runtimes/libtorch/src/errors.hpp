// StageError: an error tagged with the protocol stage it belongs to
// ("args", "load", "read", "run", "write"). main() turns it into the JSON error line.
#pragma once

#include <stdexcept>
#include <string>

namespace ttd {

class StageError : public std::runtime_error {
 public:
  StageError(std::string stage, const std::string& message)
      : std::runtime_error(message), stage_(std::move(stage)) {}
  const std::string& stage() const { return stage_; }

 private:
  std::string stage_;
};

}  // namespace ttd
