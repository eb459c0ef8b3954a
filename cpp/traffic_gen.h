// A paced traffic generator for benchmarks and tests. It sends numbered
// probes (traffic_probe.h) in sendmmsg batches through a socket it is given:
// a UDP socket (the kernel builds the headers), or an AF_PACKET socket bound
// to an interface (frames are prebuilt here, for rates a UDP socket cannot
// reach). It opens no socket itself, so the caller decides the namespace.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace mcr::traffic {

struct GenStream {
  uint32_t destination;  // IPv4, network byte order
  uint16_t port;         // host byte order
  uint32_t id;           // carried in every probe of this stream
};

struct GenConfig {
  int fd = -1;
  bool raw = false;  // fd is AF_PACKET: build Ethernet/IPv4/UDP frames
  std::vector<GenStream> streams;
  uint32_t payload_size = 64;  // UDP payload bytes, >= kProbeSize
  uint64_t count = 0;          // packets over all streams; 0: until the duration ends
  double duration = 1.0;       // hard limit, seconds
  double rate = 0;             // packets per second over all streams; 0: as fast as possible
  uint32_t batch = 32;         // packets per sendmmsg
  // Raw mode only: the headers the kernel would otherwise fill in.
  uint32_t source = 0;  // IPv4, network byte order
  uint16_t source_port = 40000;
  uint8_t source_mac[6] = {0x02, 0, 0, 0, 0, 1};
  uint8_t ttl = 64;
  uint8_t tos = 0;  // DSCP and ECN (the UDP mode sets it on the socket instead)
};

struct GenResult {
  uint64_t sent = 0;
  uint64_t retries = 0;  // sendmmsg calls the device refused, wholly (ENOBUFS/EAGAIN) or after part of the batch
  double elapsed = 0;    // seconds from the first send to the last
  std::string error;     // empty unless the generator had to stop early
};

// Runs until `count` packets are out, `duration` is over or `stop` is set.
// Packet i belongs to stream i % streams.size() with sequence i / streams.size().
GenResult generate(const GenConfig& config, const std::atomic<bool>& stop);

// The configuration's first problem, or empty when it can run.
std::string check_config(const GenConfig& config);

}  // namespace mcr::traffic
