#include "traffic_sink.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "traffic_probe.h"

namespace mcr::traffic {
namespace {

constexpr size_t kSlotSize = 16384;  // a 9000-byte MTU datagram fits; larger ones are counted as truncated
constexpr int kPollMs = 20;          // how often run() looks at stop() and the clocks
constexpr int kDrainsPerWake = 64;   // batches read from one socket before looking at the others

int top_bit(uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

void LatencyHistogram::add(uint64_t ns) {
  size_t index;
  if (ns < (1u << kSubBits)) {
    index = static_cast<size_t>(ns);
  } else {
    int shift = top_bit(ns) - kSubBits;
    index = (static_cast<size_t>(shift + 1) << kSubBits) + ((ns >> shift) & ((1u << kSubBits) - 1));
  }
  ++buckets_[index];
  ++count_;
  sum_ += ns;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::percentile(double fraction) const {
  if (count_ == 0) return 0;
  uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen < rank) continue;
    size_t group = i >> kSubBits, sub = i & ((1u << kSubBits) - 1);
    if (group == 0) return sub;
    int shift = static_cast<int>(group) - 1;
    uint64_t low = static_cast<uint64_t>((1u << kSubBits) + sub) << shift;
    return std::min<uint64_t>(max_, low + (uint64_t{1} << shift) / 2);  // the middle of the bucket
  }
  return max_;
}

// The last kSize sequence numbers of a stream, one bit each, to tell a
// duplicate from a late (reordered) packet.
struct Sink::Window {
  static constexpr uint64_t kSize = 1 << 16;
  std::vector<uint64_t> bits = std::vector<uint64_t>(kSize / 64, 0);
  bool test(uint64_t seq) const { return bits[(seq % kSize) / 64] >> (seq % 64) & 1; }
  void set(uint64_t seq) { bits[(seq % kSize) / 64] |= 1ull << (seq % 64); }
  void clear(uint64_t seq) { bits[(seq % kSize) / 64] &= ~(1ull << (seq % 64)); }
  // Moves the window forward from `from` to `to`, forgetting what was there.
  void advance(uint64_t from, uint64_t to) {
    if (to - from >= kSize) std::fill(bits.begin(), bits.end(), 0);
    else for (uint64_t q = from + 1; q <= to; ++q) clear(q);
  }
};

Sink::Sink(SinkConfig config)
    : config_(std::move(config)),
      states_(config_.max_streams),
      buffers_(kSlotSize * config_.batch),
      iovs_(config_.batch),
      msgs_(config_.batch) {
  for (uint32_t k = 0; k < config_.batch; ++k) {
    iovs_[k] = {buffers_.data() + k * kSlotSize, kSlotSize};
    std::memset(&msgs_[k], 0, sizeof(msgs_[k]));
    msgs_[k].msg_hdr.msg_iov = &iovs_[k];
    msgs_[k].msg_hdr.msg_iovlen = 1;
  }
}

Sink::~Sink() = default;

void Sink::account(const uint8_t* data, size_t len, uint64_t now) {
  Probe probe;
  if (!read_probe(data, len, probe) || probe.stream >= config_.max_streams) {
    ++invalid_;
    return;
  }
  std::unique_ptr<State>& slot = states_[probe.stream];
  if (!slot) {  // a stream's first packet: its one allocation
    slot = std::make_unique<State>();
    slot->window = std::make_unique<Window>();
    slot->stats.id = probe.stream;
    slot->stats.first_ns = now;
  }
  StreamStats& s = slot->stats;
  Window& w = *slot->window;
  s.latency.add(now > probe.sent_ns ? now - probe.sent_ns : 0);
  s.bytes += len;
  s.last_ns = now;
  if (s.received++ == 0 || probe.seq > s.max_seq) {
    if (s.received > 1) w.advance(s.max_seq, probe.seq);
    w.set(probe.seq);
    s.max_seq = probe.seq;
  } else if (s.max_seq - probe.seq >= Window::kSize) {
    ++s.reordered;  // too old to tell whether it is a duplicate
  } else if (w.test(probe.seq)) {
    ++s.duplicates;
  } else {
    w.set(probe.seq);
    ++s.reordered;
  }
}

// Reads one batch from `fd`; true when the batch was full (more may wait).
bool Sink::drain(int fd) {
  int n = recvmmsg(fd, msgs_.data(), config_.batch, MSG_DONTWAIT, nullptr);
  if (n <= 0) return false;
  uint64_t now = monotonic_ns();
  total_ += static_cast<uint64_t>(n);
  last_rx_ = now;
  uint64_t window_end = window_end_.load(std::memory_order_relaxed);
  if (window_end != 0 && now > window_end) {
    late_ += static_cast<uint64_t>(n);
    return static_cast<uint32_t>(n) == config_.batch;
  }
  for (int k = 0; k < n; ++k) {
    if (msgs_[k].msg_hdr.msg_flags & MSG_TRUNC) {
      ++truncated_;
      continue;
    }
    account(buffers_.data() + static_cast<size_t>(k) * kSlotSize, msgs_[k].msg_len, now);
  }
  return static_cast<uint32_t>(n) == config_.batch;
}

SinkResult Sink::run() {
  SinkResult result;
  std::vector<pollfd> fds;
  for (int fd : config_.fds) fds.push_back({fd, POLLIN, 0});
  const uint64_t start = monotonic_ns();
  const uint64_t deadline = start + static_cast<uint64_t>(config_.duration * 1e9);
  const uint64_t idle = static_cast<uint64_t>(config_.idle * 1e9);
  while (!stop_.load(std::memory_order_relaxed)) {
    uint64_t now = monotonic_ns();
    if (now >= deadline || (total_ > 0 && now - last_rx_ >= idle)) break;
    if (config_.max_packets && total_ >= config_.max_packets) break;
    int rc = poll(fds.data(), fds.size(), kPollMs);
    if (rc < 0 && errno != EINTR) {
      result.error = std::string("poll: ") + strerror(errno);
      break;
    }
    for (const pollfd& p : fds) {
      if (!(p.revents & POLLIN)) continue;
      for (int i = 0; i < kDrainsPerWake && drain(p.fd); ++i) {
      }
    }
  }
  result.elapsed = static_cast<double>(monotonic_ns() - start) / 1e9;
  for (const auto& state : states_)
    if (state) {
      result.streams.push_back(state->stats);
      result.latency.merge(state->stats.latency);
    }
  result.invalid = invalid_;
  result.truncated = truncated_;
  result.late = late_;
  return result;
}

}  // namespace mcr::traffic
