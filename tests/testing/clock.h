// The time every unit test starts at, and the fake clock it drives. Tests
// pass times explicitly (now_ms arguments) or advance a FakeClock; none
// sleeps. kNow is FakeClock's default start, so both agree without saying so.
// Header-only; no threads.
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace orchard::testing {

inline constexpr int64_t kNow = 1'700'000'000'000;
// The lease TTL most store tests use: long enough that nothing expires
// unless a test moves time past it on purpose.
inline constexpr int64_t kTtl = 10'000;

using FakeClock = ::orchard::FakeClock;

// A FakeClock at kNow, so a test that mixes explicit times and a clock
// reads one time line.
inline FakeClock ClockAtNow() { return FakeClock(kNow); }

}  // namespace orchard::testing
