// Tests of common/util: duration and range parsing, ids, duration printing.
#include <chrono>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/strcat.h"
#include "common/util.h"

namespace orchard {
namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

void ExpectInvalidNaming(const absl::Status& s, const std::string& field) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()).rfind(field + ":", 0), 0u) << s.message();
}

TEST(ParseDurationMs, AcceptsEachUnit) {
  EXPECT_EQ(*ParseDurationMs("250ms", "d"), 250u);
  EXPECT_EQ(*ParseDurationMs("30s", "d"), 30'000u);
  EXPECT_EQ(*ParseDurationMs("5m", "d"), 300'000u);
  EXPECT_EQ(*ParseDurationMs("1h", "d"), 3'600'000u);
  EXPECT_EQ(*ParseDurationMs("0s", "d"), 0u);
  EXPECT_EQ(*ParseDurationMs("007s", "d"), 7'000u);
}

TEST(ParseDurationMs, RefusesBadInputNamingTheField) {
  for (const char* bad : {"", "5", "ms", "s", "5d", "5 s", " 5s", "5s ", "-5s", "+5s", "1.5s",
                          "5S", "5MS", "5sec", "5m30s", "s5"}) {
    SCOPED_TRACE(bad);
    ExpectInvalidNaming(ParseDurationMs(bad, "deadline").status(), "deadline");
  }
}

TEST(ParseDurationMs, RefusesOverflow) {
  EXPECT_EQ(*ParseDurationMs("18446744073709551615ms", "d"), kU64Max);
  ExpectInvalidNaming(ParseDurationMs("18446744073709551616ms", "d").status(), "d");
  ExpectInvalidNaming(ParseDurationMs("99999999999999999999999ms", "d").status(), "d");
  ExpectInvalidNaming(ParseDurationMs("18446744073709551615s", "d").status(), "d");
  uint64_t max_hours = kU64Max / 3'600'000;
  EXPECT_EQ(*ParseDurationMs(Cat(max_hours, "h"), "d"), max_hours * 3'600'000);
  ExpectInvalidNaming(ParseDurationMs(Cat(max_hours + 1, "h"), "d").status(), "d");
}

TEST(ParseRange, AcceptsBeginBelowEnd) {
  auto r = ParseRange("0:1000");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->begin, 0u);
  EXPECT_EQ(r->end, 1000u);
  auto one = ParseRange("41:42");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->begin, 41u);
  EXPECT_EQ(one->end, 42u);
}

TEST(ParseRange, AcceptsTheWholeUint64Range) {
  auto r = ParseRange("0:18446744073709551615");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->begin, 0u);
  EXPECT_EQ(r->end, kU64Max);
}

TEST(ParseRange, RefusesInvertedOrEmptyRangeNamingRange) {
  auto r = ParseRange("10:5");
  ExpectInvalidNaming(r.status(), "range");
  EXPECT_EQ(std::string(r.status().message()), "range: end (5) must be greater than begin (10)");
  ExpectInvalidNaming(ParseRange("5:5").status(), "range");
}

TEST(ParseRange, RefusesMalformedInputNamingRange) {
  for (const char* bad : {"a:b", "1:b", "a:2", "", ":", "10", ":5", "5:", "1:2:3", " 1:2", "1:2 ",
                          "-1:5", "1.5:3", "0:18446744073709551616", "0x10:0x20"}) {
    SCOPED_TRACE(bad);
    ExpectInvalidNaming(ParseRange(bad).status(), "range");
  }
}

TEST(ParseRange, UsesTheGivenFieldName) {
  ExpectInvalidNaming(ParseRange("9:1", "spec.range").status(), "spec.range");
}

TEST(ParseUint64, AcceptsTheFullRangeAndNothingElse) {
  EXPECT_EQ(*ParseUint64("0", "n"), 0u);
  EXPECT_EQ(*ParseUint64("18446744073709551615", "n"), kU64Max);
  for (const char* bad : {"", "-1", "+1", "1e3", "18446744073709551616", "12a", " 1"}) {
    SCOPED_TRACE(bad);
    ExpectInvalidNaming(ParseUint64(bad, "n").status(), "n");
  }
}

