// GetStats in bounded steps. The reply for a large rule table (10,000 rules
// with 100,000 outputs: 2.7 MB) took the loop about 15 ms to build in one go,
// long enough for a busy input's ring to overflow; it is now written a slice
// of rules per loop pass, with the inputs read between slices. Commands that
// come after it wait, as behind a rule sync, so replies stay in order and
// the rule table cannot change under it. Counters keep counting meanwhile:
// each is read once, at some moment while the reply is built, so what a
// reply says never goes backwards. Control path: allocation is fine here.
#include <linux/if_packet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "engine.h"
#include "pim_register.h"
#include "wire_codec.h"

namespace mcr {
namespace {

// Output counters (and rule headers) written per loop pass: about half a
// millisecond of copying, however large the table.
constexpr size_t kStatsPerPass = 4096;

}  // namespace

struct Engine::StatsJob {
  wire::codec::Writer w;
  size_t count_at = 0;  // where the rule count goes once known
  uint32_t rules = 0;
  size_t slot = 0;  // the next rule table slot to write
};

void Engine::StatsJobDeleter::operator()(StatsJob* job) const { delete job; }

// The header, drops, events and inputs at once (small), then the rules in steps.
void Engine::begin_stats(uint32_t seq) {
  if (hashed_changes_ != rules_.changes()) {  // hashing every rule is worth doing once per change
    ruleset_hash_ = wire::ruleset_hash(rules_.specs());
    hashed_changes_ = rules_.changes();
  }
  stats_.reset(new StatsJob{wire::codec::header(wire::Type::ReplyStats, seq)});
  wire::codec::Writer& w = stats_->w;
  w.put(ruleset_hash_).put(static_cast<uint32_t>(drops_.size()));
  for (uint64_t d : drops_) w.put(d);
  EventCounters events = egress_.events();
  w.put(static_cast<uint32_t>(events.size()));
  for (uint64_t e : events) w.put(e);
  size_t inputs_at = w.bytes.size();
  uint32_t inputs = 0;
  w.put(inputs);
  for (Input& in : inputs_) {
    if (in.fd < 0) continue;
    tpacket_stats kernel{};  // reading resets the kernel's counters: accumulate
    socklen_t len = sizeof(kernel);
    if (getsockopt(in.fd, SOL_PACKET, PACKET_STATISTICS, &kernel, &len) == 0) {
      in.kernel_packets += kernel.tp_packets;
      in.kernel_drops += kernel.tp_drops;
    }
    w.put(in.ifindex).put(in.frames).put(in.bytes).put(in.kernel_packets).put(in.kernel_drops);
    ++inputs;
  }
  if (register_input_ != nullptr) {  // what the raw socket read, as the virtual input's frames
    w.put(kRegisterIfindex).put(register_input_->registers).put(register_input_->bytes);
    w.put(uint64_t{0}).put(uint64_t{0});
    ++inputs;
  }
  std::memcpy(w.bytes.data() + inputs_at, &inputs, sizeof(inputs));
  stats_->count_at = w.bytes.size();
  w.put(uint32_t{0});
  w.bytes.reserve(w.bytes.size() + rules_.size() * (4 + 16 + 4) + kStatsPerPass * 24);
  step_stats();
}

// One slice of rules; the reply goes out after the last.
void Engine::step_stats() {
  StatsJob& job = *stats_;
  const std::vector<Rule>& slots = rules_.rules();
  for (size_t budget = kStatsPerPass; job.slot < slots.size() && budget > 0;) {
    const Rule& rule = slots[job.slot++];
    if (!rule.live) continue;
    job.w.put(rule.id).put(rule.packets).put(rule.bytes).put(static_cast<uint32_t>(rule.outputs.size()));
    for (const Output& o : rule.outputs) job.w.put(o.packets).put(o.bytes).put(o.errors);
    ++job.rules;
    budget -= std::min(budget, rule.outputs.size() + 1);
  }
  if (job.slot < slots.size()) return;
  std::memcpy(job.w.bytes.data() + job.count_at, &job.rules, sizeof(job.rules));
  std::vector<uint8_t> message = std::move(job.w.bytes);
  stats_.reset();
  reply(message);
}

}  // namespace mcr
