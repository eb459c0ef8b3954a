// The receiving end of the traffic generator: reads probes (traffic_probe.h)
// from UDP sockets it is given in recvmmsg batches and keeps, per stream,
// counts of received, duplicated, reordered and lost packets and a latency
// histogram. All memory is allocated up front or on a stream's first packet,
// never per packet.
#pragma once
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mcr::traffic {

// Log-linear histogram of nanosecond values: 32 linear sub-buckets per power
// of two, so any percentile is within about 3 % of the true value.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) << kSubBits;
  void add(uint64_t ns);
  void merge(const LatencyHistogram& other);
  uint64_t percentile(double fraction) const;  // 0 when empty
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, max_ = 0, sum_ = 0;
};

struct StreamStats {
  uint32_t id = 0;
  uint64_t received = 0;    // probes of this stream, duplicates included
  uint64_t duplicates = 0;  // a sequence number seen before (within the last kWindow)
  uint64_t reordered = 0;   // arrived after a higher sequence number
  uint64_t max_seq = 0;
  uint64_t bytes = 0;
  uint64_t first_ns = 0, last_ns = 0;  // when the first and last probe arrived
  LatencyHistogram latency;
  uint64_t unique() const { return received - duplicates; }
  // Gaps below the highest sequence seen; packets lost after it look like
  // packets not sent yet, so a caller that knows the sent count uses that.
  uint64_t lost() const { return max_seq + 1 > unique() ? max_seq + 1 - unique() : 0; }
};

struct SinkConfig {
  std::vector<int> fds;        // UDP sockets, bound and joined
  double duration = 10;        // hard limit, seconds
  double idle = 1;             // stop this long after the last packet (once one arrived)
  uint64_t max_packets = 0;    // 0: no limit
  uint32_t max_streams = 4096; // stream ids from 0 to max_streams - 1
  uint32_t batch = 64;
};

struct SinkResult {
  std::vector<StreamStats> streams;  // streams that sent anything, by id
  LatencyHistogram latency;          // all streams together
  uint64_t invalid = 0;    // datagrams that are not probes, or name a stream out of range
  uint64_t truncated = 0;  // datagrams larger than the receive buffer
  uint64_t late = 0;       // arrived after the window ended (see Sink::end_window)
  double elapsed = 0;
  std::string error;
};

class Sink {
 public:
  explicit Sink(SinkConfig config);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  SinkResult run();                // blocks; call once
  void stop() { stop_.store(true); }  // from any thread; run() returns within ~20 ms
  // From any thread: packets arriving after CLOCK_MONOTONIC `ns` are only
  // counted as late. A benchmark ends the window shortly after the sender
  // stopped, so a relay that fell behind and drains its socket buffers
  // afterwards is not credited with a rate it could not sustain.
  void end_window(uint64_t ns) { window_end_.store(ns); }

 private:
  struct Window;  // duplicate detection for one stream
  struct State {
    StreamStats stats;
    std::unique_ptr<Window> window;
  };
  void account(const uint8_t* data, size_t len, uint64_t now);
  bool drain(int fd);

  SinkConfig config_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> window_end_{0};  // 0: no window
  std::vector<std::unique_ptr<State>> states_;
  std::vector<uint8_t> buffers_;
  std::vector<iovec> iovs_;
  std::vector<mmsghdr> msgs_;
  uint64_t total_ = 0, invalid_ = 0, truncated_ = 0, late_ = 0, last_rx_ = 0;
};

}  // namespace mcr::traffic
