// The probe header every generated payload starts with, shared by the
// traffic generator and the sink. 24 bytes, network byte order:
//   magic "MCRT" | stream id (u32) | sequence (u64) | send time (u64, ns)
// The send time is CLOCK_MONOTONIC, which is one clock for the whole host:
// network namespaces do not have their own, so a sink in another namespace
// can subtract it from its own reading to get the one-way latency.
#pragma once
#include <endian.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mcr::traffic {

constexpr uint32_t kProbeMagic = 0x4d435254;  // "MCRT"
constexpr size_t kProbeSize = 24;

struct Probe {
  uint32_t stream;
  uint64_t seq;
  uint64_t sent_ns;
};

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline void write_probe(uint8_t* p, const Probe& probe) {
  uint32_t magic = htobe32(kProbeMagic), stream = htobe32(probe.stream);
  uint64_t seq = htobe64(probe.seq), sent = htobe64(probe.sent_ns);
  std::memcpy(p, &magic, 4);
  std::memcpy(p + 4, &stream, 4);
  std::memcpy(p + 8, &seq, 8);
  std::memcpy(p + 16, &sent, 8);
}

// False for anything that is not one of our probes (too short, wrong magic).
inline bool read_probe(const uint8_t* p, size_t len, Probe& out) {
  if (len < kProbeSize) return false;
  uint32_t magic, stream;
  uint64_t seq, sent;
  std::memcpy(&magic, p, 4);
  if (be32toh(magic) != kProbeMagic) return false;
  std::memcpy(&stream, p + 4, 4);
  std::memcpy(&seq, p + 8, 8);
  std::memcpy(&sent, p + 16, 8);
  out = {be32toh(stream), be64toh(seq), be64toh(sent)};
  return true;
}

}  // namespace mcr::traffic
