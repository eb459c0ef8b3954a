// Standalone tests of packet tracing's engine units: the Tracer's ring
// (budget, sampling, deadline, a full ring) and the trace messages' wire
// format (round trip, refusals). Built with ASan/UBSan by `make unit-tests`.
#include <cstdio>
#include <vector>

#include "trace.h"
#include "wire.h"

using namespace mcr;

#include "check.h"

// Offers `packets` packets of `rule` at time `now_ms`; returns how many the tracer took.
static int offer(Tracer& t, uint32_t rule, int packets, uint64_t now_ms = 0) {
  int taken = 0;
  for (int i = 0; i < packets; ++i) {
    TraceRecord* r = t.begin(rule, now_ms);
    if (r == nullptr) continue;
    r->src_port = static_cast<uint16_t>(i);  // which packet it was
    ++taken;
  }
  return taken;
}

static void test_off_by_default() {
  Tracer t;
  CHECK(!t.active());
  CHECK(t.take().empty());
}

static void test_budget_and_other_rules() {
  Tracer t;
  t.start(7, 5, 1, 1000);
  CHECK(t.active());
  CHECK(offer(t, 8, 20) == 0);  // another rule: not traced, budget untouched
  CHECK(t.remaining() == 5);
  CHECK(offer(t, 7, 20) == 5);
  CHECK(!t.active());
  std::vector<TraceRecord> records = t.take();
  CHECK(records.size() == 5);
  for (size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].src_port == i);  // oldest first: packets 0..4
    CHECK(records[i].rule_id == 7);
    CHECK(records[i].time_ns > 0);
  }
  CHECK(t.take().empty());  // taking clears
}

static void test_sample() {
  Tracer t;
  t.start(1, 4, 3, 1000);
  CHECK(offer(t, 1, 30) == 4);
  std::vector<TraceRecord> records = t.take();
  CHECK(records.size() == 4);
  for (size_t i = 0; i < records.size(); ++i) CHECK(records[i].src_port == 3 * i + 2);  // the 3rd, 6th, 9th, 12th
}

static void test_deadline() {
  Tracer t;
  t.start(1, 10, 1, 500);
  CHECK(offer(t, 1, 2, 499) == 2);
  CHECK(offer(t, 1, 2, 500) == 0);  // at the deadline the trace ends
  CHECK(!t.active());
  Tracer idle;
  idle.start(1, 10, 1, 500);
  idle.expire(499);
  CHECK(idle.active());
  idle.expire(500);  // no packet came: TakeTrace ends it
  CHECK(!idle.active());
}

static void test_full_ring_keeps_budget() {
  Tracer t;
  t.start(1, Tracer::kCapacity + 10, 1, 1000);
  CHECK(offer(t, 1, Tracer::kCapacity + 4) == static_cast<int>(Tracer::kCapacity));
  CHECK(t.missed() == 4);
  CHECK(t.remaining() == 10);  // the missed packets did not use the budget
  CHECK(t.take().size() == Tracer::kCapacity);
  CHECK(offer(t, 1, 20) == 10);
  CHECK(!t.active());
}

static void test_restart_and_stop() {
  Tracer t;
  t.start(1, 10, 1, 1000);
  offer(t, 1, 3);
  t.start(2, 10, 1, 1000);  // replaces the trace and its records
  CHECK(t.take().empty());
  t.start(2, 0, 1, 1000);  // count 0 stops
  CHECK(!t.active());
  CHECK(offer(t, 2, 5) == 0);
}

static void test_wire_round_trip() {
  wire::TraceTaken taken;
  taken.remaining = 3;
  taken.missed = 2;
  TraceRecord a;
  a.time_ns = 123456789;
  a.rule_id = 9;
  a.ifindex = 4;
  a.source = 0x0100000a;
  a.destination = 0x010101ef;
  a.src_port = 40000;
  a.dst_port = 5000;
  a.ip_len = 128;
  a.ttl = 1;
  a.tos = 0xb8;
  a.outputs = 2;
  a.note(0, TraceOutcome::SentRing);
  a.note(1, TraceOutcome::SkippedTtl);
  TraceRecord b = a;
  b.outputs = 40;  // more outputs than a record notes
  b.note(15, TraceOutcome::SkippedMtu);
  taken.records = {a, b};
  std::vector<uint8_t> bytes = wire::encode_trace(77, taken);
  wire::Reply reply;
  CHECK(wire::decode_reply(bytes.data(), bytes.size(), reply).empty());
  CHECK(reply.type == wire::Type::ReplyTrace && reply.seq == 77);
  CHECK(reply.trace.remaining == 3 && reply.trace.missed == 2 && reply.trace.records.size() == 2);
  const TraceRecord& r = reply.trace.records[0];
  CHECK(r.time_ns == a.time_ns && r.rule_id == 9 && r.ifindex == 4 && r.source == a.source);
  CHECK(r.destination == a.destination && r.src_port == 40000 && r.dst_port == 5000 && r.ip_len == 128);
  CHECK(r.ttl == 1 && r.tos == 0xb8 && r.outputs == 2);
  CHECK(r.outcomes[0] == TraceOutcome::SentRing && r.outcomes[1] == TraceOutcome::SkippedTtl);
  CHECK(reply.trace.records[1].outputs == 40 && reply.trace.records[1].outcomes[15] == TraceOutcome::SkippedMtu);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {  // every truncation is refused
    wire::Reply partial;
    CHECK(!wire::decode_reply(bytes.data(), cut, partial).empty());
  }
  std::vector<uint8_t> bad = bytes;
  bad[8 + 4 + 8 + 4 + 8 + 16 + 8 + 2 + 2 + 1] = static_cast<uint8_t>(TraceOutcome::kCount);  // first outcome
  CHECK(!wire::decode_reply(bad.data(), bad.size(), reply).empty());
}

static void test_trace_rule_command() {
  wire::Command c;
  c.type = wire::Type::TraceRule;
  c.seq = 5;
  c.rule_id = 12;
  c.trace = {10, 3, 2000};
  std::vector<uint8_t> bytes = wire::encode_command(c);
  wire::Command out;
  CHECK(wire::decode_command(bytes.data(), bytes.size(), out).empty());
  CHECK(out.type == wire::Type::TraceRule && out.rule_id == 12);
  CHECK(out.trace.count == 10 && out.trace.sample == 3 && out.trace.timeout_ms == 2000);
  c.trace = {10, 0, 2000};
  bytes = wire::encode_command(c);
  CHECK(!wire::decode_command(bytes.data(), bytes.size(), out).empty());  // sample 0
  c.trace = {10, 1, 0};
  bytes = wire::encode_command(c);
  CHECK(!wire::decode_command(bytes.data(), bytes.size(), out).empty());  // a trace without a timeout
  c.trace = {0, 1, 0};
  bytes = wire::encode_command(c);
  CHECK(wire::decode_command(bytes.data(), bytes.size(), out).empty());  // stopping needs none
  CHECK(!wire::decode_command(bytes.data(), bytes.size() - 1, out).empty());
}

int main() {
  test_off_by_default();
  test_budget_and_other_rules();
  test_sample();
  test_deadline();
  test_full_ring_keeps_budget();
  test_restart_and_stop();
  test_wire_round_trip();
  test_trace_rule_command();
  if (failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("trace_units: all passed");
  return 0;
}
