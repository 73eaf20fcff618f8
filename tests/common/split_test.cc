// Tests of common/split: uniform splits by count and by chunk, at the edges
// of the uint64 range, and the checks on explicit plan bounds.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/split.h"

namespace orchard {
namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kI64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Asserts that the slices of `split` are non-empty, contiguous and cover
// [begin, end) exactly; for a split by count, that their sizes differ by at
// most one (the longer ones first).
void ExpectCovers(const UniformSplit& split, uint64_t begin, uint64_t end, bool by_count) {
  ASSERT_GT(split.count(), 0u);
  uint64_t expect_begin = begin;
  uint64_t min_size = kU64Max, max_size = 0, prev_size = kU64Max;
  for (uint64_t i = 0; i < split.count(); ++i) {
    Slice s = split.At(i);
    ASSERT_EQ(s.begin, expect_begin) << "slice " << i << " is not contiguous";
    ASSERT_LT(s.begin, s.end) << "slice " << i << " is empty or inverted";
    uint64_t size = s.end - s.begin;
    min_size = std::min(min_size, size);
    max_size = std::max(max_size, size);
    if (by_count) {
      ASSERT_LE(size, prev_size) << "slice " << i << " longer than the one before";
    }
    prev_size = size;
    expect_begin = s.end;
  }
  EXPECT_EQ(expect_begin, end) << "slices do not end at the range's end";
  if (by_count) {
    EXPECT_LE(max_size - min_size, 1u);
  }
}

void ExpectInvalid(const absl::StatusOr<UniformSplit>& s, const std::string& field) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(s.status().message());
  EXPECT_EQ(msg.rfind(field + ":", 0), 0u) << "message does not start with " << field << ": "
                                            << msg;
}

TEST(UniformSplit, OneItemGivesOneSlice) {
  for (uint64_t n : {1ull, 2ull, 1000ull}) {
    auto s = UniformSplit::BySubtasks(41, 42, n);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->count(), 1u);
    EXPECT_EQ(s->At(0), (Slice{41, 42}));
  }
  auto c = UniformSplit::ByChunk(41, 42, 7);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->count(), 1u);
  EXPECT_EQ(c->At(0), (Slice{41, 42}));
}

// This test verifies that asking for more subtasks than there are items
// gives one item per slice instead of empty slices.
TEST(UniformSplit, MoreSubtasksThanItemsClampsToOneItemEach) {
  auto s = UniformSplit::BySubtasks(10, 15, 100);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->count(), 5u);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(s->At(i), (Slice{10 + i, 11 + i}));
  ExpectCovers(*s, 10, 15, true);
}

TEST(UniformSplit, NearEqualSlicesLongerOnesFirst) {
  auto s = UniformSplit::BySubtasks(0, 10, 3);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->count(), 3u);
  EXPECT_EQ(s->At(0), (Slice{0, 4}));
  EXPECT_EQ(s->At(1), (Slice{4, 7}));
  EXPECT_EQ(s->At(2), (Slice{7, 10}));
  for (uint64_t n = 1; n <= 40; ++n) {
    auto t = UniformSplit::BySubtasks(3, 40, n);
    ASSERT_TRUE(t.ok());
    ExpectCovers(*t, 3, 40, true);
  }
}

// This test verifies that the slice arithmetic does not overflow for a range
// ending at 2^63-1 (the largest int64, which some stores use).
TEST(UniformSplit, RangeEndingAtInt64MaxDoesNotOverflow) {
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 1000ull}) {
    auto s = UniformSplit::BySubtasks(0, kI64Max, n);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->count(), n);
    ExpectCovers(*s, 0, kI64Max, true);
  }
  auto c = UniformSplit::ByChunk(kI64Max - 100, kI64Max, 30);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->count(), 4u);
  EXPECT_EQ(c->At(3), (Slice{kI64Max - 10, kI64Max}));
  ExpectCovers(*c, kI64Max - 100, kI64Max, false);
}

TEST(UniformSplit, RangeEndingAtUint64MaxDoesNotOverflow) {
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 1000ull}) {
    auto s = UniformSplit::BySubtasks(0, kU64Max, n);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->count(), n);
    ExpectCovers(*s, 0, kU64Max, true);
  }
  auto top = UniformSplit::BySubtasks(kU64Max - 10, kU64Max, 3);
  ASSERT_TRUE(top.ok());
  ExpectCovers(*top, kU64Max - 10, kU64Max, true);
  EXPECT_EQ(top->At(2).end, kU64Max);

  // Chunks whose naive end (begin + chunk) would wrap past UINT64_MAX.
  auto c = UniformSplit::ByChunk(0, kU64Max, uint64_t{1} << 62);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->count(), 4u);
  EXPECT_EQ(c->At(3), (Slice{3 * (uint64_t{1} << 62), kU64Max}));
  ExpectCovers(*c, 0, kU64Max, false);

  auto big = UniformSplit::ByChunk(kU64Max - 5, kU64Max, kU64Max / 2);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->count(), 1u);
  EXPECT_EQ(big->At(0), (Slice{kU64Max - 5, kU64Max}));

  auto tail = UniformSplit::ByChunk(kU64Max - 10, kU64Max, 3);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->count(), 4u);
  EXPECT_EQ(tail->At(3), (Slice{kU64Max - 1, kU64Max}));
  ExpectCovers(*tail, kU64Max - 10, kU64Max, false);

  auto whole = UniformSplit::ByChunk(0, kU64Max, kU64Max);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->count(), 1u);
  EXPECT_EQ(whole->At(0), (Slice{0, kU64Max}));
}

