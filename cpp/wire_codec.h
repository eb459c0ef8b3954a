// The wire format's building blocks, shared by the files that encode and
// decode its messages (wire.cpp, wire_trace.cpp): not part of wire.h's contract.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "wire.h"

namespace mcr::wire::codec {

class Writer {
 public:
  template <typename T>
  Writer& put(T value) {
    size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &value, sizeof(T));
    return *this;
  }
  std::vector<uint8_t> bytes;
};

// Bounds-checked reader: a short read sets `failed` and yields zeros, so a
// decoder checks once at the end instead of after every field.
class Reader {
 public:
  Reader(const uint8_t* data, size_t len) : data_(data), len_(len) {}
  template <typename T>
  T get() {
    T value{};
    if (len_ - pos_ < sizeof(T)) {
      failed = true;
      pos_ = len_;
      return value;
    }
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  size_t remaining() const { return len_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }
  bool failed = false;

 private:
  const uint8_t* data_;
  size_t len_;
  size_t pos_ = 0;
};

inline Writer header(Type type, uint32_t seq) {
  Writer w;
  w.put(static_cast<uint16_t>(type)).put(uint16_t{0}).put(seq);
  return w;
}

inline std::string finish(const Reader& r, const char* what) {
  if (r.failed) return std::string(what) + ": message truncated";
  if (r.remaining() != 0) return std::string(what) + ": " + std::to_string(r.remaining()) + " unexpected trailing bytes";
  return {};
}

// The trace messages' bodies (wire_trace.cpp).
std::string decode_trace_rule(Reader& r, Command& out);
std::string decode_trace(Reader& r, TraceTaken& out);

}  // namespace mcr::wire::codec
