// The subtask runner against a fake server API: a slice runs, its report is
// sent; a slice whose coroutine dies by an exception is reported failed
// (retryable) instead of being stranded until its lease expires.
#include "worker/subtask_runner.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/worker/worker_fixture.h"

namespace orchard::worker::testing {
namespace {

class SubtaskRunnerTest : public WorkerFixture {
 protected:
  void Run(const std::string& kind) {
    pb::SubtaskLease lease;
    lease.mutable_lease()->set_task_id("t1");
    lease.mutable_lease()->set_subtask_index(0);
    lease.mutable_lease()->set_epoch(4);
    lease.set_kind(kind);
    lease.set_begin(0);
    lease.set_end(5);
    lease.set_attempt(1);
    runner_.Enqueue(std::move(lease));
    runner_.StartQueued();
  }
};

// This test verifies that a slice runs on its handler and its result is
// reported with its lease, which is then forgotten.
TEST_F(SubtaskRunnerTest, SliceRunsAndItsResultIsReported) {
  Run("sum");
  ASSERT_TRUE(RunUntil([&] { return state_.subtasks.empty(); }));
  ASSERT_EQ(api_.reports.size(), 1u);
  ASSERT_EQ(api_.reports[0].reports_size(), 1);
  const pb::SubtaskReport& r = api_.reports[0].reports(0);
  EXPECT_EQ(r.lease().epoch(), 4u);
  EXPECT_EQ(nlohmann::json::parse(r.succeeded_result_json()), (nlohmann::json{{"n", 5}}));
  EXPECT_EQ(state_.busy, 0u);
}

// This test verifies that when the coroutine running a slice throws (its
// result is not valid UTF-8, so json::dump() throws), the slot is freed and
// the lease handed back as a retryable failure.
TEST_F(SubtaskRunnerTest, ExceptionInTheRunnerReportsTheSliceFailed) {
  Run("bad_utf8");
  ASSERT_TRUE(RunUntil([&] { return state_.subtasks.empty(); }));
  ASSERT_EQ(api_.reports.size(), 1u);
  ASSERT_EQ(api_.reports[0].reports_size(), 1);
  const pb::SubtaskReport& r = api_.reports[0].reports(0);
  EXPECT_EQ(r.lease().epoch(), 4u);
  EXPECT_EQ(r.outcome_case(), pb::SubtaskReport::kFailedError);
  EXPECT_TRUE(r.failed_error().starts_with("worker: ")) << r.failed_error();
  EXPECT_EQ(state_.busy, 0u);
  EXPECT_TRUE(runner_.Idle());
}

}  // namespace
}  // namespace orchard::worker::testing