TEST(UniformSplit, ChunkSplitLastChunkIsShort) {
  auto s = UniformSplit::ByChunk(0, 10, 3);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->count(), 4u);
  EXPECT_EQ(s->At(0), (Slice{0, 3}));
  EXPECT_EQ(s->At(1), (Slice{3, 6}));
  EXPECT_EQ(s->At(2), (Slice{6, 9}));
  EXPECT_EQ(s->At(3), (Slice{9, 10}));
  ExpectCovers(*s, 0, 10, false);
}

TEST(UniformSplit, ChunkThatDividesTheRangeGivesEqualChunks) {
  auto s = UniformSplit::ByChunk(100, 109, 3);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->count(), 3u);
  EXPECT_EQ(s->At(2), (Slice{106, 109}));
  ExpectCovers(*s, 100, 109, true);
}

TEST(UniformSplit, ChunkLargerThanTheRangeGivesOneSlice) {
  auto s = UniformSplit::ByChunk(5, 10, 1000);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->count(), 1u);
  EXPECT_EQ(s->At(0), (Slice{5, 10}));
}

TEST(UniformSplit, ZeroSubtasksIsRefusedNamingSubtasks) {
  ExpectInvalid(UniformSplit::BySubtasks(0, 10, 0), "subtasks");
}

TEST(UniformSplit, ZeroChunkIsRefusedNamingChunk) {
  ExpectInvalid(UniformSplit::ByChunk(0, 10, 0), "chunk");
}

TEST(UniformSplit, EmptyOrInvertedRangeIsRefusedNamingRange) {
  ExpectInvalid(UniformSplit::BySubtasks(5, 5, 1), "range");
  ExpectInvalid(UniformSplit::BySubtasks(10, 5, 1), "range");
  ExpectInvalid(UniformSplit::ByChunk(5, 5, 1), "range");
  ExpectInvalid(UniformSplit::ByChunk(10, 5, 1), "range");
  ExpectInvalid(UniformSplit::ByChunk(kU64Max, 0, 1), "range");
  // The range is checked before the count: the message names the range.
  ExpectInvalid(UniformSplit::BySubtasks(10, 5, 0), "range");
  auto s = UniformSplit::BySubtasks(10, 5, 1);
  EXPECT_EQ(std::string(s.status().message()), "range: end (5) must be greater than begin (10)");
}

TEST(UniformSplit, MoreThanMaxSubtasksIsRefused) {
  ExpectInvalid(UniformSplit::BySubtasks(0, 10 * kMaxSubtasks, kMaxSubtasks + 1), "subtasks");
  ExpectInvalid(UniformSplit::BySubtasks(0, kU64Max, kU64Max), "subtasks");
  ExpectInvalid(UniformSplit::ByChunk(0, kMaxSubtasks + 1, 1), "chunk");
  ExpectInvalid(UniformSplit::ByChunk(0, kU64Max, 1), "chunk");
}

TEST(UniformSplit, ExactlyMaxSubtasksIsAccepted) {
  auto s = UniformSplit::BySubtasks(0, 10 * kMaxSubtasks, kMaxSubtasks);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->count(), kMaxSubtasks);
  ExpectCovers(*s, 0, 10 * kMaxSubtasks, true);
  auto c = UniformSplit::ByChunk(0, kMaxSubtasks, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->count(), kMaxSubtasks);
  // More requested than items, but the clamp brings it within the limit.
  auto clamped = UniformSplit::BySubtasks(0, kMaxSubtasks, kMaxSubtasks + 1);
  ASSERT_TRUE(clamped.ok()) << clamped.status();
  EXPECT_EQ(clamped->count(), kMaxSubtasks);
}

// ---------------------------------------------------------- ValidateBounds

void ExpectPlanInvalid(const absl::Status& s) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()).rfind("plan:", 0), 0u) << s.message();
}

TEST(ValidateBounds, AcceptsStrictlyIncreasingBoundsFromBeginToEnd) {
  EXPECT_TRUE(ValidateBounds({0, 10}, 0, 10).ok());
  EXPECT_TRUE(ValidateBounds({0, 1, 5, 10}, 0, 10).ok());
  EXPECT_TRUE(ValidateBounds({0, kU64Max}, 0, kU64Max).ok());
  EXPECT_TRUE(ValidateBounds({kU64Max - 2, kU64Max - 1, kU64Max}, kU64Max - 2, kU64Max).ok());
}

TEST(ValidateBounds, RefusesTooFewBounds) {
  ExpectPlanInvalid(ValidateBounds({}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0}, 0, 10));
}

TEST(ValidateBounds, RefusesBoundsNotMatchingTheRange) {
  ExpectPlanInvalid(ValidateBounds({1, 10}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0, 9}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0, 11}, 0, 10));
}

TEST(ValidateBounds, RefusesRepeatedOrDecreasingBounds) {
  ExpectPlanInvalid(ValidateBounds({0, 5, 5, 10}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0, 6, 5, 10}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0, 0, 10}, 0, 10));
  ExpectPlanInvalid(ValidateBounds({0, 10, 10}, 0, 10));
}

TEST(ValidateBounds, RefusesMoreThanMaxSubtasksSlices) {
  std::vector<uint64_t> bounds(kMaxSubtasks + 2);
  for (uint64_t i = 0; i < bounds.size(); ++i) bounds[i] = i;
  ExpectPlanInvalid(ValidateBounds(bounds, 0, kMaxSubtasks + 1));
  bounds.pop_back();  // exactly kMaxSubtasks slices
  EXPECT_TRUE(ValidateBounds(bounds, 0, kMaxSubtasks).ok());
}

}  // namespace
}  // namespace orchard
