// SyncRules: the engine's table becomes the rule set sent, in bounded steps
// (one per loop pass) so that packets keep flowing through a sync of any
// size. No other command is read meanwhile, so sockets and rules change
// only here until the sync ends.
//
//   check   read, validate and build every rule (ids and keys unique: hash
//           sets, O(n)); the first error ends the sync with nothing changed
//   remove  rules not in the set, or changed in it, leave the table
//   add     the set's rules the table does not hold are added
// Rules present and unchanged are never touched, so their traffic and
// counters go on undisturbed; a changed rule is briefly absent between its
// removal and its new version's arrival.
#include <unordered_map>

#include "engine.h"

namespace mcr {
namespace {

// Work per pass, in rules plus their outputs: a few hundred microseconds,
// far less than an input ring holds at line rate.
constexpr uint32_t kSyncBudget = 2048;

struct KeyHash {
  size_t operator()(const RuleKey& k) const {
    uint64_t h = (static_cast<uint64_t>(k.group) << 32 | k.source) * 0x9e3779b97f4a7c15ull;
    h ^= (static_cast<uint64_t>(k.ifindex) << 32 | static_cast<uint64_t>(k.vlan) << 16 | k.port) * 0xc2b2ae3d27d4eb4full;
    h ^= static_cast<uint64_t>(k.prefix_len) * 0xff51afd7ed558ccdull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

bool same_rule(const Rule& a, const Rule& b) {
  if (a.id != b.id || !(a.key == b.key) || a.notify != b.notify || a.priority != b.priority ||
      a.outputs.size() != b.outputs.size())
    return false;
  for (size_t i = 0; i < a.outputs.size(); ++i)
    if (!(a.outputs[i].spec == b.outputs[i].spec)) return false;
  return true;
}

}  // namespace

struct Engine::SyncJob {
  enum class Phase { Check, Remove, Add };
  std::vector<uint8_t> message;  // what `reader` reads
  wire::SyncReader reader;
  uint32_t seq = 0;
  Phase phase = Phase::Check;
  size_t next = 0;          // the next rule slot (remove) or built rule (add)
  std::vector<Rule> built;  // the set, in the order sent
  std::unordered_map<uint32_t, uint32_t> wanted;         // rule id -> index in built
  std::unordered_map<RuleKey, uint32_t, KeyHash> keys;  // key -> rule id
  uint32_t ranges = 0;
  bool all_added = true;
};

void Engine::SyncJobDeleter::operator()(SyncJob* job) const { delete job; }

void Engine::begin_sync(std::vector<uint8_t>&& message) {
  sync_.reset(new SyncJob);
  sync_->message = std::move(message);
  std::memcpy(&sync_->seq, sync_->message.data() + 4, sizeof(sync_->seq));
  std::string error = sync_->reader.open(sync_->message.data(), sync_->message.size());
  if (error.empty() && sync_->reader.left() > rules_.capacity())
    error = "rule table full (" + std::to_string(rules_.capacity()) + " rules; the set has " +
            std::to_string(sync_->reader.left()) + ")";
  if (!error.empty()) return end_sync(error);
  sync_->built.reserve(sync_->reader.left());
  sync_->wanted.reserve(sync_->reader.left());
  sync_->keys.reserve(sync_->reader.left());
}

void Engine::step_sync() {
  switch (sync_->phase) {
    case SyncJob::Phase::Check: check_synced_rules(kSyncBudget); break;
    case SyncJob::Phase::Remove: remove_unwanted_rules(kSyncBudget); break;
    case SyncJob::Phase::Add: add_synced_rules(kSyncBudget); break;
  }
}

void Engine::check_synced_rules(uint32_t budget) {
  SyncJob& job = *sync_;
  while (job.reader.left() > 0 && budget > 0) {
    RuleSpec spec;
    if (std::string error = job.reader.next(spec); !error.empty()) return end_sync(error);
    Rule& rule = job.built.emplace_back();
    if (std::string error = build_rule(spec, rule); !error.empty())
      return end_sync("rule " + std::to_string(spec.id) + ": " + error);
    if (!job.wanted.emplace(spec.id, static_cast<uint32_t>(job.built.size() - 1)).second)
      return end_sync("duplicate rule id " + std::to_string(spec.id));
    auto [same_key, fresh] = job.keys.emplace(spec.key, spec.id);
    if (!fresh)
      return end_sync("rules " + std::to_string(same_key->second) + " and " + std::to_string(spec.id) +
                      " have the same key (input, group, port, source, VLAN)");
    if (spec.key.is_range() && ++job.ranges > RuleTable::kMaxRangeRules)
      return end_sync("too many group-range rules (at most " + std::to_string(RuleTable::kMaxRangeRules) + ")");
    budget -= std::min<uint32_t>(budget, 1 + static_cast<uint32_t>(spec.outputs.size()));
  }
  if (job.reader.left() == 0) job.phase = SyncJob::Phase::Remove;
}

void Engine::remove_unwanted_rules(uint32_t budget) {
  SyncJob& job = *sync_;
  for (; job.next < rules_.capacity() && budget > 0; ++job.next, --budget) {
    const Rule& current = rules_.at(static_cast<uint32_t>(job.next));
    if (!current.live) continue;
    auto it = job.wanted.find(current.id);
    if (it == job.wanted.end() || !same_rule(current, job.built[it->second])) rules_.remove(current.id);
  }
  if (job.next == rules_.capacity()) {
    job.phase = SyncJob::Phase::Add;
    job.next = 0;
  }
}

void Engine::add_synced_rules(uint32_t budget) {
  SyncJob& job = *sync_;
  for (; job.next < job.built.size() && budget > 0; ++job.next) {
    Rule& rule = job.built[job.next];
    budget -= std::min<uint32_t>(budget, 1 + static_cast<uint32_t>(rule.outputs.size()));
    if (rules_.by_id(rule.id) != nullptr) continue;  // unchanged
    uint32_t id = rule.id, slot;
    // Checked above; a refusal here would be a bug, and the hash the
    // supervisor polls shows the drift.
    if (std::string error = rules_.add(std::move(rule), slot); !error.empty()) {
      log_.log(LogLevel::Error, "sync: rule " + std::to_string(id) + ": " + error);
      job.all_added = false;
    }
  }
  if (job.next == job.built.size()) {
    if (job.reader.sorted() && job.all_added) {  // the table holds exactly these rules: their hash is known
      ruleset_hash_ = job.reader.hash();
      hashed_changes_ = rules_.changes();
    }
    end_sync({});
  }
}

void Engine::end_sync(const std::string& error) {
  uint32_t seq = sync_->seq;
  sync_.reset();
  if (error.empty()) {
    log_.log(LogLevel::Debug, "rule sync done");
    reply(wire::encode_ok(seq));
  } else {
    log_.log(LogLevel::Warning, "rule sync refused: " + error);
    reply(wire::encode_error(seq, error));
  }
}

}  // namespace mcr