TEST(NewId, HasThePrefixAndSeventeenBase32Characters) {
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  for (int i = 0; i < 100; ++i) {
    std::string id = NewId("t-");
    ASSERT_EQ(id.size(), 2u + 17u) << id;
    EXPECT_EQ(id.substr(0, 2), "t-");
    for (char c : id.substr(2)) EXPECT_NE(alphabet.find(c), std::string::npos) << id;
  }
  EXPECT_EQ(NewId("").size(), 17u);
  EXPECT_EQ(NewId("worker-").rfind("worker-", 0), 0u);
}

// The store's indexes keyed by task id rely on this: new ids sort after
// older ones, so inserts land at the indexes' right edge. 100,000 draws
// take a few milliseconds each, so most share a millisecond with others.
TEST(NewId, IsUniqueAndAscendingOverManyDraws) {
  std::set<std::string> ids;
  std::string last = NewId("t-");
  for (int i = 0; i < 100'000; ++i) {
    std::string id = NewId("t-");
    ASSERT_LT(last, id);
    ids.insert(id);
    last = std::move(id);
  }
  EXPECT_EQ(ids.size(), 100'000u);
}

// The first nine characters are the creation time in milliseconds.
TEST(NewId, StartsWithTheCreationTime) {
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  auto now_ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const uint64_t before = now_ms();
  const std::string id = NewId("");
  const uint64_t after = now_ms();
  uint64_t ms = 0;
  for (int i = 0; i < 9; ++i) ms = ms * 32 + alphabet.find(id[i]);
  EXPECT_GE(ms, before);
  EXPECT_LE(ms, after + 1);  // +1: a millisecond whose suffixes ran out
}

TEST(FormatDurationMs, ReadsNaturally) {
  EXPECT_EQ(FormatDurationMs(0), "0ms");
  EXPECT_EQ(FormatDurationMs(450), "450ms");
  EXPECT_EQ(FormatDurationMs(1500), "1.5s");
  EXPECT_EQ(FormatDurationMs(59'999), "59.9s");
  EXPECT_EQ(FormatDurationMs(80'000), "1m20s");
  EXPECT_EQ(FormatDurationMs(7'380'000), "2h3m");
  EXPECT_EQ(FormatDurationMs(-5), "0ms");
}

// This test verifies the typo suggestions: a near kind or command is found,
// an exact match or a far word gives none, ties go to the first candidate.
TEST(Nearest, SuggestsTheClosestLikelyTypo) {
  const std::vector<std::string> kinds = {"noop", "sleep", "sum", "flaky", "csv.aggregate"};
  EXPECT_EQ(Nearest("summ", kinds), "sum");
  EXPECT_EQ(Nearest("slep", kinds), "sleep");
  EXPECT_EQ(Nearest("falky", kinds), "flaky");  // a swap of neighbours is one edit
  EXPECT_EQ(Nearest("csv.agregate", kinds), "csv.aggregate");
  EXPECT_EQ(Nearest("sum", kinds), std::nullopt);     // it is one of them
  EXPECT_EQ(Nearest("banana", kinds), std::nullopt);  // nothing close
  EXPECT_EQ(Nearest("", kinds), std::nullopt);
  EXPECT_EQ(Nearest("x", {}), std::nullopt);
}

// This test verifies the text that says why a task waits for a kind.
TEST(NoWorkerRunsKind, NamesTheKindsOfferedAndTheNearest) {
  EXPECT_EQ(NoWorkerRunsKind("summ", {"noop", "sum"}),
            "no live worker runs kind 'summ'; kinds offered now: noop, sum; did you mean 'sum'?");
  EXPECT_EQ(NoWorkerRunsKind("zzz", {"noop"}),
            "no live worker runs kind 'zzz'; kinds offered now: noop");
  EXPECT_EQ(NoWorkerRunsKind("sum", {}), "no live worker runs kind 'sum'; no worker is live");
}

// This test verifies Count's singular and plural.
TEST(Count, PutsTheNounInTheRightNumber) {
  EXPECT_EQ(Count(0, "subtask"), "0 subtasks");
  EXPECT_EQ(Count(1, "subtask"), "1 subtask");
  EXPECT_EQ(Count(2u, "attempt"), "2 attempts");
}

}  // namespace
}  // namespace orchard
