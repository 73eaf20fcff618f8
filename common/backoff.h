// Retry backoff: capped exponential with full jitter.
//
// delay(attempt) is uniform in [0, min(cap, initial * 2^(attempt-1))], as in
// "Exponential Backoff And Jitter" (AWS architecture blog): full jitter spreads
// retries of many clients that failed together. Thread-safety: Backoff is a
// value; callers own their random generator.
#pragma once

#include <cstdint>
#include <random>

namespace orchard {

struct BackoffPolicy {
  uint64_t initial_ms = 500;
  uint64_t max_ms = 30'000;
};

// The upper bound of the delay before retry number `attempt` (1-based).
uint64_t BackoffCeilingMs(const BackoffPolicy& p, uint32_t attempt);

// A delay drawn uniformly from [0, BackoffCeilingMs(p, attempt)].
uint64_t FullJitterMs(const BackoffPolicy& p, uint32_t attempt, std::mt19937_64& rng);

// A retry loop's state: each Next() doubles the ceiling up to the cap; Reset()
// after a success.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy p, uint64_t seed = std::random_device{}())
      : policy_(p), rng_(seed) {}
  uint64_t NextMs() { return FullJitterMs(policy_, ++attempt_, rng_); }
  void Reset() { attempt_ = 0; }
  uint32_t attempt() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  uint32_t attempt_ = 0;
};

}  // namespace orchard
