// Tests of the built-in handlers: results, reduce, failures and stopping.
#include <thread>

#include <gtest/gtest.h>

#include "worker/handler.h"

namespace orchard::worker {
namespace {

using json = nlohmann::json;

struct Fixture {
  Registry registry;
  Fixture() { AddBuiltinHandlers(registry); }
};

absl::StatusOr<json> RunSlice(const Handler* h, uint64_t index, uint64_t b, uint64_t e,
                              uint32_t attempt, const json& params,
                              std::stop_token stop = {}) {
  std::atomic<uint64_t> progress{0};
  SliceContext ctx;
  ctx.index = index;
  ctx.begin = b;
  ctx.end = e;
  ctx.attempt = attempt;
  ctx.params = &params;
  ctx.progress = &progress;
  ctx.stop = stop;
  return h->Run(ctx);
}

TEST(Handlers, BuiltinKindsAreRegistered) {
  Fixture f;
  EXPECT_EQ(f.registry.Kinds(), (std::vector<std::string>{"csv.aggregate", "flaky", "noop", "sleep", "sum"}));
  EXPECT_EQ(f.registry.Get("nope"), nullptr);
}

TEST(Handlers, SumIsExactAndReducesByAdding) {
  Fixture f;
  const Handler* sum = f.registry.Get("sum");
  json params = json::object();
  json acc = sum->Init();
  // [0, 1000000) in 7 uneven slices.
  uint64_t bounds[] = {0, 1, 2, 100, 5000, 77777, 999999, 1000000};
  for (int i = 0; i < 7; ++i) {
    auto r = RunSlice(sum, i, bounds[i], bounds[i + 1], 1, params);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(sum->Fold(acc, *r).ok());
  }
  EXPECT_EQ(acc["sum"].get<uint64_t>(), 499999500000ull);
}

TEST(Handlers, SumNearTheTopOfTheRangeFailsPermanentlyInsteadOfWrapping) {
  Fixture f;
  auto r = RunSlice(f.registry.Get("sum"), 0, UINT64_MAX - 10, UINT64_MAX, 1, json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  auto small = RunSlice(f.registry.Get("sum"), 0, (1ull << 63) - 2, (1ull << 63) - 1, 1,
                        json::object());
  ASSERT_TRUE(small.ok());
  EXPECT_EQ((*small)["sum"].get<uint64_t>(), (1ull << 63) - 2);
}

TEST(Handlers, FlakyFailsTheChosenSubtaskForItsFirstAttempts) {
  Fixture f;
  const Handler* flaky = f.registry.Get("flaky");
  json params = {{"fail", {{"3", 2}}}};
  EXPECT_FALSE(RunSlice(flaky, 3, 0, 10, 1, params).ok());
  EXPECT_FALSE(RunSlice(flaky, 3, 0, 10, 2, params).ok());
  auto third = RunSlice(flaky, 3, 0, 10, 3, params);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)["sum"].get<uint64_t>(), 45u);
  EXPECT_TRUE(RunSlice(flaky, 2, 0, 10, 1, params).ok());
  json always = {{"fail", {{"3", -1}}}};
  EXPECT_EQ(RunSlice(flaky, 3, 0, 10, 50, always).status().code(),
            absl::StatusCode::kUnavailable);  // retryable, not permanent
}

// This test verifies that flaky's params.ms makes a slice take that long and
// still return the exact sum, that a stop ends it early, and that a bad value
// is refused naming params.ms.
TEST(Handlers, FlakyTakesMsPerSliceAndStillSums) {
  Fixture f;
  const Handler* flaky = f.registry.Get("flaky");
  json params = {{"ms", 30}};
  auto start = std::chrono::steady_clock::now();
  auto r = RunSlice(flaky, 0, 0, 10, 1, params);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));
  EXPECT_EQ((*r)["sum"].get<uint64_t>(), 45u);

  std::stop_source stop;
  stop.request_stop();
  json long_params = {{"ms", 60000}};
  EXPECT_EQ(RunSlice(flaky, 0, 0, 10, 1, long_params, stop.get_token()).status().code(),
            absl::StatusCode::kCancelled);

  json bad = {{"ms", "soon"}};
  PlanInput in{0, 10, &bad};
  auto plan = flaky->PlanSlices(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("params.ms"), std::string::npos);
}

TEST(Handlers, FlakyRefusesBadFailParams) {
  Fixture f;
  json params = {{"fail", {{"3", "x"}}}};
  PlanInput in{0, 10, &params};
  auto plan = f.registry.Get("flaky")->PlanSlices(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("params.fail.3"), std::string::npos);
}

TEST(Handlers, SleepStopsPromptlyWhenAsked) {
  Fixture f;
  std::stop_source stop;
  json params = {{"ms", 60000}};
  auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop.request_stop();
  });
  auto r = RunSlice(f.registry.Get("sleep"), 0, 0, 10, 1, params, stop.get_token());
  stopper.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Handlers, NoopCountsItems) {
  Fixture f;
  auto r = RunSlice(f.registry.Get("noop"), 0, 10, 25, 1, json::object());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["count"].get<uint64_t>(), 15u);
}

}  // namespace
}  // namespace orchard::worker
