#include "common/backoff.h"

#include <algorithm>

namespace orchard {

uint64_t BackoffCeilingMs(const BackoffPolicy& p, uint32_t attempt) {
  if (attempt == 0) attempt = 1;
  if (p.initial_ms == 0) return 0;
  uint64_t ceiling = p.initial_ms;
  for (uint32_t i = 1; i < attempt && ceiling < p.max_ms; ++i) {
    ceiling = ceiling > p.max_ms / 2 ? p.max_ms : ceiling * 2;
  }
  return std::min(ceiling, p.max_ms);
}

uint64_t FullJitterMs(const BackoffPolicy& p, uint32_t attempt, std::mt19937_64& rng) {
  uint64_t ceiling = BackoffCeilingMs(p, attempt);
  std::uniform_int_distribution<uint64_t> dist(0, ceiling);
  return dist(rng);
}

}  // namespace orchard
