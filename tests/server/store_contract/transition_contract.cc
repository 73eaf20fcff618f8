// The Store contract (store_contract.h): task transitions. The table is
// checked again at the store, a stale version is ABORTED, a refused write
// changes nothing (version, revision, history), and the guards on Finalized,
// the stop of a task's subtasks and a retry hold.
#include "tests/server/store_contract/store_contract.h"

#include <gtest/gtest.h>

#include <google/protobuf/util/message_differencer.h>

#include <future>
#include <optional>
#include <string>
#include <vector>

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace orchard::store_contract {
namespace {

namespace pb = ::orchard::v1;
using ::orchard::Outcome;
using ::orchard::State;
using ::orchard::lifecycle::TaskEvent;
using ::orchard::store::AcquireResult;
using ::orchard::store::HistoryFilter;
using ::orchard::store::SubtaskFilter;
using ::orchard::store::TaskFilter;
using ::orchard::store::TaskTransition;
using ::orchard::store::TransitionResult;
using namespace ::orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// This test verifies that a write based on an old version is refused ABORTED.
TEST_P(StoreContract, VersionConflictIsAborted) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.expected_version = 5;
  tr.event = TaskEvent::kCancelRequested;
  auto r = store().TransitionTask(tr, kNow);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(r.status().message(), "task " + t.id() + " changed: version 1, expected 5");
  tr.expected_version = 1;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow)).version(), 2u);
}

// This test verifies that an edge the table does not have is refused and
// writes nothing: no version, no revision, no history.
TEST_P(StoreContract, IllegalTransitionIsRefusedAndWritesNothing) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  const size_t history = History(t.id(), std::nullopt).size();
  auto r = Transition(t.id(), TaskEvent::kFinalized);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find(t.id()), std::string::npos);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.version(), t.version());
  EXPECT_EQ(after.revision(), t.revision());
  EXPECT_EQ(after.state(), pb::PREPARING);
  EXPECT_EQ(History(t.id(), std::nullopt).size(), history);
  EXPECT_EQ(Transition("t-missing", TaskEvent::kPlanned).status().code(),
            absl::StatusCode::kNotFound);
}

// This test verifies that a batch of transitions applies each on its own, in
// order: the refused ones (a stale version, an edge the table lacks, an
// unknown task) change nothing, the others are written with their history,
// and the answers line up with the requests.
TEST_P(StoreContract, TransitionTasksAppliesEachOnItsOwn) {
  pb::Task a = Submit(Spec("sum", 0, 10, 1));
  pb::Task b = Submit(Spec("sum", 0, 10, 2));
  pb::Task c = Submit(Spec("sum", 0, 10, 1));
  auto rows = [&] {
    return History(a.id(), std::nullopt).size() + History(b.id(), std::nullopt).size() +
           History(c.id(), std::nullopt).size();
  };
  const size_t history = rows();
  std::vector<TaskTransition> ts(4);
  ts[0].task_id = a.id();
  ts[0].event = TaskEvent::kPlanned;
  ts[0].plan.emplace();
  ts[0].plan->set_uniform(true);
  ts[1].task_id = b.id();
  ts[1].expected_version = b.version() + 7;  // stale
  ts[1].event = TaskEvent::kCancelRequested;
  ts[2].task_id = c.id();
  ts[2].event = TaskEvent::kFinalized;  // no such edge from Preparing
  ts[3].task_id = "t-missing";
  ts[3].event = TaskEvent::kCancelRequested;
  std::vector<absl::StatusOr<pb::Task>> r = store().TransitionTasks(ts, kNow);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  EXPECT_EQ(r[0]->id(), a.id());
  EXPECT_EQ(r[0]->state(), pb::RUNNING);
  EXPECT_EQ(r[0]->counts().total(), 1u);
  EXPECT_EQ(r[1].status().code(), absl::StatusCode::kAborted) << r[1].status();
  EXPECT_EQ(r[2].status().code(), absl::StatusCode::kFailedPrecondition) << r[2].status();
  EXPECT_EQ(r[3].status().code(), absl::StatusCode::kNotFound) << r[3].status();
  EXPECT_EQ(Get(b.id()).version(), b.version());
  EXPECT_EQ(Get(c.id()).state(), pb::PREPARING);
  // The one written: its Planned row (new subtasks start without one).
  EXPECT_EQ(rows(), history + 1);
  ExpectCountersMatchSubtasks(a.id());
  EXPECT_TRUE(store().TransitionTasks({}, kNow).empty());
}

