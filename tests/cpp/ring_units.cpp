// Standalone tests of the engine's ring side, without Python: the TX ring's
// retry budget, and what egress does at its limits. Built with ASan/UBSan by
// `make unit-tests`. A check that needs a kernel feature (io_uring, a packet
// socket) probes for it once and is skipped without it; the run then exits
// 77, which ctest reports as skipped.
#include <cstdio>

#include "tx_ring.h"

using namespace mcr;

static int failures = 0, skipped = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

static void skip(const char* what) {
  std::fprintf(stderr, "skipped: %s\n", what);
  ++skipped;
}

// --- the TX ring's retry budget ----------------------------------------------

// One pass may flush a ring several times (watermark flushes, then its own)
// and see every one refused: that is one pass of the budget, not several.
static void test_retry_budget_counts_passes() {
  using R = TxRing::Refusal;
  TxRing ring;  // the budget needs no ring memory
  CHECK(ring.refused(1) == R::NextPass);
  for (int flush = 0; flush < 20; ++flush) CHECK(ring.refused(1) == R::SamePass);
  CHECK(ring.pending());  // the refused frames go with the next pass's flush
  for (uint64_t pass = 2; pass <= TxRing::kMaxRetries; ++pass) {
    CHECK(ring.refused(pass) == R::NextPass);
    CHECK(ring.refused(pass) == R::SamePass);
  }
  CHECK(ring.refused(TxRing::kMaxRetries + 1) == R::GiveUp);

  // A flush that goes through ends the run: the budget is whole again.
  TxRing other;
  for (uint64_t pass = 1; pass <= TxRing::kMaxRetries; ++pass) CHECK(other.refused(pass) == R::NextPass);
  other.sent();
  for (uint64_t pass = 10; pass < 10 + TxRing::kMaxRetries; ++pass) CHECK(other.refused(pass) == R::NextPass);
  CHECK(other.refused(10 + TxRing::kMaxRetries) == R::GiveUp);
}

int main() {
  test_retry_budget_counts_passes();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  if (skipped) {
    std::fprintf(stderr, "ring units: the rest passed, %d skipped\n", skipped);
    return 77;
  }
  std::puts("ring units: all checks passed");
  return 0;
}
