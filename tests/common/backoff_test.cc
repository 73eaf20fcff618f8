// Tests of common/backoff: the capped doubling ceiling and full jitter.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "common/backoff.h"

namespace orchard {
namespace {

TEST(BackoffCeiling, DoublesFromInitialUpToTheCap) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 1000};
  EXPECT_EQ(BackoffCeilingMs(p, 1), 100u);
  EXPECT_EQ(BackoffCeilingMs(p, 2), 200u);
  EXPECT_EQ(BackoffCeilingMs(p, 3), 400u);
  EXPECT_EQ(BackoffCeilingMs(p, 4), 800u);
  EXPECT_EQ(BackoffCeilingMs(p, 5), 1000u);
  EXPECT_EQ(BackoffCeilingMs(p, 6), 1000u);
  EXPECT_EQ(BackoffCeilingMs(p, 1000), 1000u);
  EXPECT_EQ(BackoffCeilingMs(p, std::numeric_limits<uint32_t>::max()), 1000u);
}

TEST(BackoffCeiling, AttemptZeroCountsAsTheFirst) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 1000};
  EXPECT_EQ(BackoffCeilingMs(p, 0), 100u);
}

TEST(BackoffCeiling, DefaultsAreHalfASecondToThirtySeconds) {
  BackoffPolicy p;
  EXPECT_EQ(BackoffCeilingMs(p, 1), 500u);
  EXPECT_EQ(BackoffCeilingMs(p, 2), 1000u);
  EXPECT_EQ(BackoffCeilingMs(p, 7), 30000u);  // 500 * 64 = 32000, capped
}

TEST(BackoffCeiling, InitialAboveTheCapIsCapped) {
  BackoffPolicy p{.initial_ms = 5000, .max_ms = 1000};
  EXPECT_EQ(BackoffCeilingMs(p, 1), 1000u);
  EXPECT_EQ(BackoffCeilingMs(p, 3), 1000u);
}

// This test verifies that doubling near UINT64_MAX saturates at the cap
// instead of wrapping around to a small delay.
TEST(BackoffCeiling, DoublingNearUint64MaxDoesNotWrap) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  BackoffPolicy p{.initial_ms = kMax / 2 + 1, .max_ms = kMax};
  EXPECT_EQ(BackoffCeilingMs(p, 1), kMax / 2 + 1);
  EXPECT_EQ(BackoffCeilingMs(p, 2), kMax);
  EXPECT_EQ(BackoffCeilingMs(p, 64), kMax);
  BackoffPolicy q{.initial_ms = 3, .max_ms = kMax};
  EXPECT_EQ(BackoffCeilingMs(q, 63), uint64_t{3} << 62);
  EXPECT_EQ(BackoffCeilingMs(q, 64), kMax);  // 3 * 2^63 does not fit
}

TEST(BackoffCeiling, ZeroInitialStaysZero) {
  BackoffPolicy p{.initial_ms = 0, .max_ms = 1000};
  EXPECT_EQ(BackoffCeilingMs(p, 1), 0u);
  EXPECT_EQ(BackoffCeilingMs(p, 50), 0u);
}

// This test verifies full jitter: every draw lies in [0, ceiling], the draws
// spread over that interval (not constant, both halves hit), with a fixed seed.
TEST(FullJitter, StaysWithinZeroAndTheCeilingAndVaries) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 5000};
  std::mt19937_64 rng(12345);
  for (uint32_t attempt = 1; attempt <= 10; ++attempt) {
    uint64_t ceiling = BackoffCeilingMs(p, attempt);
    std::set<uint64_t> distinct;
    uint64_t lo = ceiling, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      uint64_t d = FullJitterMs(p, attempt, rng);
      ASSERT_LE(d, ceiling) << "attempt " << attempt;
      distinct.insert(d);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    EXPECT_GT(distinct.size(), 20u) << "attempt " << attempt;
    EXPECT_LT(lo, ceiling / 4) << "attempt " << attempt;
    EXPECT_GT(hi, ceiling * 3 / 4) << "attempt " << attempt;
  }
}

TEST(FullJitter, ZeroCeilingGivesZero) {
  BackoffPolicy p{.initial_ms = 0, .max_ms = 0};
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(FullJitterMs(p, 3, rng), 0u);
}

TEST(Backoff, NextGrowsTheCeilingAndResetStartsOver) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 800};
  Backoff b(p, /*seed=*/7);
  EXPECT_EQ(b.attempt(), 0u);
  for (uint32_t i = 1; i <= 6; ++i) {
    uint64_t d = b.NextMs();
    EXPECT_EQ(b.attempt(), i);
    EXPECT_LE(d, BackoffCeilingMs(p, i));
  }
  b.Reset();
  EXPECT_EQ(b.attempt(), 0u);
  EXPECT_LE(b.NextMs(), 100u);
  EXPECT_EQ(b.attempt(), 1u);
}

TEST(Backoff, SameSeedGivesTheSameDelays) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 10000};
  Backoff a(p, 99), b(p, 99);
  bool any_nonzero = false;
  for (int i = 0; i < 20; ++i) {
    uint64_t x = a.NextMs();
    EXPECT_EQ(x, b.NextMs());
    any_nonzero |= x != 0;
  }
  EXPECT_TRUE(any_nonzero);
}

}  // namespace
}  // namespace orchard
