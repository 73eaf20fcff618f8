// The task reconciler against a fake server API: each test hands it one task
// lease, drives the loop, and checks the calls it made, as sample-controller
// tests its syncHandler against fakes.
#include "worker/reconciler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/lifecycle/task.h"
#include "tests/worker/worker_fixture.h"
#include "worker/decide.h"

namespace orchard::worker::testing {
namespace {

using lifecycle::TaskEvent;
using lifecycle::TaskEventName;
using json = nlohmann::json;
using Calls = std::vector<std::string>;

class ReconcilerTest : public WorkerFixture {
 protected:
  pb::Task MakeTask(pb::State state, const std::string& kind = "sum") {
    pb::Task t;
    t.set_id("t1");
    t.set_version(3);
    t.set_state(state);
    t.set_create_time_ms(clock_.NowMs());
    t.mutable_spec()->set_kind(kind);
    t.mutable_spec()->set_begin(0);
    t.mutable_spec()->set_end(10);
    return t;
  }
  static void SetCounts(pb::Task& t, uint64_t running, uint64_t succeeded) {
    auto* c = t.mutable_counts();
    c->set_total(running + succeeded);
    c->set_running(running);
    c->set_terminated(succeeded);
    c->set_succeeded(succeeded);
  }
  static pb::Task Terminated(const pb::TransitionTaskRequest& req) {
    pb::Task t;
    t.set_id(req.task_id());
    t.set_version(req.expected_version() + 1);
    t.set_state(pb::TERMINATED);
    return t;
  }
  // Starts reconciling `task` under lease epoch 7 and runs until the
  // reconciler has let the task go.
  bool Reconcile(pb::Task task) {
    pb::TaskLease lease;
    lease.set_epoch(7);
    *lease.mutable_task() = std::move(task);
    reconciler_.Start(std::move(lease));
    return RunUntil([&] { return state_.tasks.empty(); });
  }
  void ScriptResults(std::vector<int> ns) {
    api_.on_list_subtasks = [ns](const pb::ListSubtasksRequest&) {
      pb::ListSubtasksResponse r;
      for (size_t i = 0; i < ns.size(); ++i) {
        auto* s = r.add_subtasks();
        s->set_index(i);
        s->set_state(pb::TERMINATED);
        s->set_outcome(pb::SUCCEEDED);
        s->set_result_json(json{{"n", ns[i]}}.dump());
      }
      return r;
    };
  }
};

// This test verifies that a task in Preparing is planned by its handler and
// that the Planned transition carries the plan, the lease epoch and the
// version the reconciler read.
TEST_F(ReconcilerTest, PreparingTaskIsPlannedAndThePlanSent) {
  api_.on_transition = [](const pb::TransitionTaskRequest& req) -> absl::StatusOr<pb::Task> {
    pb::Task t;
    t.set_id(req.task_id());
    t.set_version(req.expected_version() + 1);
    t.set_state(pb::RUNNING);
    SetCounts(t, 2, 0);
    return t;
  };
  api_.on_wait_task = [](const pb::WaitTaskRequest&) -> absl::StatusOr<pb::WaitTaskResponse> {
    return absl::NotFoundError("task t1: deleted");
  };
  ASSERT_TRUE(Reconcile(MakeTask(pb::PREPARING)));

  EXPECT_EQ(api_.calls, (Calls{"TransitionTasks", "WaitTask", "ReleaseTask"}));
  ASSERT_EQ(api_.transitions.size(), 1u);
  const pb::TransitionTaskRequest& t = api_.transitions[0];
  EXPECT_EQ(t.event(), TaskEventName(TaskEvent::kPlanned));
  EXPECT_EQ(t.worker_id(), "w1");
  EXPECT_EQ(t.task_id(), "t1");
  EXPECT_EQ(t.epoch(), 7u);
  EXPECT_EQ(t.expected_version(), 3u);
  EXPECT_FALSE(t.plan().uniform());
  EXPECT_EQ(std::vector<uint64_t>(t.plan().bounds().begin(), t.plan().bounds().end()),
            (std::vector<uint64_t>{0, 5, 10}));
  EXPECT_EQ(t.lease_subtasks(), 2u);  // both slices fit the four free slots
  // The wait was on the version the Planned transition answered with.
  ASSERT_EQ(api_.releases.size(), 1u);
  EXPECT_EQ(api_.releases[0].epoch(), 7u);
}

// This test verifies that a Running task whose subtasks are all done is
// reduced and ended in one write: the transition carries then_finalize and
// the folded result of the committed subtask results.
TEST_F(ReconcilerTest, AllSubtasksDoneFinalizesWithTheFoldedResult) {
  ScriptResults({3, 4});
  api_.on_transition = [](const pb::TransitionTaskRequest& req) -> absl::StatusOr<pb::Task> {
    return Terminated(req);
  };
  pb::Task task = MakeTask(pb::RUNNING);
  SetCounts(task, 0, 2);
  ASSERT_TRUE(Reconcile(task));

  EXPECT_EQ(api_.calls, (Calls{"ListSubtasks", "TransitionTasks"}));
  ASSERT_EQ(api_.transitions.size(), 1u);
  const pb::TransitionTaskRequest& t = api_.transitions[0];
  EXPECT_EQ(t.event(), TaskEventName(TaskEvent::kAllSucceeded));
  EXPECT_TRUE(t.then_finalize());
  EXPECT_EQ(t.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(json::parse(t.result_json()), (json{{"sum", 7}}));
  EXPECT_TRUE(api_.releases.empty());  // a terminal task's lease ended with its last write
}

// This test verifies that the deadline is read from the injected clock: the
// task is young by the system clock, but the fake clock is past its
// deadline, so the reconciler sends DeadlineExceeded instead of a plan.
TEST_F(ReconcilerTest, DeadlinePassedOnTheInjectedClockSendsDeadlineExceeded) {
  api_.on_transition = [](const pb::TransitionTaskRequest& req) -> absl::StatusOr<pb::Task> {
    return Terminated(req);
  };
  pb::Task task = MakeTask(pb::PREPARING);
  task.mutable_spec()->mutable_policy()->set_deadline_ms(60'000);
  clock_.Advance(120'000);
  ASSERT_TRUE(Reconcile(task));

  ASSERT_EQ(api_.transitions.size(), 1u);
  EXPECT_EQ(api_.transitions[0].event(), TaskEventName(TaskEvent::kDeadlineExceeded));
  EXPECT_FALSE(api_.transitions[0].has_plan());
}

// This test verifies the Terminating path: subtasks still running are
// stopped, the task is read again, and once nothing runs it is finalised
// with the ending that its cause (from history: a cancel) calls for.
TEST_F(ReconcilerTest, TerminatingTaskStopsItsSubtasksThenFinalizes) {
  pb::Task task = MakeTask(pb::TERMINATING);
  task.set_reason("cancelled by alice");
  SetCounts(task, 1, 1);
  api_.on_stop_subtasks = [](const pb::StopSubtasksRequest&) {
    pb::StopSubtasksResponse r;
    r.set_terminating(1);
    return r;
  };
  api_.on_get_task = [task](const pb::GetTaskRequest&) mutable -> absl::StatusOr<pb::Task> {
    pb::Task t = task;
    t.set_version(5);
    SetCounts(t, 0, 1);
    return t;
  };
  api_.on_get_history = [](const pb::GetHistoryRequest&) {
    pb::GetHistoryResponse r;
    auto* e = r.add_entries();
    e->set_from(pb::RUNNING);
    e->set_to(pb::TERMINATING);
    e->set_event(std::string(TaskEventName(TaskEvent::kCancelRequested)));
    return r;
  };
  ScriptResults({3});
  api_.on_transition = [](const pb::TransitionTaskRequest& req) -> absl::StatusOr<pb::Task> {
    return Terminated(req);
  };
  ASSERT_TRUE(Reconcile(task));

  EXPECT_EQ(api_.calls,
            (Calls{"StopSubtasks", "GetTask", "GetHistory", "ListSubtasks", "TransitionTasks"}));
  ASSERT_EQ(api_.stops.size(), 1u);
  EXPECT_EQ(api_.stops[0].task_id(), "t1");
  EXPECT_EQ(api_.stops[0].epoch(), 7u);
  EXPECT_EQ(api_.stops[0].reason(), "cancelled by alice");
  ASSERT_EQ(api_.transitions.size(), 1u);
  const Finish expected = FinishFor(TaskEvent::kCancelRequested);
  EXPECT_EQ(api_.transitions[0].event(), TaskEventName(expected.event));
  EXPECT_EQ(api_.transitions[0].outcome(), expected.outcome);
  EXPECT_EQ(api_.transitions[0].expected_version(), 5u);
  EXPECT_EQ(json::parse(api_.transitions[0].result_json()), (json{{"sum", 3}}));
}

// This test verifies that a reconciler whose write is refused because its
// lease is gone (the server's stale-epoch refusal) gives the task up: no
// second write, no re-read that would lead to one, no release of a lease
// that is not its own.
TEST_F(ReconcilerTest, LostLeaseRefusalGivesTheTaskUp) {
  api_.on_transition = [](const pb::TransitionTaskRequest&) -> absl::StatusOr<pb::Task> {
    return absl::FailedPreconditionError(
        "task t1: reconcile lease epoch 7 is stale (now 8)");
  };
  pb::Task task = MakeTask(pb::PREPARING);
  api_.on_get_task = [task](const pb::GetTaskRequest&) -> absl::StatusOr<pb::Task> {
    return task;
  };
  EXPECT_TRUE(Reconcile(task));

  EXPECT_EQ(api_.Count("TransitionTasks"), 1);
  EXPECT_EQ(api_.Count("GetTask"), 0);
  EXPECT_EQ(api_.Count("ReleaseTask"), 0);
}

// This test verifies that a reconcile coroutine that dies by an exception (a
// handler's result that json cannot dump) does not strand its lease: the
// task is forgotten here and its lease released at once.
TEST_F(ReconcilerTest, ExceptionInTheReconcilerReleasesTheLease) {
  ScriptResults({1});
  pb::Task task = MakeTask(pb::RUNNING, "bad_utf8");
  SetCounts(task, 0, 1);
  ASSERT_TRUE(Reconcile(task));
  ASSERT_TRUE(RunUntil([&] { return api_.releases.size() == 1; }));

  EXPECT_EQ(api_.Count("TransitionTasks"), 0);
  EXPECT_EQ(api_.releases[0].task_id(), "t1");
  EXPECT_EQ(api_.releases[0].epoch(), 7u);
  EXPECT_EQ(api_.releases[0].worker_id(), "w1");
}

}  // namespace
}  // namespace orchard::worker::testing
