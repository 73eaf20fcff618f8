// Small parsers and generators shared by every binary: durations ("30s"),
// ranges ("0:1000"), addresses, and random ids. Thread-safety: pure functions;
// NewId takes a process-wide lock (one id per submitted task).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// prefix + 17 lower-case base-32 characters, e.g. "t-1jd8r2k7b3kq9x0b2":
// 9 of the creation time (milliseconds since 1970, big-endian, so ids sort
// by creation) and 8 of a random 40-bit suffix that counts up within one
// millisecond. Ids are unique and ascending within a process; across
// processes (several servers) they are unique with overwhelming odds.
// Ascending ids make every index keyed by task id grow at its right edge:
// a commit of many new tasks touches a few pages, not one per task.
std::string NewId(std::string_view prefix);

// The candidate closest to `word` by edit distance (insertions, deletions,
// substitutions and swaps of neighbours), when it is close enough to be a
// likely typo: at most 1 edit for words of up to 4 characters, 2 for up to 8,
// 3 beyond. Ties go to the first candidate. nullopt when none is, or when
// `word` is one of them.
std::optional<std::string> Nearest(std::string_view word,
                                   const std::vector<std::string>& candidates);

// "no live worker runs kind 'K'; kinds offered now: a, b, c" (or "no worker
// is live" when none is), with "; did you mean 'x'?" when a live kind is
// close to K. Shared by the server and orchardctl's submit warning.
std::string NoWorkerRunsKind(const std::string& kind, const std::vector<std::string>& live_kinds);

// "1m20s", "450ms", "2h3m" for people.
std::string FormatDurationMs(int64_t ms);

}  // namespace orchard
