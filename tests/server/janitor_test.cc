// Tests of server/janitor: the server itself ends the tasks that must end
// (cancelled, past their deadline) when no worker can reconcile them, and
// leaves every other task alone, and keeps on after a failed write (the
// store wrapped in a FaultyStore): the next pass finishes the task, once.
// A real SqliteStore in a temp dir and a fake clock; nothing sleeps.
#include "server/janitor.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/clock.h"
#include "server/store/faulty_store.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/ok.h"
#include "tests/testing/store_requests.h"
#include "tests/testing/temp_dir.h"

namespace orchard::server {
namespace {

namespace pb = ::orchard::v1;
using lifecycle::TaskEvent;

constexpr int64_t kTtl = 2'000;

using orchard::testing::Ok;

class TaskJanitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("janitor");
    store_ = Ok(store::SqliteStore::Open(store::SqliteOptions{.path = (dir_ / "o.db").string()}));
    faulty_ = std::make_unique<store::FaultyStore>(store_.get());
  }
  void TearDown() override {
    faulty_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  pb::Task Submit(const std::string& kind, uint64_t deadline_ms = 0, uint64_t subtasks = 1) {
    pb::TaskSpec s;
    s.set_kind(kind);
    s.set_begin(0);
    s.set_end(10);
    s.mutable_split()->set_subtasks(subtasks);
    s.mutable_policy()->set_deadline_ms(deadline_ms);
    return Ok(store_->CreateTask(s, clock_.NowMs())).task;
  }
  pb::Task Cancel(const std::string& id) {
    store::TaskTransition t{.task_id = id, .actor = "client", .event = TaskEvent::kCancelRequested};
    return Ok(store_->TransitionTask(t, clock_.NowMs()));
  }
  pb::Task Get(const std::string& id) { return Ok(store_->GetTask(id)); }
  std::vector<pb::HistoryEntry> TaskHistory(const std::string& id) {
    store::HistoryFilter f{.task_id = id, .subtask_index = -1};
    return Ok(store_->GetHistory(f)).entries;
  }
  TaskJanitor Janitor() { return TaskJanitor(store_.get(), &hub_, &clock_, kTtl); }
  // A janitor whose store fails the calls faulty_ is told to.
  TaskJanitor FaultyJanitor() { return TaskJanitor(faulty_.get(), &hub_, &clock_, kTtl); }
  size_t Rows(const std::string& id, const std::string& event) {
    size_t n = 0;
    for (const auto& h : TaskHistory(id)) n += h.event() == event ? 1 : 0;
    return n;
  }

  std::filesystem::path dir_;
  FakeClock clock_;
  Hub hub_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::FaultyStore> faulty_;
};

// This test verifies that a task of a kind no worker runs, past its
// deadline, is ended by the server: Error/FAILED with a reason naming the
// deadline and the missing kind, through DeadlineExceeded and
// FinalizedFailed, both with actor "server".
TEST_F(TaskJanitorTest, EndsATaskPastItsDeadlineThatNoWorkerRuns) {
  const pb::Task t = Submit("summ", /*deadline_ms=*/3000);
  TaskJanitor janitor = Janitor();
  EXPECT_EQ(janitor.RunOnce(), 0);  // before the deadline it waits
  EXPECT_EQ(Get(t.id()).state(), pb::PREPARING);
  clock_.Advance(3000);
  EXPECT_EQ(janitor.RunOnce(), 1);
  const pb::Task ended = Get(t.id());
  EXPECT_EQ(ended.state(), pb::ERROR);
  EXPECT_EQ(ended.outcome(), pb::FAILED);
  EXPECT_NE(ended.reason().find("deadline of 3000 ms passed"), std::string::npos) << ended.reason();
  EXPECT_NE(ended.reason().find("no live worker runs kind 'summ'"), std::string::npos)
      << ended.reason();
  const auto history = TaskHistory(t.id());
  ASSERT_GE(history.size(), 3u);
  EXPECT_EQ(history[history.size() - 2].event(), "DeadlineExceeded");
  EXPECT_EQ(history[history.size() - 2].actor(), "server");
  EXPECT_EQ(history.back().event(), "FinalizedFailed");
  EXPECT_EQ(history.back().actor(), "server");
  EXPECT_EQ(janitor.RunOnce(), 0);  // ended once
}

// This test verifies that a cancelled task that no worker can reconcile
// ends Terminated/CANCELLED by the server, and that a planned one's waiting
// subtasks end CANCELLED with it.
TEST_F(TaskJanitorTest, EndsACancelledTaskThatNoWorkerRuns) {
  const pb::Task t = Submit("summ");
  Cancel(t.id());
  TaskJanitor janitor = Janitor();
  EXPECT_EQ(janitor.RunOnce(), 1);
  pb::Task ended = Get(t.id());
  EXPECT_EQ(ended.state(), pb::TERMINATED);
  EXPECT_EQ(ended.outcome(), pb::CANCELLED);
  EXPECT_EQ(TaskHistory(t.id()).back().actor(), "server");

  // Planned (by a worker that has gone since), then cancelled.
  const pb::Task p = Submit("gone", 0, 4);
  store::TaskTransition plan{.task_id = p.id(), .actor = "w", .event = TaskEvent::kPlanned};
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  Ok(store_->TransitionTask(plan, clock_.NowMs()));
  Cancel(p.id());
  EXPECT_EQ(janitor.RunOnce(), 1);
  ended = Get(p.id());
  EXPECT_EQ(ended.state(), pb::TERMINATED);
  EXPECT_EQ(ended.outcome(), pb::CANCELLED);
  EXPECT_EQ(ended.counts().cancelled(), 4u);
  EXPECT_EQ(ended.counts().preparing(), 0u);
}

// This test verifies what the janitor leaves alone: a task whose kind a live
// worker runs (its reconciler ends it, with the handler's reduce), a task
// past its deadline whose reconcile lease is held, and a waiting task with
// no deadline and no cancel.
TEST_F(TaskJanitorTest, LeavesTasksAWorkerCanEndOrThatMayWait) {
  Ok(store_->RegisterWorker("w1", {"sum"}, 4, clock_.NowMs()));
  const pb::Task live = Submit("sum", 1000);
  const pb::Task waiting = Submit("summ");
  const pb::Task cancelled_live = Submit("sum");
  Cancel(cancelled_live.id());
  clock_.Advance(1500);
  // The worker keeps heartbeating (is live), so its kinds are reconciled.
  const auto workers = Ok(store_->ListWorkers(clock_.NowMs(), kTtl));
  ASSERT_EQ(workers.size(), 1u);
  Ok(testing::SendHeartbeat(*store_, {.worker_id = workers[0].id()}, clock_.NowMs(), kTtl));
  TaskJanitor janitor = Janitor();
  EXPECT_EQ(janitor.RunOnce(), 0);
  EXPECT_EQ(Get(live.id()).state(), pb::PREPARING);
  EXPECT_EQ(Get(waiting.id()).state(), pb::PREPARING);
  EXPECT_EQ(Get(cancelled_live.id()).state(), pb::TERMINATING);

  // The worker takes the reconcile lease of a deadline task, then its kind
  // goes dead; while the lease holds, the janitor waits for it.
  const pb::Task leased = Submit("sum", 10);
  constexpr int64_t kLongLease = 10 * kTtl;
  auto acquired = Ok(store_->Acquire(workers[0].id(), 0, 10, clock_.NowMs(), kLongLease));
  bool took = false;
  for (const auto& l : acquired.tasks) took |= l.task().id() == leased.id();
  ASSERT_TRUE(took);
  clock_.Advance(kTtl + 100);  // the worker is no longer live; its lease still holds
  EXPECT_EQ(janitor.RunOnce(), 0);
  EXPECT_EQ(Get(leased.id()).state(), pb::PREPARING);
  clock_.Advance(kLongLease);  // the lease has expired too
  EXPECT_GE(janitor.RunOnce(), 1);
  EXPECT_EQ(Get(leased.id()).state(), pb::ERROR);
}

// ------------------------------------------------------------ storage faults

// This test verifies that when stopping a task's subtasks fails after its
// DeadlineExceeded was written, the pass ends nothing and the next pass
// finishes the task from Terminating, naming the deadline as the cause.
TEST_F(TaskJanitorTest, AFailedStopLeavesTheTaskForTheNextPass) {
  const pb::Task t = Submit("summ", /*deadline_ms=*/1000, /*subtasks=*/3);
  store::TaskTransition plan{.task_id = t.id(), .actor = "w", .event = TaskEvent::kPlanned};
  plan.plan.emplace().set_uniform(true);
  Ok(store_->TransitionTask(plan, clock_.NowMs()));
  clock_.Advance(1000);
  faulty_->Inject({.op = store::FaultyStore::Op::kStopSubtasks});
  TaskJanitor janitor = FaultyJanitor();
  EXPECT_EQ(janitor.RunOnce(), 0);
  pb::Task half = Get(t.id());
  EXPECT_EQ(half.state(), pb::TERMINATING);
  EXPECT_EQ(half.counts().preparing(), 3u) << "the failed stop moved a subtask";
  EXPECT_EQ(janitor.RunOnce(), 1);
  const pb::Task ended = Get(t.id());
  EXPECT_EQ(ended.state(), pb::ERROR) << "a deadline ends FAILED, not CANCELLED";
  EXPECT_EQ(ended.outcome(), pb::FAILED);
  EXPECT_EQ(ended.counts().cancelled(), 3u);
  EXPECT_EQ(Rows(t.id(), "DeadlineExceeded"), 1u);
  EXPECT_EQ(Rows(t.id(), "FinalizedFailed"), 1u);
  EXPECT_EQ(faulty_->Injected(), 1);
}

// This test verifies that a finalize that never reached the store leaves
// the task as it was (Terminating, no new history row), and the next pass
// ends it exactly once.
TEST_F(TaskJanitorTest, AFailedFinalizeIsRetriedByTheNextPass) {
  const pb::Task t = Submit("summ");
  Cancel(t.id());
  const size_t rows = TaskHistory(t.id()).size();
  faulty_->Inject({.op = store::FaultyStore::Op::kTransitionTask});
  TaskJanitor janitor = FaultyJanitor();
  EXPECT_EQ(janitor.RunOnce(), 0);
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATING);
  EXPECT_EQ(TaskHistory(t.id()).size(), rows);
  EXPECT_EQ(janitor.RunOnce(), 1);
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATED);
  EXPECT_EQ(Get(t.id()).outcome(), pb::CANCELLED);
  EXPECT_EQ(Rows(t.id(), "Finalized"), 1u);
  EXPECT_EQ(janitor.RunOnce(), 0);
}

