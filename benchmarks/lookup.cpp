// RuleTable::lookup alone, in ns per lookup: what any-port and range rules
// cost exact rules (benchmarks.run's wildcard rows measure the same through
// the whole relay, where the machine's noise is larger than this effect).
//
//   g++ -O2 -std=c++20 -Icpp cpp/rule_table.cpp benchmarks/lookup.cpp -o build/lookup && build/lookup
//
// Against a tree from before any-port and range rules (its cpp/ instead of
// ours), add -DEXACT_ONLY: the rows that need wildcard rules are left out.
//
// 100 exact rules (239.1.1.k:5000, k = 1..100, like benchmarks.run's 100
// streams), packets cycling over their groups. The wildcard set is
// benchmarks/wildcard_relay.py's: 256 any-port rules (half (S,G,any)) and
// 256 group ranges, the last of them 239.0.0.0/8. Each figure is the best
// of 7 rounds of 20 million lookups.
#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "rule_table.h"

using namespace mcr;

namespace {

constexpr uint32_t kStreams = 100, kRounds = 7, kLookups = 20'000'000;
const uint32_t kSource = htonl(0x0ac80002);  // 10.200.0.2, the lab's sender

uint32_t group(uint32_t base, uint32_t k) { return htonl(base + k); }

void add(RuleTable& table, uint32_t id, RuleKey key) {
  Rule r;
  r.id = id;
  r.key = key;
  uint32_t slot;
  std::string error = table.add(std::move(r), slot);
  if (!error.empty()) std::fprintf(stderr, "rule %u: %s\n", id, error.c_str());
}

void add_exact(RuleTable& table) {
  for (uint32_t k = 1; k <= kStreams; ++k) add(table, k, {2, group(0xef010100, k), 0, 5000});
}

#ifndef EXACT_ONLY
void add_wildcards(RuleTable& table, bool shadow_inputs) {
  uint32_t id = 1000, any_port = 0;
  const uint32_t other = htonl(0x0a630001);  // 10.99.0.1: sends nothing
  if (shadow_inputs)
    for (; any_port < kStreams; ++any_port) add(table, id++, {2, group(0xef010100, any_port + 1), 0, 0});
  for (uint32_t k = 0; any_port < 256; ++k, ++any_port) add(table, id++, {2, group(0xef030000, k), k % 2 ? other : 0, 0});
  for (uint32_t k = 0; k < 255; ++k)
    add(table, id++, {2, htonl(0xee000000 | k << 16), k % 4 == 1 ? other : 0, uint16_t(k % 3 == 0 ? 5000 : 0), 0, 16});
  add(table, id++, {2, htonl(0xef000000), 0, 0, 0, 8});
}
#endif

// ns per lookup, best of kRounds; `found` counts hits so nothing is optimised away.
double time_lookups(RuleTable& table, uint32_t base, uint16_t port, uint64_t& found) {
  std::vector<uint32_t> groups;
  for (uint32_t k = 1; k <= kStreams; ++k) groups.push_back(group(base, k));
  double best = 1e9;
  for (uint32_t round = 0; round < kRounds; ++round) {
    auto start = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < kLookups; ++i) {
      Rule* r = table.lookup(2, groups[i % kStreams], port, kSource, 0);
      found += r != nullptr ? r->id : 0;
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, ns / kLookups);
  }
  return best;
}

void row(const char* what, RuleTable& table, uint32_t base, uint16_t port, uint64_t& found) {
  std::printf("| %s | %.2f |\n", what, time_lookups(table, base, port, found));
}

}  // namespace

int main() {
  uint64_t found = 0;
  std::printf("| lookup | ns per lookup |\n|---|---|\n");
  RuleTable exact(4096);
  add_exact(exact);
  row("exact hit, exact rules only", exact, 0xef010100, 5000, found);
  row("miss (no rule), exact rules only", exact, 0xef020100, 5000, found);
#ifndef EXACT_ONLY
  RuleTable mixed(4096);
  add_exact(mixed);
  add_wildcards(mixed, true);
  row("exact hit, 256 any-port and 256 range rules present", mixed, 0xef010100, 5000, found);
  row("any-port hit (port 5001, shadowed at 5000)", mixed, 0xef010100, 5001, found);
  RuleTable ranges(4096);
  add_wildcards(ranges, false);
  row("range hit after 255 ranges (no exact rule)", ranges, 0xef010100, 5000, found);
  row("miss after every probe and all 256 ranges", ranges, 0xe0000100, 5000, found);
#endif
  std::fprintf(stderr, "(%llu)\n", static_cast<unsigned long long>(found));
  return 0;
}
