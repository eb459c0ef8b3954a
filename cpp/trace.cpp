#include "trace.h"

#include <ctime>

namespace mcr {

void Tracer::start(uint32_t rule_id, uint32_t count, uint32_t sample, uint64_t deadline_ms) {
  rule_id_ = rule_id;
  remaining_ = count;
  sample_ = sample == 0 ? 1 : sample;
  seen_ = 0;
  deadline_ms_ = deadline_ms;
  head_ = size_ = 0;
  missed_ = 0;
}

TraceRecord* Tracer::begin(uint32_t rule_id, uint64_t now_ms) {
  expire(now_ms);
  if (remaining_ == 0) return nullptr;
  if (rule_id != rule_id_ || ++seen_ < sample_) return nullptr;
  seen_ = 0;
  if (size_ == kCapacity) {
    ++missed_;
    return nullptr;
  }
  --remaining_;
  TraceRecord& record = ring_[(head_ + size_++) % kCapacity];
  record = TraceRecord{};
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  record.time_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
  record.rule_id = rule_id;
  return &record;
}

std::vector<TraceRecord> Tracer::take() {
  std::vector<TraceRecord> out;
  out.reserve(size_);
  for (uint32_t i = 0; i < size_; ++i) out.push_back(ring_[(head_ + i) % kCapacity]);
  head_ = size_ = 0;
  return out;
}

}  // namespace mcr
