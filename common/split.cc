#include "common/split.h"

#include <algorithm>

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard {

namespace {
absl::Status CheckRange(uint64_t begin, uint64_t end) {
  if (end <= begin) {
    return absl::InvalidArgumentError(Cat("range: end (", end,
                                                   ") must be greater than begin (", begin, ")"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<UniformSplit> UniformSplit::BySubtasks(uint64_t begin, uint64_t end,
                                                      uint64_t subtasks) {
  if (absl::Status s = CheckRange(begin, end); !s.ok()) return s;
  if (subtasks == 0) return absl::InvalidArgumentError("subtasks: must be at least 1");
  uint64_t count = std::min(subtasks, end - begin);
  if (count > kMaxSubtasks) {
    return absl::InvalidArgumentError(
        Cat("subtasks: ", count, " is more than the limit of ", kMaxSubtasks));
  }
  return UniformSplit(begin, end, count, 0);
}

absl::StatusOr<UniformSplit> UniformSplit::ByChunk(uint64_t begin, uint64_t end, uint64_t chunk) {
  if (absl::Status s = CheckRange(begin, end); !s.ok()) return s;
  if (chunk == 0) return absl::InvalidArgumentError("chunk: must be at least 1");
  uint64_t len = end - begin;
  uint64_t count = len / chunk + (len % chunk != 0 ? 1 : 0);
  if (count > kMaxSubtasks) {
    return absl::InvalidArgumentError(Cat("chunk: ", chunk, " cuts the range into ", count,
                                                   " subtasks, more than the limit of ",
                                                   kMaxSubtasks));
  }
  return UniformSplit(begin, end, count, chunk);
}

Slice UniformSplit::At(uint64_t i) const {
  if (chunk_ != 0) {
    uint64_t b = begin_ + i * chunk_;
    // end_ - b cannot underflow (i < count_); compare lengths to avoid overflow.
    uint64_t e = (end_ - b <= chunk_) ? end_ : b + chunk_;
    return {b, e};
  }
  uint64_t len = end_ - begin_;
  uint64_t size = len / count_;
  uint64_t rem = len % count_;
  uint64_t b = begin_ + i * size + std::min(i, rem);
  uint64_t e = b + size + (i < rem ? 1 : 0);
  return {b, e};
}

absl::Status ValidateBounds(const std::vector<uint64_t>& bounds, uint64_t begin, uint64_t end) {
  if (bounds.size() < 2) return absl::InvalidArgumentError("plan: needs at least two bounds");
  if (bounds.size() - 1 > kMaxSubtasks) {
    return absl::InvalidArgumentError(Cat("plan: ", bounds.size() - 1,
                                                   " slices is more than the limit of ",
                                                   kMaxSubtasks));
  }
  if (bounds.front() != begin || bounds.back() != end) {
    return absl::InvalidArgumentError("plan: bounds must start at begin and end at end");
  }
  for (size_t i = 1; i < bounds.size(); ++i) {
    if (bounds[i] <= bounds[i - 1]) {
      return absl::InvalidArgumentError(
          Cat("plan: bounds must increase strictly (at position ", i, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace orchard
