#include "log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace mcr {
namespace {

constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char code[8];
      std::snprintf(code, sizeof(code), "\\u%04x", c);
      out += code;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void Logger::log(LogLevel level, const std::string& message) const {
  if (level < level_) return;
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  char head[160];
  int n = std::snprintf(head, sizeof(head), "{\"ts\": %.6f, \"level\": \"%s\", \"facility\": \"engine\", \"worker\": %u, \"msg\": \"",
                        now, kLevelNames[static_cast<int>(level)], worker_id_);
  std::string line = std::string(head, static_cast<size_t>(n)) + json_escape(message) + "\"}\n";
  // One write per line, so lines from several threads never interleave.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace mcr
