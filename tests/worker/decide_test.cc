// Tests of the task reconciler's pure decision function.
#include "worker/decide.h"

#include <gtest/gtest.h>

namespace orchard::worker {
namespace {

namespace pb = ::orchard::v1;
using lifecycle::TaskEvent;

pb::Task MakeTask(pb::State state, uint64_t total, uint64_t preparing, uint64_t running,
                  uint64_t terminating, uint64_t error, uint64_t terminated) {
  pb::Task t;
  t.set_id("t-1");
  t.set_state(state);
  t.set_create_time_ms(1000);
  auto* c = t.mutable_counts();
  c->set_total(total);
  c->set_preparing(preparing);
  c->set_running(running);
  c->set_terminating(terminating);
  c->set_error(error);
  c->set_terminated(terminated);
  t.mutable_spec()->mutable_policy()->set_max_failed_subtasks(0);
  return t;
}

// This test verifies that a new task is planned and a retried one (which has
// subtasks already) is re-planned without a new plan.
TEST(Decide, PreparingPlansOnceAndReplansAfterRetry) {
  EXPECT_EQ(Decide(MakeTask(pb::PREPARING, 0, 0, 0, 0, 0, 0), 0).kind, Decision::kPlan);
  EXPECT_EQ(Decide(MakeTask(pb::PREPARING, 5, 2, 0, 0, 0, 3), 0).kind, Decision::kReplan);
}

TEST(Decide, RunningWaitsWhileSubtasksAreActive) {
  auto d = Decide(MakeTask(pb::RUNNING, 10, 5, 5, 0, 0, 0), 2000);
  EXPECT_EQ(d.kind, Decision::kWait);
  EXPECT_EQ(d.errors_above, 0);
  EXPECT_GT(d.wait_ms, 0);
}

TEST(Decide, RunningEndsWhenNothingIsActive) {
  auto d = Decide(MakeTask(pb::RUNNING, 10, 0, 0, 0, 0, 10), 2000);
  EXPECT_EQ(d.kind, Decision::kTransition);
  EXPECT_EQ(d.event, TaskEvent::kAllSucceeded);
}

TEST(Decide, OneErrorOverAZeroBudgetFailsTheTaskAtOnce) {
  auto d = Decide(MakeTask(pb::RUNNING, 10, 4, 5, 0, 1, 0), 2000);
  EXPECT_EQ(d.kind, Decision::kTransition);
  EXPECT_EQ(d.event, TaskEvent::kBudgetExceeded);
}

TEST(Decide, ErrorsWithinTheBudgetKeepRunning) {
  auto t = MakeTask(pb::RUNNING, 10, 4, 4, 0, 2, 0);
  t.mutable_spec()->mutable_policy()->set_max_failed_subtasks(2);
  EXPECT_EQ(Decide(t, 2000).kind, Decision::kWait);
  t.mutable_spec()->mutable_policy()->set_max_failed_subtasks(-1);
  EXPECT_EQ(Decide(t, 2000).kind, Decision::kWait);
}

TEST(Decide, DeadlineIsCountedFromSubmit) {
  auto t = MakeTask(pb::RUNNING, 10, 5, 5, 0, 0, 0);
  t.mutable_spec()->mutable_policy()->set_deadline_ms(500);
  auto before = Decide(t, 1499);
  EXPECT_EQ(before.kind, Decision::kWait);
  EXPECT_EQ(before.wait_ms, 1);  // wakes exactly at the deadline
  auto at = Decide(t, 1500);
  EXPECT_EQ(at.kind, Decision::kTransition);
  EXPECT_EQ(at.event, TaskEvent::kDeadlineExceeded);
}

// This test verifies that a deadline that passes before the task was
// planned ends it too (Preparing -> Terminating), instead of planning it.
TEST(Decide, DeadlinePassedBeforePlanningEndsTheTask) {
  auto t = MakeTask(pb::PREPARING, 0, 0, 0, 0, 0, 0);
  t.mutable_spec()->mutable_policy()->set_deadline_ms(500);
  EXPECT_EQ(Decide(t, 1499).kind, Decision::kPlan);
  auto at = Decide(t, 1500);
  EXPECT_EQ(at.kind, Decision::kTransition);
  EXPECT_EQ(at.event, TaskEvent::kDeadlineExceeded);
  EXPECT_NE(at.reason.find("before the task was planned"), std::string::npos) << at.reason;
}

// This test verifies the plural of the budget reason: "1 subtask failed".
TEST(Decide, BudgetReasonCountsInTheRightNumber) {
  auto one = MakeTask(pb::RUNNING, 10, 5, 4, 0, 1, 0);
  EXPECT_EQ(Decide(one, 0).reason, "1 subtask failed, over the budget of 0");
  auto two = MakeTask(pb::RUNNING, 10, 5, 3, 0, 2, 0);
  EXPECT_EQ(Decide(two, 0).reason, "2 subtasks failed, over the budget of 0");
}

TEST(Decide, TerminatingStopsThenWaitsThenFinalizes) {
  EXPECT_EQ(Decide(MakeTask(pb::TERMINATING, 10, 3, 2, 0, 0, 5), 0).kind, Decision::kStop);
  EXPECT_EQ(Decide(MakeTask(pb::TERMINATING, 10, 0, 0, 2, 0, 8), 0).kind, Decision::kWait);
  EXPECT_EQ(Decide(MakeTask(pb::TERMINATING, 10, 0, 0, 0, 1, 9), 0).kind, Decision::kFinalize);
}

TEST(Decide, TerminalStatesReleaseTheLease) {
  EXPECT_EQ(Decide(MakeTask(pb::ERROR, 1, 0, 0, 0, 1, 0), 0).kind, Decision::kDone);
  EXPECT_EQ(Decide(MakeTask(pb::TERMINATED, 1, 0, 0, 0, 0, 1), 0).kind, Decision::kDone);
}

TEST(Decide, FinishMapsTheCauseToOutcome) {
  EXPECT_EQ(FinishFor(TaskEvent::kAllSucceeded).outcome, pb::SUCCEEDED);
  EXPECT_EQ(FinishFor(TaskEvent::kAllSucceeded).event, TaskEvent::kFinalized);
  EXPECT_EQ(FinishFor(TaskEvent::kCancelRequested).outcome, pb::CANCELLED);
  EXPECT_EQ(FinishFor(TaskEvent::kCancelRequested).event, TaskEvent::kFinalized);
  EXPECT_EQ(FinishFor(TaskEvent::kBudgetExceeded).outcome, pb::FAILED);
  EXPECT_EQ(FinishFor(TaskEvent::kBudgetExceeded).event, TaskEvent::kFinalizedFailed);
  EXPECT_EQ(FinishFor(TaskEvent::kDeadlineExceeded).event, TaskEvent::kFinalizedFailed);
}

}  // namespace
}  // namespace orchard::worker
