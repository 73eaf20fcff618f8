// Small parsers and generators shared by every binary: durations ("30s"),
// ranges ("0:1000"), addresses, and random ids. Thread-safety: pure functions;
// NewId uses a thread-local generator.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace orchard {

// "250ms", "30s", "5m", "1h" -> milliseconds. `field` names the input in the
// error message.
absl::StatusOr<uint64_t> ParseDurationMs(std::string_view text, std::string_view field);

struct RangeArg {
  uint64_t begin = 0;
  uint64_t end = 0;
};
// "BEGIN:END" with BEGIN < END, both unsigned 64-bit.
absl::StatusOr<RangeArg> ParseRange(std::string_view text, std::string_view field = "range");

absl::StatusOr<uint64_t> ParseUint64(std::string_view text, std::string_view field);

// prefix + 12 random lower-case base-32 characters, e.g. "t-3kq9x0b2mz7d".
std::string NewId(std::string_view prefix);

// "1m20s", "450ms", "2h3m" for people.
std::string FormatDurationMs(int64_t ms);

}  // namespace orchard
