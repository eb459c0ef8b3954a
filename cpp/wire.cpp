#include "wire.h"

#include "wire_codec.h"

#include <arpa/inet.h>

#include <cstring>

namespace mcr::wire {

using namespace codec;

namespace {

constexpr uint8_t kKeepSource = 1, kFollow = 2, kRegister = 4, kOutputPriority = 8;  // output flags
constexpr uint8_t kNotify = 1, kRulePriorityFlag = 2;                                 // rule flags
constexpr size_t kMinRuleBody = 24;  // a rule without outputs

// A group range is a multicast prefix written in its canonical form.
std::string check_prefix(const RuleKey& key) {
  if (key.prefix_len > 32) return "AddRule: group prefix length must be 4..32";
  if (!key.is_range()) return {};
  if (key.prefix_len < 4 || (ntohl(key.group) >> 28) != 0xe)
    return "AddRule: a group range must lie within 224.0.0.0/4 (prefix length 4..32)";
  if ((key.group & ~key.mask()) != 0) return "AddRule: the group range has bits set past its prefix length";
  return {};
}

std::string decode_rule_body(Reader& r, RuleSpec& rule) {
  rule.id = r.get<uint32_t>();
  rule.key.ifindex = r.get<uint32_t>();
  rule.key.group = r.get<uint32_t>();
  rule.key.source = r.get<uint32_t>();
  rule.key.port = r.get<uint16_t>();
  rule.key.vlan = r.get<uint16_t>();
  rule.key.prefix_len = r.get<uint8_t>();
  uint16_t n = r.get<uint16_t>();
  if (r.failed) return "AddRule: message truncated";
  if (rule.key.vlan > 4094) return "AddRule: VLAN id must be 1..4094 (0: untagged)";
  if (std::string error = check_prefix(rule.key); !error.empty()) return error;
  // n == 0 is allowed: such a rule matches and counts but sends nothing. The
  // MRIB uses one to keep an (S,G) that every listener excluded from falling
  // through to the (*,G) rule.
  if (n > kMaxOutputs) return "AddRule: too many outputs (" + std::to_string(n) + ", at most " + std::to_string(kMaxOutputs) + ")";
  if (r.remaining() < static_cast<size_t>(n) * 17) return "AddRule: message truncated";
  rule.outputs.assign(n, OutputSpec{});  // fresh: optional fields absent from the wire keep their defaults
  for (OutputSpec& o : rule.outputs) {
    o.destination = r.get<uint32_t>();
    o.port = r.get<uint16_t>();
    o.ifindex = r.get<uint32_t>();
    o.ttl = r.get<int16_t>();
    o.dscp = r.get<int16_t>();
    uint8_t flags = r.get<uint8_t>();
    if (flags > (kKeepSource | kFollow | kRegister | kOutputPriority)) return "AddRule: unknown output flags";
    o.keep_source = flags & kKeepSource;
    o.follow = flags & kFollow;
    o.pim_register = flags & kRegister;
    o.vlan = r.get<uint16_t>();
    if (o.pim_register) {
      o.register_source = r.get<uint32_t>();
      if (o.keep_source || o.follow || o.vlan != 0)
        return "AddRule: a register output cannot keep the source, follow or tag a VLAN";
      if (o.destination == 0 || (ntohl(o.destination) >> 28) >= 0xe)
        return "AddRule: a register output needs the RP's unicast address";
    }
    if (flags & kOutputPriority) {
      o.priority = r.get<int64_t>();
      if (o.priority < 0 || o.priority > kMaxPriority) return "AddRule: output priority must be 0..6";
      if (o.pim_register) return "AddRule: a register output cannot carry a priority";
    }
    if (o.vlan > 4094) return "AddRule: output VLAN id must be 1..4094 (0: untagged)";
    if (o.ttl < -1 || o.ttl == 0 || o.ttl > 255) return "AddRule: output TTL must be 1..255";
    if (o.dscp < -1 || o.dscp > 63) return "AddRule: output DSCP must be 0..63";
  }
  uint8_t rule_flags = r.get<uint8_t>();
  if (r.failed) return "AddRule: message truncated";
  if (rule_flags > (kNotify | kRulePriorityFlag)) return "AddRule: unknown rule flags";
  rule.notify = rule_flags & kNotify;
  rule.priority = 0;
  if (rule_flags & kRulePriorityFlag) {
    rule.priority = r.get<int64_t>();
    if (r.failed) return "AddRule: message truncated";
    // 0 is sent as no priority at all: one spelling per rule.
    if (rule.priority != kDscpPriority && (rule.priority <= 0 || rule.priority > kMaxPriority))
      return "AddRule: rule priority must be 1..6 or DSCP (-2) when flagged";
  }
  return {};
}

std::string decode_rule(Reader& r, RuleSpec& rule) {
  std::string error = decode_rule_body(r, rule);
  return error.empty() ? finish(r, "AddRule") : error;
}

std::string decode_initialize(Reader& r, Initialize& init) {
  init.worker_id = r.get<uint32_t>();
  init.core = r.get<int32_t>();
  init.log_level = r.get<uint8_t>();
  init.max_rules = r.get<uint32_t>();
  init.rx_frames = r.get<uint32_t>();
  init.send_slots = r.get<uint32_t>();
  std::string error = finish(r, "Initialize");
  if (!error.empty()) return error;
  if (init.log_level > 3) return "Initialize: log level must be 0..3";
  if (init.max_rules == 0 || init.max_rules > (1u << 20)) return "Initialize: max_rules must be 1..1048576";
  if (init.rx_frames == 0 || (init.rx_frames & (init.rx_frames - 1)) || init.rx_frames > 32768)
    return "Initialize: rx_frames must be a power of two <= 32768";
  if (init.send_slots == 0 || init.send_slots > (1u << 20)) return "Initialize: send_slots must be 1..1048576";
  return {};
}

void put_rule(Writer& w, const RuleSpec& rule) {
  w.put(rule.id).put(rule.key.ifindex).put(rule.key.group).put(rule.key.source);
  w.put(rule.key.port).put(rule.key.vlan).put(rule.key.prefix_len).put(static_cast<uint16_t>(rule.outputs.size()));
  for (const OutputSpec& o : rule.outputs) {
    bool own_priority = o.priority != kRulePriority;
    uint8_t flags = (o.keep_source ? kKeepSource : 0) | (o.follow ? kFollow : 0) | (o.pim_register ? kRegister : 0) |
                    (own_priority ? kOutputPriority : 0);
    w.put(o.destination).put(o.port).put(o.ifindex).put(o.ttl).put(o.dscp).put(flags).put(o.vlan);
    if (o.pim_register) w.put(o.register_source);
    if (own_priority) w.put(o.priority);
  }
  w.put(static_cast<uint8_t>((rule.notify ? kNotify : 0) | (rule.priority != 0 ? kRulePriorityFlag : 0)));
  if (rule.priority != 0) w.put(rule.priority);
}

}  // namespace

std::string decode_command(const uint8_t* data, size_t len, Command& out) {
  Reader r(data, len);
  uint16_t type = r.get<uint16_t>();
  uint16_t reserved = r.get<uint16_t>();
  out.seq = r.get<uint32_t>();
  if (r.failed) return "message shorter than its 8-byte header";
  if (reserved != 0) return "reserved header field is not zero";
  out.type = static_cast<Type>(type);
  switch (out.type) {
    case Type::AddInput:
    case Type::AddEgress:
    case Type::RemoveInterface:
      out.ifindex = r.get<uint32_t>();
      return finish(r, out.type == Type::AddInput ? "AddInput" : out.type == Type::AddEgress ? "AddEgress"
                                                                                              : "RemoveInterface");
    case Type::AddRule:
      return decode_rule(r, out.rule);
    case Type::RemoveRule:
      out.rule_id = r.get<uint32_t>();
      return finish(r, "RemoveRule");
    case Type::GetStats:
      return finish(r, "GetStats");
    case Type::AddRegisterEgress:
      return finish(r, "AddRegisterEgress");
    case Type::AddRegisterInput:
      return finish(r, "AddRegisterInput");
    case Type::TakeNotifications:
      return finish(r, "TakeNotifications");
    case Type::SetNotifyWindow:
      out.notify_window_ms = r.get<uint32_t>();
      return finish(r, "SetNotifyWindow");
    case Type::TraceRule:
      return decode_trace_rule(r, out);
    case Type::TakeTrace:
      return finish(r, "TakeTrace");
    case Type::Shutdown:
      return finish(r, "Shutdown");
    case Type::Initialize:
      return decode_initialize(r, out.init);
    case Type::SyncRules: {
      SyncReader sync;
      std::string error = sync.open(data, len);
      out.rules.resize(error.empty() ? sync.left() : 0);
      for (size_t i = 0; i < out.rules.size() && error.empty(); ++i) error = sync.next(out.rules[i]);
      return error;
    }
    case Type::AddPacketEgress:
    case Type::AddQueuedEgress:
    case Type::UpdateLink: {
      const char* what = out.type == Type::UpdateLink        ? "UpdateLink"
                         : out.type == Type::AddQueuedEgress ? "AddQueuedEgress"
                                                             : "AddPacketEgress";
      PacketEgress& e = out.packet_egress;
      e.ifindex = r.get<uint32_t>();
      e.source = r.get<uint32_t>();
      e.mtu = r.get<uint16_t>();
      for (uint8_t& byte : e.mac) byte = r.get<uint8_t>();
      std::string error = finish(r, what);
      if (error.empty() && e.mtu < 68) return std::string(what) + ": MTU below 68";
      return error;
    }
    case Type::SetLogLevel:
      out.log_level = r.get<uint8_t>();
      if (out.log_level > 3 && !r.failed) return "SetLogLevel: level must be 0..3";
      return finish(r, "SetLogLevel");
    default:
      return "unknown command type " + std::to_string(type);
  }
}

std::string SyncReader::open(const uint8_t* data, size_t len) {
  Reader r(data + kHeaderSize, len < kHeaderSize ? 0 : len - kHeaderSize);
  left_ = r.get<uint32_t>();
  if (r.failed || left_ > r.remaining() / kMinRuleBody) return "SyncRules: message truncated";
  data_ = data;
  len_ = len;
  pos_ = len - r.remaining();
  return left_ == 0 ? finish(r, "SyncRules") : std::string();
}

std::string SyncReader::next(RuleSpec& rule) {
  if (left_ == 0) return "SyncRules: no rule left";
  Reader r(data_ + pos_, len_ - pos_);
  std::string error = decode_rule_body(r, rule);
  if (!error.empty()) return "SyncRules: " + error;
  size_t end = len_ - r.remaining();
  hash_ = fnv1a(data_ + pos_, end - pos_, hash_);  // a rule's body is what ruleset_hash hashes for it
  sorted_ = sorted_ && (first_ || rule.id > last_id_);
  first_ = false;
  last_id_ = rule.id;
  pos_ = end;
  return --left_ == 0 ? finish(r, "SyncRules") : std::string();
}

std::vector<uint8_t> encode_command(const Command& c) {
  Writer w = header(c.type, c.seq);
  switch (c.type) {
    case Type::AddInput:
    case Type::AddEgress:
    case Type::RemoveInterface:
      w.put(c.ifindex);
      break;
    case Type::AddRule:
      put_rule(w, c.rule);
      break;
    case Type::SyncRules:
      w.put(static_cast<uint32_t>(c.rules.size()));
      for (const RuleSpec& rule : c.rules) put_rule(w, rule);
      break;
    case Type::SetLogLevel:
      w.put(c.log_level);
      break;
    case Type::AddPacketEgress:
    case Type::AddQueuedEgress:
    case Type::UpdateLink:
      w.put(c.packet_egress.ifindex).put(c.packet_egress.source).put(c.packet_egress.mtu);
      for (uint8_t byte : c.packet_egress.mac) w.put(byte);
      break;
    case Type::Initialize:
      w.put(c.init.worker_id).put(c.init.core).put(c.init.log_level);
      w.put(c.init.max_rules).put(c.init.rx_frames).put(c.init.send_slots);
      break;
    case Type::RemoveRule:
      w.put(c.rule_id);
      break;
    case Type::SetNotifyWindow:
      w.put(c.notify_window_ms);
      break;
    case Type::TraceRule:
      w.put(c.rule_id).put(c.trace.count).put(c.trace.sample).put(c.trace.timeout_ms);
      break;
    default:
      break;
  }
  return std::move(w.bytes);
}

std::vector<uint8_t> encode_ok(uint32_t seq) { return std::move(header(Type::ReplyOk, seq).bytes); }

std::vector<uint8_t> encode_error(uint32_t seq, const std::string& message) {
  Writer w = header(Type::ReplyError, seq);
  w.bytes.insert(w.bytes.end(), message.begin(), message.end());
  return std::move(w.bytes);
}

std::vector<uint8_t> encode_stats(uint32_t seq, const Stats& s) {
  Writer w = header(Type::ReplyStats, seq);
  w.put(s.ruleset_hash).put(static_cast<uint32_t>(s.drops.size()));
  for (uint64_t d : s.drops) w.put(d);
  w.put(static_cast<uint32_t>(s.events.size()));
  for (uint64_t e : s.events) w.put(e);
  w.put(static_cast<uint32_t>(s.inputs.size()));
  for (const InputStats& i : s.inputs) w.put(i.ifindex).put(i.frames).put(i.bytes).put(i.kernel_packets).put(i.kernel_drops);
  w.put(static_cast<uint32_t>(s.rules.size()));
  for (const RuleStats& rs : s.rules) {
    w.put(rs.id).put(rs.packets).put(rs.bytes).put(static_cast<uint32_t>(rs.outputs.size()));
    for (const OutputStats& o : rs.outputs) w.put(o.packets).put(o.bytes).put(o.errors);
  }
  return std::move(w.bytes);
}

std::vector<uint8_t> encode_notifications(uint32_t seq, const std::vector<Notification>& notifications) {
  Writer w = header(Type::ReplyNotifications, seq);
  w.put(static_cast<uint32_t>(notifications.size()));
  for (const Notification& n : notifications) w.put(n.rule_id).put(n.source).put(n.group).put(n.ifindex).put(n.dr);
  return std::move(w.bytes);
}

namespace {

std::string decode_notifications(Reader& r, std::vector<Notification>& out) {
  uint32_t n = r.get<uint32_t>();
  if (r.failed || n > r.remaining() / 20) return "Notifications: message truncated";
  out.resize(n);
  for (Notification& e : out) {
    e.rule_id = r.get<uint32_t>();
    e.source = r.get<uint32_t>();
    e.group = r.get<uint32_t>();
    e.ifindex = r.get<uint32_t>();
    e.dr = r.get<uint32_t>();
  }
  return finish(r, "Notifications");
}

std::string decode_stats(Reader& r, Stats& s) {
  s.ruleset_hash = r.get<uint64_t>();
  if (r.get<uint32_t>() != s.drops.size()) return "Stats: drop counter count mismatch";
  for (uint64_t& d : s.drops) d = r.get<uint64_t>();
  if (r.get<uint32_t>() != s.events.size()) return "Stats: event counter count mismatch";
  for (uint64_t& e : s.events) e = r.get<uint64_t>();
  uint32_t inputs = r.get<uint32_t>();
  if (r.failed || inputs > r.remaining() / 36) return "Stats: message truncated";
  s.inputs.resize(inputs);
  for (InputStats& i : s.inputs) {
    i.ifindex = r.get<uint32_t>();
    i.frames = r.get<uint64_t>();
    i.bytes = r.get<uint64_t>();
    i.kernel_packets = r.get<uint64_t>();
    i.kernel_drops = r.get<uint64_t>();
  }
  uint32_t rules = r.get<uint32_t>();
  if (r.failed || rules > r.remaining() / 24) return "Stats: message truncated";
  s.rules.resize(rules);
  for (RuleStats& rs : s.rules) {
    rs.id = r.get<uint32_t>();
    rs.packets = r.get<uint64_t>();
    rs.bytes = r.get<uint64_t>();
    uint32_t outputs = r.get<uint32_t>();
    if (r.failed || outputs > r.remaining() / 24) return "Stats: message truncated";
    rs.outputs.resize(outputs);
    for (OutputStats& o : rs.outputs) {
      o.packets = r.get<uint64_t>();
      o.bytes = r.get<uint64_t>();
      o.errors = r.get<uint64_t>();
    }
  }
  return finish(r, "Stats");
}

}  // namespace

std::string decode_reply(const uint8_t* data, size_t len, Reply& out) {
  Reader r(data, len);
  uint16_t type = r.get<uint16_t>();
  r.get<uint16_t>();
  out.seq = r.get<uint32_t>();
  if (r.failed) return "reply shorter than its 8-byte header";
  out.type = static_cast<Type>(type);
  switch (out.type) {
    case Type::ReplyOk:
      return finish(r, "Ok");
    case Type::ReplyError:
      out.error.assign(reinterpret_cast<const char*>(r.here()), r.remaining());
      return {};
    case Type::ReplyStats:
      return decode_stats(r, out.stats);
    case Type::ReplyNotifications:
      return decode_notifications(r, out.notifications);
    case Type::ReplyTrace:
      return decode_trace(r, out.trace);
    default:
      return "unknown reply type " + std::to_string(type);
  }
}

uint64_t fnv1a(const uint8_t* data, size_t len, uint64_t hash) {
  for (size_t i = 0; i < len; ++i) hash = (hash ^ data[i]) * 0x100000001b3ull;
  return hash;
}

uint64_t ruleset_hash(const std::vector<RuleSpec>& rules) {
  Writer w;
  for (const RuleSpec& rule : rules) put_rule(w, rule);
  return fnv1a(w.bytes.data(), w.bytes.size(), kHashSeed);
}

}  // namespace mcr::wire