// This test verifies that a finalize that committed but whose answer was
// lost is not applied twice: the next pass finds the task ended and leaves
// it, with one Finalized row.
TEST_F(TaskJanitorTest, AFinalizeWhoseAnswerWasLostIsNotAppliedTwice) {
  const pb::Task t = Submit("summ");
  Cancel(t.id());
  faulty_->Inject({.op = store::FaultyStore::Op::kTransitionTask,
                   .when = store::FaultyStore::When::kAfter});
  TaskJanitor janitor = FaultyJanitor();
  EXPECT_EQ(janitor.RunOnce(), 0);  // told it failed
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATED);
  EXPECT_EQ(janitor.RunOnce(), 0);
  EXPECT_EQ(Rows(t.id(), "Finalized"), 1u);
}

// This test verifies that a failed read of the unreconciled tasks ends
// nothing and the next pass does the work.
TEST_F(TaskJanitorTest, AFailedReadEndsNothingAndTheNextPassWorks) {
  const pb::Task t = Submit("summ");
  Cancel(t.id());
  faulty_->Inject({.op = store::FaultyStore::Op::kUnreconciledTasks});
  TaskJanitor janitor = FaultyJanitor();
  EXPECT_EQ(janitor.RunOnce(), 0);
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATING);
  EXPECT_EQ(janitor.RunOnce(), 1);
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATED);
}

}  // namespace
}  // namespace orchard::server
