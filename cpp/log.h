// Control-path logging: JSON lines on stderr, which a supervisor reads from a
// pipe. Never called per packet.
#pragma once
#include <cstdint>
#include <string>

namespace mcr {

enum class LogLevel : uint8_t { Debug = 0, Info = 1, Warning = 2, Error = 3 };

class Logger {
 public:
  Logger(uint32_t worker_id, LogLevel level) : worker_id_(worker_id), level_(level) {}
  void set_level(LogLevel level) { level_ = level; }
  void log(LogLevel level, const std::string& message) const;

 private:
  uint32_t worker_id_;
  LogLevel level_;
};

}  // namespace mcr
