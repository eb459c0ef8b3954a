// Standalone tests of the command channel's framing (wire_framing.h: a
// message in parts, joined again; refusals named by seq) and of reading a
// rule sync one rule at a time (wire::SyncReader, its running hash).
#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "wire.h"

using namespace mcr;

#include "check.h"

static std::vector<RuleSpec> rules(uint32_t n, uint16_t outputs) {
  std::vector<RuleSpec> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    out[i].id = i + 1;
    out[i].key = {2, htonl(0xef010000 + i), 0, 5000, 0};
    for (uint16_t j = 0; j < outputs; ++j) out[i].outputs.push_back({htonl(0xef020000 + j), 6000, 3});
  }
  return out;
}

static std::vector<uint8_t> sync_message(const std::vector<RuleSpec>& specs, uint32_t seq) {
  wire::Command c;
  c.type = wire::Type::SyncRules;
  c.seq = seq;
  c.rules = specs;
  return wire::encode_command(c);
}

static void test_split_and_join() {
  auto message = sync_message(rules(3000, 40), 5);  // about 2 MB: several parts
  auto parts = wire::split(message);
  CHECK(parts.size() == (message.size() - 8 + wire::kMaxPartBody - 1) / wire::kMaxPartBody);
  wire::Assembler a;
  for (size_t i = 0; i < parts.size(); ++i) {
    CHECK(parts[i].size() <= wire::kMaxPart);
    bool done = a.add(parts[i].data(), parts[i].size());
    CHECK(done == (i + 1 == parts.size()));
  }
  CHECK(a.message() == message && a.take_errors().empty());
  auto small = wire::encode_ok(9);  // a header alone is one part
  CHECK(wire::split(small).size() == 1 && wire::split(small)[0] == small);
}

static void test_refusals_name_their_seq() {
  wire::Assembler a;
  uint8_t header[8] = {5, 0, 4, 0, 7, 0, 0, 0};  // flags 4: reserved
  CHECK(!a.add(header, 8));
  auto errors = a.take_errors();
  CHECK(errors.size() == 1 && errors[0].first == 7);
  header[2] = 1;  // more parts follow, then it is cut short by the kernel
  CHECK(!a.add(header, 8, true));
  header[2] = 0;  // its last part: skipped without a second error
  CHECK(!a.add(header, 8));
  errors = a.take_errors();
  CHECK(errors.size() == 1 && errors[0].first == 7);
  header[2] = 1;  // a message abandoned for another
  CHECK(!a.add(header, 8));
  uint8_t next[8] = {5, 0, 0, 0, 8, 0, 0, 0};
  CHECK(a.add(next, 8));
  errors = a.take_errors();
  CHECK(errors.size() == 1 && errors[0].first == 7 && errors[0].second.find("last part") != std::string::npos);
  CHECK(!a.add(next, 3) && a.take_errors()[0].first == 0);  // no header: nothing to name
}

static void test_sync_reader_hash() {
  auto specs = rules(500, 3);
  auto message = sync_message(specs, 1);
  wire::SyncReader reader;
  CHECK(reader.open(message.data(), message.size()).empty() && reader.left() == 500);
  RuleSpec rule;
  for (uint32_t i = 0; i < 500; ++i) CHECK(reader.next(rule).empty() && rule.id == i + 1);
  CHECK(reader.left() == 0 && reader.sorted() && reader.hash() == wire::ruleset_hash(specs));
  std::swap(specs[0], specs[1]);  // sent out of id order: the hash is not the table's
  auto unsorted = sync_message(specs, 2);
  wire::SyncReader other;
  CHECK(other.open(unsorted.data(), unsorted.size()).empty());
  while (other.left() > 0) CHECK(other.next(rule).empty());
  CHECK(!other.sorted());
  message.push_back(0);  // trailing garbage is found on the last rule
  wire::SyncReader trailing;
  CHECK(trailing.open(message.data(), message.size()).empty());
  std::string error;
  while (trailing.left() > 0 && error.empty()) error = trailing.next(rule);
  CHECK(error.find("trailing") != std::string::npos);
}

// Random datagrams, some with a valid header and the more flag: the
// assembler never reads out of bounds (ASan) and never holds more than a
// message's worth.
static void test_fuzz() {
  std::mt19937 rng(7);
  wire::Assembler a;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> part(rng() % 64);
    for (uint8_t& byte : part) byte = static_cast<uint8_t>(rng());
    if (part.size() >= 8 && rng() % 2) {
      part[2] = rng() % 2;  // more parts, or the last
      part[3] = 0;
      part[4] = rng() % 4;  // a few seqs, so messages do get joined and abandoned
      std::memset(part.data() + 5, 0, 3);
    }
    if (a.add(part.data(), part.size(), rng() % 50 == 0)) CHECK(a.message().size() >= 8);
    for (const auto& error : a.take_errors()) CHECK(!error.second.empty());  // every refusal says why
  }
}

int main() {
  test_split_and_join();
  test_fuzz();
  test_refusals_name_their_seq();
  test_sync_reader_hash();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("framing units: all checks passed");
  return 0;
}