// This test verifies that Invalid fails the task with its reason.
TEST_P(StoreContract, InvalidFailsTheTaskWithItsReason) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.event = TaskEvent::kInvalid;
  tr.reason = "params: x must be a string";
  pb::Task e = Ok(store().TransitionTask(tr, kNow + 9));
  EXPECT_EQ(e.state(), pb::ERROR);
  EXPECT_EQ(e.outcome(), pb::FAILED);
  EXPECT_EQ(e.reason(), "params: x must be a string");
  EXPECT_EQ(e.finish_time_ms(), kNow + 9);
}

// This test verifies that a task cancelled before it was planned finalises
// as CANCELLED, not SUCCEEDED, when the reconciler names no outcome.
TEST_P(StoreContract, FinalizeWithoutSubtasksIsCancelled) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "", kNow));
  EXPECT_EQ(stop.stopped + stop.terminating, 0u);
  pb::Task done = Ok(Transition(t.id(), TaskEvent::kFinalized));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::CANCELLED);
  TaskTransition wrong;
  wrong.task_id = t.id();
  wrong.event = TaskEvent::kRetryRequested;
  EXPECT_EQ(store().TransitionTask(wrong, kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// This test verifies that StopSubtasks cancels waiting subtasks and asks the
// running ones to stop, that Finalized is refused until they stopped, and
// that both are refused outside Terminating.
TEST_P(StoreContract, StopSubtasksAndTheFinalizeGuard) {
  pb::Task t = Start(Spec("sum", 0, 40, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  EXPECT_EQ(store().StopSubtasks(t.id(), "", 0, "", kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease())));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, kNow, "user asked"));
  auto r = Ok(store().StopSubtasks(t.id(), "", 0, "cancelled by user", kNow));
  EXPECT_EQ(r.stopped, 2u);
  EXPECT_EQ(r.terminating, 1u);
  auto again = Ok(store().StopSubtasks(t.id(), "", 0, "cancelled by user", kNow));
  EXPECT_EQ(again.stopped + again.terminating, 0u) << "idempotent";

  auto refused = Transition(t.id(), TaskEvent::kFinalized);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("terminating"), std::string::npos);
  Ok(ReportOne(w, Stopped(a.subtasks[1].lease())));
  TaskTransition fin;
  fin.task_id = t.id();
  fin.event = TaskEvent::kFinalized;
  fin.outcome = Outcome::kCancelled;
  fin.result_json = R"({"partial":true})";
  pb::Task done = Ok(store().TransitionTask(fin, kNow + 3));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::CANCELLED);
  EXPECT_EQ(done.result_json(), R"({"partial":true})");
  EXPECT_EQ(done.finish_time_ms(), kNow + 3);
  EXPECT_EQ(done.counts().cancelled(), 3u);
  EXPECT_EQ(done.counts().succeeded(), 1u);
  ExpectCountersMatchSubtasks(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that AllSucceeded with then_finalize ends the task in
// one write, both transitions in its history, and that it is refused, with
// nothing changed, while a subtask is still active.
TEST_P(StoreContract, AllSucceededThenFinalizeEndsTheTaskInOneWrite) {
  pb::Task t = Start(Spec("sum", 0, 20, 2));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r0")));
  TaskTransition end;
  end.task_id = t.id();
  end.event = TaskEvent::kAllSucceeded;
  end.then_finalize = true;
  end.outcome = Outcome::kSucceeded;
  end.reason = "all subtasks succeeded";
  end.result_json = R"({"sum":190})";
  const size_t rows = History(t.id(), -1).size();
  auto early = store().TransitionTask(end, kNow + 1);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition) << early.status();
  EXPECT_EQ(Get(t.id()).state(), pb::RUNNING) << "a refused write changed the task";
  EXPECT_EQ(History(t.id(), -1).size(), rows);

  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease(), "r1")));
  pb::Task done = Ok(store().TransitionTask(end, kNow + 2));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(done.result_json(), R"({"sum":190})");
  EXPECT_EQ(done.reason(), "all subtasks succeeded");
  auto h = History(t.id(), -1);
  ASSERT_EQ(h.size(), rows + 2);
  EXPECT_EQ(h[rows].event(), "AllSucceeded");
  EXPECT_EQ(h[rows].to(), pb::TERMINATING);
  EXPECT_EQ(h[rows + 1].event(), "Finalized");
  EXPECT_EQ(h[rows + 1].from(), pb::TERMINATING);
  EXPECT_EQ(h[rows + 1].to(), pb::TERMINATED);

  TaskTransition wrong;
  wrong.task_id = t.id();
  wrong.event = TaskEvent::kCancelRequested;
  wrong.then_finalize = true;
  EXPECT_EQ(store().TransitionTask(wrong, kNow + 3).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// This test verifies that every write that answers a task (submit, a
// reconcile lease, Planned with its first leases, AllSucceeded with its
// Finalized) answers it exactly as a read then finds it, counters and
// reconciler included: a reconciler acts on the answer without reading again.
TEST_P(StoreContract, EveryWriteAnswersTheTaskAsStored) {
  using google::protobuf::util::MessageDifferencer;
  auto expect_stored = [&](const pb::Task& answered, const char* what) {
    pb::Task stored = Get(answered.id());
    EXPECT_TRUE(MessageDifferencer::Equals(answered, stored))
        << what << "\nanswered: " << answered.ShortDebugString()
        << "\nstored:   " << stored.ShortDebugString();
  };
  pb::TaskSpec spec = Spec("sum", 0, 30, 3);
  (*spec.mutable_labels())["team"] = "a";
  pb::Task t = Submit(spec);
  expect_stored(t, "submit");

  const std::string w = Worker({"sum"});
  AcquireResult lease = Acquire(w, 0, kNow + 1, 1);
  ASSERT_EQ(lease.tasks.size(), 1u);
  expect_stored(lease.tasks[0].task(), "reconcile lease");
  EXPECT_EQ(lease.tasks[0].task().reconciler(), w);

  TaskTransition plan;
  plan.task_id = t.id();
  plan.actor = w;
  plan.expected_version = lease.tasks[0].task().version();
  plan.lease_worker = w;
  plan.lease_epoch = lease.tasks[0].epoch();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  plan.lease_subtasks = 2;
  plan.lease_ttl_ms = kTtl;
  std::promise<std::vector<absl::StatusOr<TransitionResult>>> planned;
  store().TransitionTasksAsync({plan}, kNow + 2, [&](auto r) { planned.set_value(std::move(r)); });
  std::vector<absl::StatusOr<TransitionResult>> p = planned.get_future().get();
  ASSERT_EQ(p.size(), 1u);
  TransitionResult running = Ok(std::move(p[0]));
  ASSERT_EQ(running.subtasks.size(), 2u);
  EXPECT_EQ(running.task.counts().running(), 2u);
  EXPECT_EQ(running.task.counts().preparing(), 1u);
  expect_stored(running.task, "Planned with leases");

  AcquireResult rest = Acquire(w, 1, kNow + 3);
  ASSERT_EQ(rest.subtasks.size(), 1u);
  for (const auto& l : running.subtasks) Ok(ReportOne(w, Succeeded(l.lease()), kNow + 4));
  Ok(ReportOne(w, Succeeded(rest.subtasks[0].lease()), kNow + 4));

  TaskTransition end;
  end.task_id = t.id();
  end.actor = w;
  end.lease_worker = w;
  end.lease_epoch = lease.tasks[0].epoch();
  end.event = TaskEvent::kAllSucceeded;
  end.then_finalize = true;
  end.result_json = R"({"sum":435})";
  pb::Task done = Ok(store().TransitionTask(end, kNow + 5));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(done.counts().succeeded(), 3u);
  EXPECT_EQ(done.reconciler(), "") << "a terminal task keeps no reconciler";
  expect_stored(done, "AllSucceeded then Finalized");
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that a retry of a failed task re-runs only the subtasks
// that failed or were cancelled, from attempt 0, and that a succeeded one
// keeps its result.
TEST_P(StoreContract, RetryResetsOnlyFailedAndCancelledSubtasks) {
  pb::Task t = Start(Spec("sum", 0, 100, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r0")));
  Ok(ReportOne(w, FailedPermanently(a.subtasks[1].lease())));
  Ok(Transition(t.id(), TaskEvent::kBudgetExceeded));
  Ok(store().StopSubtasks(t.id(), "", 0, "budget", kNow));
  Ok(ReportOne(w, Stopped(a.subtasks[2].lease())));
  TaskTransition fail;
  fail.task_id = t.id();
  fail.event = TaskEvent::kFinalizedFailed;
  fail.reason = "budget";
  pb::Task failed = Ok(store().TransitionTask(fail, kNow));
  EXPECT_EQ(failed.state(), pb::ERROR);
  EXPECT_EQ(failed.outcome(), pb::FAILED);

  pb::Task retried = Ok(Transition(t.id(), TaskEvent::kRetryRequested, kNow + 1));
  EXPECT_EQ(retried.state(), pb::PREPARING);
  EXPECT_EQ(retried.generation(), 1u);
  EXPECT_EQ(retried.outcome(), pb::OUTCOME_UNSPECIFIED);
  EXPECT_EQ(retried.finish_time_ms(), 0);
  EXPECT_EQ(retried.counts().preparing(), 3u);
  EXPECT_EQ(retried.counts().succeeded(), 1u);
  EXPECT_EQ(retried.counts().items_done(), 25u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::TERMINATED);
  EXPECT_EQ(subs[0].result_json(), "r0");
  for (int i = 1; i < 4; ++i) {
    EXPECT_EQ(subs[i].state(), pb::PREPARING) << i;
    EXPECT_EQ(subs[i].attempt(), 0u) << i;
  }
  ExpectCountersMatchSubtasks(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());

  // The retried task already has subtasks: a new plan is refused, none needed.
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  EXPECT_EQ(store().TransitionTask(plan, kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  plan.plan.reset();
  EXPECT_EQ(Ok(store().TransitionTask(plan, kNow)).state(), pb::RUNNING);
  EXPECT_EQ(Acquire(w, 10, kNow + 2).subtasks.size(), 3u);
}

// This test verifies that counter changes move the task's revision (watchers
// see progress) but not its version (the reconciler's CAS), and that
// TasksChangedAfter returns changes in revision order.
TEST_P(StoreContract, CounterChangesMoveRevisionButNotVersion) {
  pb::Task t = Start(Spec("sum", 0, 10, 2));
  pb::Task other = Submit(Spec("sum", 0, 10, 2));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.version(), t.version());
  EXPECT_GT(after.revision(), t.revision());
  EXPECT_GT(after.revision(), other.revision());
  auto changed = Ok(store().TasksChangedAfter(other.revision(), "", 100));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].id(), t.id());
  auto all = Ok(store().TasksChangedAfter(0, "", 100));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), other.id());
  EXPECT_EQ(Ok(store().TasksChangedAfter(0, other.id(), 100)).size(), 1u);
  EXPECT_TRUE(Ok(store().TasksChangedAfter(after.revision(), t.id(), 100)).empty());
}

}  // namespace
}  // namespace orchard::store_contract
