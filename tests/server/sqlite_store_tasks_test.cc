// Tests of server/store/sqlite_store_tasks.cc beyond the Store contract:
// stopping a huge task in bounded writes, planning a million subtasks in
// one. Counts are checked with SELECTs on a separate raw connection.
#include "tests/testing/sqlite_store_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::Outcome;
using orchard::State;
using orchard::lifecycle::TaskEvent;
using orchard::store::AcquireResult;
using orchard::store::TaskTransition;
using namespace orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// The tests read SqliteStore.Xxx; one fixture class for every file of this
// binary (GoogleTest requires one class per suite name).
using SqliteStore = orchard::testing::SqliteStoreTest;

// This test verifies that stopping more waiting subtasks than one step
// takes (kStopBatch) stops every one, in several writes, with exactly one
// history row each and the counters right, and that other writes go through
// between the steps (a submit made meanwhile is not held until the end).
TEST_F(SqliteStore, StopSubtasksOfABigTaskRunsInBoundedSteps) {
  const uint64_t n = 2 * orchard::store::SqliteStore::kStopBatch + 5;
  pb::Task t = Start(Spec("sum", 0, n, n));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, kNow, "user asked"));
  const int64_t revision_before = Count("SELECT value FROM meta WHERE key = 'revision'");
  auto r = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  EXPECT_EQ(r.stopped, n);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks WHERE state = 1"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM history WHERE event = 'CancelRequested' AND "
                  "subtask_index >= 0"),
            static_cast<int64_t>(n));
  EXPECT_EQ(Count("SELECT count(DISTINCT subtask_index) FROM history WHERE event = "
                  "'CancelRequested' AND subtask_index >= 0"),
            static_cast<int64_t>(n));
  // Three steps, each its own commit (each bumps the global revision).
  EXPECT_GE(Count("SELECT value FROM meta WHERE key = 'revision'") - revision_before, 3);
  pb::Task after = Ok(store().GetTask(t.id()));
  EXPECT_EQ(after.counts().preparing(), 0u);
  EXPECT_EQ(after.counts().cancelled(), n);
  EXPECT_EQ(after.counts().terminated(), n);
}

// This test verifies that a task of a million subtasks is planned in one
// write, and prints how long it took.
TEST_F(SqliteStore, PlanningAMillionSubtasks) {
  pb::Task t = Submit(Spec("sum", 0, 10'000'000, 1'000'000));
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  auto start = std::chrono::steady_clock::now();
  pb::Task planned = Ok(store().TransitionTask(plan, kNow));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] planned 1,000,000 subtasks in %.3f s\n", secs);
  EXPECT_EQ(planned.counts().total(), 1'000'000u);
  EXPECT_EQ(planned.counts().preparing(), 1'000'000u);
  EXPECT_EQ(planned.counts().items_total(), 10'000'000u);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks"), 1'000'000);
  EXPECT_EQ(Count("SELECT count(*) FROM history"), 2);
  // Leasing from the middle of a million rows stays cheap.
  std::string w = Worker({"sum"});
  start = std::chrono::steady_clock::now();
  AcquireResult a = Acquire(w, 100);
  secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] acquired 100 of them in %.4f s\n", secs);
  EXPECT_EQ(a.subtasks.size(), 100u);
  EXPECT_EQ(a.subtasks[99].lease().subtask_index(), 99);
  // Cancelling it moves every waiting subtask (a history row each).
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  start = std::chrono::steady_clock::now();
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] stopped 1,000,000 subtasks in %.3f s\n", secs);
  EXPECT_EQ(stop.stopped, 999'900u);
  EXPECT_EQ(stop.terminating, 100u);
  pb::Task stopped = Get(t.id());
  EXPECT_EQ(stopped.counts().cancelled(), 999'900u);
  EXPECT_EQ(stopped.counts().terminating(), 100u);
  EXPECT_EQ(stopped.counts().preparing(), 0u);
}

}  // namespace
