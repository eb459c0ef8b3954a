// The trace messages (TraceRule, and the Trace reply to TakeTrace): their
// layout is described with the others in wire.h.
#include "wire_codec.h"

namespace mcr::wire {
namespace codec {
namespace {

constexpr size_t kRecordFixed = 8 + 4 * 4 + 2 * 4 + 2 + 2 + 1;  // a record without its outcomes

void put_record(Writer& w, const TraceRecord& t) {
  w.put(t.time_ns).put(t.rule_id).put(t.ifindex).put(t.source).put(t.destination);
  w.put(t.src_port).put(t.dst_port).put(t.ip_len).put(t.vlan).put(t.ttl).put(t.tos).put(t.outputs);
  uint8_t noted = static_cast<uint8_t>(t.outputs < kTraceOutputs ? t.outputs : kTraceOutputs);
  w.put(noted);
  for (uint8_t i = 0; i < noted; ++i) w.put(static_cast<uint8_t>(t.outcomes[i]));
}

std::string get_record(Reader& r, TraceRecord& t) {
  t.time_ns = r.get<uint64_t>();
  t.rule_id = r.get<uint32_t>();
  t.ifindex = r.get<uint32_t>();
  t.source = r.get<uint32_t>();
  t.destination = r.get<uint32_t>();
  t.src_port = r.get<uint16_t>();
  t.dst_port = r.get<uint16_t>();
  t.ip_len = r.get<uint16_t>();
  t.vlan = r.get<uint16_t>();
  t.ttl = r.get<uint8_t>();
  t.tos = r.get<uint8_t>();
  t.outputs = r.get<uint16_t>();
  uint8_t noted = r.get<uint8_t>();
  uint16_t expected = t.outputs < kTraceOutputs ? t.outputs : kTraceOutputs;
  if (!r.failed && noted != expected) return "Trace: a record notes " + std::to_string(noted) + " outcomes of " +
                                             std::to_string(t.outputs) + " outputs";
  for (uint8_t i = 0; i < noted; ++i) {
    uint8_t outcome = r.get<uint8_t>();
    if (outcome >= static_cast<uint8_t>(TraceOutcome::kCount)) return "Trace: unknown outcome " + std::to_string(outcome);
    t.outcomes[i] = static_cast<TraceOutcome>(outcome);
  }
  return {};
}

}  // namespace

std::string decode_trace_rule(Reader& r, Command& out) {
  out.rule_id = r.get<uint32_t>();
  out.trace.count = r.get<uint32_t>();
  out.trace.sample = r.get<uint32_t>();
  out.trace.timeout_ms = r.get<uint32_t>();
  if (std::string error = finish(r, "TraceRule"); !error.empty()) return error;
  if (out.trace.sample == 0) return "TraceRule: sample must be at least 1";
  if (out.trace.count > 0 && out.trace.timeout_ms == 0) return "TraceRule: a trace needs a timeout";
  return {};
}

std::string decode_trace(Reader& r, TraceTaken& out) {
  out.remaining = r.get<uint32_t>();
  out.missed = r.get<uint64_t>();
  uint32_t n = r.get<uint32_t>();
  if (r.failed || n > r.remaining() / kRecordFixed) return "Trace: message truncated";
  out.records.resize(n);
  for (TraceRecord& record : out.records)
    if (std::string error = get_record(r, record); !error.empty()) return error;
  return finish(r, "Trace");
}

}  // namespace codec

std::vector<uint8_t> encode_trace(uint32_t seq, const TraceTaken& trace) {
  codec::Writer w = codec::header(Type::ReplyTrace, seq);
  w.put(trace.remaining).put(trace.missed).put(static_cast<uint32_t>(trace.records.size()));
  for (const TraceRecord& record : trace.records) codec::put_record(w, record);
  return std::move(w.bytes);
}

}  // namespace mcr::wire
