// Cancelling a running task on a real cluster: the task stops within a few
// heartbeats, and the worker really stops its handlers. Scenario 4 of issue 2.
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace orchard::it {
namespace {

class CancelTest : public Cluster {
 protected:
  // Waits for the end of a task cancelled at `cancelled_at`, which must be
  // Terminated/CANCELLED "within a few heartbeats": far below the 60 s its
  // handlers would sleep.
  json WaitCancelledEnd(const std::string& id, Clock::time_point cancelled_at) {
    const json task = WaitTaskEnded(id, 60s);
    const auto took = std::chrono::duration_cast<Duration>(Clock::now() - cancelled_at);
    EXPECT_EQ(Str(task, "state"), "Terminated") << TaskSummary(task);
    EXPECT_EQ(Str(task, "outcome"), "CANCELLED") << TaskSummary(task);
    EXPECT_LT(took, 15s) << "cancel took " << took.count() << " ms to reach the end";
    return task;
  }
};

// "event->to" for each history row that moved the object.
std::vector<std::string> Walk(const std::vector<json>& rows) {
  std::vector<std::string> walk;
  for (const auto& r : rows) {
    if (!Str(r, "from").empty()) walk.push_back(Str(r, "event") + "->" + Str(r, "to"));
  }
  return walk;
}

// This test verifies that cancelling a task whose `sleep` subtasks are
// running (each would sleep a minute) moves it through Terminating to
// Terminated/CANCELLED within seconds, that `watch` reports the cancel with
// exit code 4, and that the worker stopped the running handlers: they end
// through Stopped, and the worker's slots are free again.
TEST_F(CancelTest, CancelStopsRunningHandlersAndEndsCancelled) {
  StartServer();
  StartWorker("a", 4);
  const std::string worker_id = WaitWorkerId("a");

  const json submitted = Submit({"--kind", "sleep", "--range", "0:8", "--subtasks", "8",
                                 "--params", R"({"ms": 60000})"});
  const std::string id = submitted.at("id").get<std::string>();

  // Four subtasks fill the worker's four slots; the other four wait.
  std::set<int64_t> running;
  WaitFor(
      [&](std::string& observed) {
        const json subtasks = Subtasks(id);
        running.clear();
        for (const auto& s : subtasks) {
          if (Str(s, "state") == "Running") running.insert(s["index"].get<int64_t>());
        }
        observed = json(running).dump() + " running; " + subtasks.dump();
        return running.size() == 4;
      },
      60s, "four subtasks of task " + id + " to be Running");
  // The handlers get going: the worker reports its slots in use.
  WaitFor(
      [&](std::string& observed) {
        const json workers = Workers();
        observed = workers.dump();
        for (const auto& w : workers) {
          if (Str(w, "id") == worker_id) return w["slots_in_use"] == 4;
        }
        return false;
      },
      30s, "worker a to report 4 slots in use");

  const CtlResult cancel = Ctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.command << "\nstderr: " << cancel.err;
  const json task = WaitCancelledEnd(id, Clock::now());
  EXPECT_EQ(task["subtasks"]["running"], 0) << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["terminating"], 0) << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["cancelled"], 8) << TaskSummary(task);

  const CtlResult watch = Ctl({"watch", id}, 30s);
  EXPECT_EQ(watch.exit_code, 4) << watch.command << "\nstdout: " << watch.out
                                << "\nstderr: " << watch.err;

  const json history = History(id);
  const auto task_rows = HistoryOf(history, "task");
  EXPECT_EQ(Walk(task_rows), (std::vector<std::string>{"Planned->Running",
                                                 "CancelRequested->Terminating",
                                                 "Finalized->Terminated"}))
      << json(task_rows).dump(1);

  const json subtasks = Subtasks(id);
  ASSERT_EQ(subtasks.size(), 8u);
  for (const auto& s : subtasks) {
    const int64_t index = s["index"].get<int64_t>();
    EXPECT_EQ(Str(s, "state"), "Terminated") << s.dump();
    EXPECT_EQ(Str(s, "outcome"), "CANCELLED") << s.dump();
    const auto rows = HistoryOf(history, index);
    const std::vector<std::string> walk = Walk(rows);
    if (running.count(index) != 0) {
      // It was running: cancel asks, the worker stops the handler and says so.
      EXPECT_EQ(walk, (std::vector<std::string>{"Leased->Running", "CancelRequested->Terminating",
                                                "Stopped->Terminated"}))
          << "subtask " << index << " was running when cancelled: " << json(rows).dump(1);
    } else {
      // It was waiting: cancel ends it without a worker.
      EXPECT_EQ(walk, (std::vector<std::string>{"CancelRequested->Terminated"}))
          << "subtask " << index << " was waiting when cancelled: " << json(rows).dump(1);
    }
  }

  // The worker freed its slots (it stopped the handlers rather than leaving
  // them to sleep out their minute) and is still alive.
  WaitFor(
      [&](std::string& observed) {
        const json workers = Workers();
        observed = workers.dump();
        for (const auto& w : workers) {
          if (Str(w, "id") == worker_id) return w["slots_in_use"] == 0 && w["alive"] == true;
        }
        return false;
      },
      10s, "worker a to report 0 slots in use after the cancel");
  EXPECT_TRUE(worker("a").Running()) << "the worker exited during the cancel";
}

// This test verifies that a cancel reaches a reconciler whose active slices
// all run on its own worker. Such a reconciler first waits (up to 50 ms) for
// its own Report's answer, not on the server, so this checks that it still
// parks a server wait that the cancel wakes: the task ends CANCELLED in
// seconds, every slice stopped by the worker.
TEST_F(CancelTest, CancelReachesAReconcilerWhoseSlicesAllRunOnItsWorker) {
  StartServer();
  StartWorker("a", 4);
  WaitWorkerId("a");

  const json submitted = Submit({"--kind", "sleep", "--range", "0:4", "--subtasks", "4",
                                 "--params", R"({"ms": 60000})"});
  const std::string id = submitted.at("id").get<std::string>();
  WaitFor(
      [&](std::string& observed) {
        const json task = GetTask(id);
        observed = TaskSummary(task);
        return task["subtasks"]["running"] == 4;
      },
      60s, "all four subtasks of task " + id + " to be Running on worker a");

  const CtlResult cancel = Ctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.command << "\nstderr: " << cancel.err;
  const json task = WaitCancelledEnd(id, Clock::now());
  EXPECT_EQ(task["subtasks"]["cancelled"], 4) << TaskSummary(task);
  const json history = History(id);
  for (int64_t index = 0; index < 4; ++index) {
    EXPECT_EQ(Walk(HistoryOf(history, index)), (std::vector<std::string>{"Leased->Running", "CancelRequested->Terminating",
                                              "Stopped->Terminated"}))
        << "subtask " << index;
  }
}

}  // namespace
}  // namespace orchard::it
