#include "traffic_gen.h"

#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "traffic_probe.h"

namespace mcr::traffic {
namespace {

constexpr size_t kHeaders = 14 + 20 + 8;  // Ethernet, IPv4 without options, UDP
constexpr uint32_t kMaxPayload = 65507;
// While ahead of schedule the generator sleeps until about this many ns of
// traffic is due, so a wake-up (tens of microseconds) is paid per burst, not
// per packet, and the thread never spins.
constexpr double kWakeInterval = 50e-6;
// After a stall (the machine is shared) at most this much backlog is sent
// back to back; older lag is forgiven, so a preempted generator does not
// turn into a burst that no relay could absorb.
constexpr double kMaxLag = 2e-3;
constexpr uint64_t kRetryPause = 20000;  // ns to wait when the device queue is full

uint16_t ip_checksum(const uint8_t* header, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(header[i] << 8 | header[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Ethernet + IPv4 + UDP headers of one stream: the same for every packet of
// it. The UDP checksum is 0 ("none", RFC 768) because the send timestamp
// changes the payload of every packet.
std::array<uint8_t, kHeaders> frame_headers(const GenConfig& c, const GenStream& s) {
  std::array<uint8_t, kHeaders> h{};
  uint32_t group = ntohl(s.destination);
  const uint8_t dst_mac[6] = {0x01, 0x00, 0x5e, static_cast<uint8_t>(group >> 16 & 0x7f),
                              static_cast<uint8_t>(group >> 8), static_cast<uint8_t>(group)};
  std::memcpy(h.data(), dst_mac, 6);
  std::memcpy(h.data() + 6, c.source_mac, 6);
  h[12] = 0x08;  // IPv4
  uint8_t* ip = h.data() + 14;
  uint16_t ip_len = htons(static_cast<uint16_t>(20 + 8 + c.payload_size));
  uint16_t udp_len = htons(static_cast<uint16_t>(8 + c.payload_size));
  uint16_t sport = htons(c.source_port), dport = htons(s.port);
  ip[0] = 0x45;
  ip[1] = c.tos;
  std::memcpy(ip + 2, &ip_len, 2);
  ip[8] = c.ttl;
  ip[9] = 17;  // UDP
  std::memcpy(ip + 12, &c.source, 4);
  std::memcpy(ip + 16, &s.destination, 4);
  uint16_t sum = htons(ip_checksum(ip, 20));
  std::memcpy(ip + 10, &sum, 2);
  uint8_t* udp = ip + 20;
  std::memcpy(udp, &sport, 2);
  std::memcpy(udp + 2, &dport, 2);
  std::memcpy(udp + 4, &udp_len, 2);
  return h;
}

// Buffers and message headers for one sendmmsg batch, built once.
struct Batch {
  explicit Batch(const GenConfig& c)
      : header_len(c.raw ? kHeaders : 0),
        slot_len(header_len + c.payload_size),
        buffers(slot_len * c.batch, 0),
        iovs(c.batch),
        msgs(c.batch) {
    for (const GenStream& s : c.streams) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = s.destination;
      a.sin_port = htons(s.port);
      addrs.push_back(a);
      if (c.raw) headers.push_back(frame_headers(c, s));
    }
    for (uint32_t k = 0; k < c.batch; ++k) {
      iovs[k] = {buffers.data() + k * slot_len, slot_len};
      msgs[k].msg_hdr.msg_iov = &iovs[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_namelen = c.raw ? 0 : sizeof(sockaddr_in);
    }
  }

  // Fills packets first..first+n-1 and sends them; returns sendmmsg's result.
  int send(const GenConfig& c, uint64_t first, uint32_t n, uint64_t now) {
    const uint64_t streams = c.streams.size();
    for (uint32_t k = 0; k < n; ++k) {
      uint64_t i = first + k;
      size_t s = static_cast<size_t>(i % streams);
      uint8_t* slot = buffers.data() + k * slot_len;
      if (c.raw) std::memcpy(slot, headers[s].data(), kHeaders);
      else msgs[k].msg_hdr.msg_name = &addrs[s];
      write_probe(slot + header_len, {c.streams[s].id, i / streams, now});
    }
    return sendmmsg(c.fd, msgs.data(), n, 0);
  }

  size_t header_len, slot_len;
  std::vector<uint8_t> buffers;
  std::vector<iovec> iovs;
  std::vector<mmsghdr> msgs;
  std::vector<sockaddr_in> addrs;
  std::vector<std::array<uint8_t, kHeaders>> headers;
};

void sleep_until(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Restores the thread's timer slack on scope exit. The default 50 us slack
// would make every paced sleep that much late.
struct TimerSlack {
  TimerSlack() : saved(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) { prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0); }
  ~TimerSlack() {
    if (saved > 0) prctl(PR_SET_TIMERSLACK, saved, 0, 0, 0);
  }
  long saved;
};

}  // namespace

std::string check_config(const GenConfig& c) {
  if (c.fd < 0) return "no socket to send on";
  if (c.streams.empty()) return "no stream to send";
  if (c.payload_size < kProbeSize || c.payload_size > kMaxPayload)
    return "payload size must be between " + std::to_string(kProbeSize) + " and " + std::to_string(kMaxPayload);
  if (c.batch == 0 || c.batch > 1024) return "batch must be between 1 and 1024";
  if (!(c.duration > 0)) return "duration must be positive";
  if (!(c.rate >= 0)) return "rate must not be negative";
  if (c.raw)
    for (const GenStream& s : c.streams)
      if ((ntohl(s.destination) >> 28) != 0xe) return "raw mode sends to multicast groups only";
  return {};
}

GenResult generate(const GenConfig& c, const std::atomic<bool>& stop) {
  GenResult result;
  result.error = check_config(c);
  if (!result.error.empty()) return result;
  TimerSlack slack;
  Batch batch(c);
  const uint64_t limit = c.count ? c.count : UINT64_MAX;
  const uint64_t start = monotonic_ns();
  const uint64_t deadline = start + static_cast<uint64_t>(c.duration * 1e9);
  const double ns_per_packet = c.rate > 0 ? 1e9 / c.rate : 0;
  const uint64_t burst = std::clamp<uint64_t>(static_cast<uint64_t>(c.rate * kWakeInterval), 1, c.batch);
  const uint64_t max_lag = std::max<uint64_t>(c.batch, static_cast<uint64_t>(c.rate * kMaxLag));
  double origin = static_cast<double>(start);  // when packet 0 was due; moves forward after a stall
  uint64_t now = start;
  while (result.sent < limit && !stop.load(std::memory_order_relaxed)) {
    now = monotonic_ns();
    if (now >= deadline) break;
    uint64_t want = std::min<uint64_t>(limit - result.sent, c.batch);
    if (c.rate > 0) {
      uint64_t due = static_cast<uint64_t>((static_cast<double>(now) - origin) / ns_per_packet) + 1;
      if (due <= result.sent) {
        double wake = origin + static_cast<double>(result.sent + burst - 1) * ns_per_packet;
        sleep_until(std::min<uint64_t>(static_cast<uint64_t>(wake), deadline));
        continue;
      }
      if (due - result.sent > max_lag) origin += static_cast<double>(due - result.sent - max_lag) * ns_per_packet;
      want = std::min<uint64_t>(want, std::min(due - result.sent, max_lag));
    }
    int n = batch.send(c, result.sent, static_cast<uint32_t>(want), now);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
        result.error = std::string("sendmmsg: ") + strerror(errno);
        break;
      }
      ++result.retries;
      sleep_until(std::min(monotonic_ns() + kRetryPause, deadline));
      continue;
    }
    // A short count means a later message was refused (sendmmsg reports that
    // error only when nothing went out): it is sent again on the next turn.
    if (static_cast<uint64_t>(n) < want) ++result.retries;
    result.sent += static_cast<uint64_t>(n);
  }
  result.elapsed = static_cast<double>(monotonic_ns() - start) / 1e9;
  return result;
}

}  // namespace mcr::traffic
