// Cutting a half-open range [begin, end) into contiguous slices.
//
// A uniform split is never materialised: slice i is computed in O(1), so a
// task of a million subtasks costs no million-element vector to plan.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace orchard {

// The most subtasks one task may have.
inline constexpr uint64_t kMaxSubtasks = 2'000'000;

struct Slice {
  uint64_t begin = 0;
  uint64_t end = 0;
  bool operator==(const Slice&) const = default;
};

// Slices of a range cut either into `count` near-equal parts (the first
// (len % count) slices one item longer) or into chunks of `chunk` items.
class UniformSplit {
 public:
  // INVALID_ARGUMENT naming "range", "subtasks" or "chunk" when the input is
  // unusable: an empty or inverted range, a zero count or chunk, or more than
  // kMaxSubtasks slices. More subtasks than items gives one item per slice.
  static absl::StatusOr<UniformSplit> BySubtasks(uint64_t begin, uint64_t end, uint64_t subtasks);
  static absl::StatusOr<UniformSplit> ByChunk(uint64_t begin, uint64_t end, uint64_t chunk);

  uint64_t count() const { return count_; }
  // REQUIRES: i < count().
  Slice At(uint64_t i) const;

 private:
  UniformSplit(uint64_t begin, uint64_t end, uint64_t count, uint64_t chunk)
      : begin_(begin), end_(end), count_(count), chunk_(chunk) {}

  uint64_t begin_, end_, count_;
  uint64_t chunk_;  // 0 for a split by count
};

// Checks explicit slice boundaries b0 < b1 < ... < bn with b0 = begin and
// bn = end, as a handler's plan gives them.
absl::Status ValidateBounds(const std::vector<uint64_t>& bounds, uint64_t begin, uint64_t end);

}  // namespace orchard
