// The server killed with kill -9 mid-task and restarted on the same db file
// and the same port: what it acknowledged survived, the workers reconnect, and
// the task finishes with the exact result. Scenario 7 of issue 2.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace orchard::it {
namespace {

constexpr uint64_t kSumOfMillion = 499999500000ULL;

class ServerRestartTest : public Cluster {
 protected:
  // Stops every process in `frozen` at a moment when task `id` has some but
  // not all subtasks succeeded, and returns the task as read then, with the
  // processes stopped. Between looks they run for a short window. Throws if
  // the task ends first or at the deadline.
  json FreezeMidTask(const std::vector<Process*>& frozen, const std::string& id,
                     Duration timeout = 30s) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      for (Process* p : frozen) p->Stop();
      const json task = GetTask(id);
      const std::string state = Str(task, "state");
      if (state == "Terminated" || state == "Error" || state == "Terminating") {
        throw HarnessError("task " + id + " got past Running before it could be caught "
                           "mid-way: " + TaskSummary(task));
      }
      const auto succeeded = task["subtasks"]["succeeded"].get<int64_t>();
      const auto total = task["subtasks"]["total"].get<int64_t>();
      if (state == "Running" && succeeded > 0 && succeeded < total) return task;
      for (Process* p : frozen) p->Continue();
      if (Clock::now() > deadline) {
        throw HarnessError("task " + id + " was never caught mid-way: " + TaskSummary(task));
      }
      // The run window between two looks (not a wait for a race to end).
      std::this_thread::sleep_for(10ms);
    }
  }
};

// This test verifies that a `sum` task survives kill -9 of the server in the
// middle of its run: after a restart on the same db file and port, the
// subtasks it had acknowledged are still done, the running workers reconnect,
// and the task ends with the exact sum and its full history.
TEST_F(ServerRestartTest, SumFinishesExactlyAfterServerKilledAndRestartedOnSameDb) {
  StartServer();
  const uint16_t port = server_port();
  StartWorker("a", 4);
  StartWorker("b", 4);
  WaitWorkerId("a");
  WaitWorkerId("b");

  // flaky without failures is sum; 20 ms a slice keeps the task (200 slices
  // on 8 slots, at least 0.5 s) running long enough to be caught mid-way.
  const json submitted = Submit({"--kind", "flaky", "--range", "0:1000000", "--subtasks", "200",
                                 "--params", R"({"ms":20})"});
  const std::string id = submitted.at("id").get<std::string>();

  const json before = FreezeMidTask({&worker("a"), &worker("b")}, id);
  KillServer();
  StartServer({.port = port});
  worker("a").Continue();
  worker("b").Continue();

  // Durable before acknowledged: every success the old server reported is
  // still there.
  const json after = GetTask(id);
  EXPECT_GE(after["subtasks"]["succeeded"].get<int64_t>(),
            before["subtasks"]["succeeded"].get<int64_t>())
      << "before the crash: " << TaskSummary(before) << "\nafter: " << TaskSummary(after);

  const json task = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(task, "state"), "Terminated") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  EXPECT_EQ(task["result"], (json{{"sum", kSumOfMillion}})) << task.dump();
  EXPECT_EQ(task["subtasks"]["succeeded"], 200) << TaskSummary(task);

  const json history = History(id);
  std::vector<std::string> walk;
  for (const auto& r : HistoryOf(history, "task")) walk.push_back(Str(r, "to"));
  ASSERT_FALSE(walk.empty());
  EXPECT_EQ(walk.back(), "Terminated") << json(walk).dump();
  walk.erase(std::unique(walk.begin(), walk.end()), walk.end());
  EXPECT_TRUE(std::find(walk.begin(), walk.end(), "Running") != walk.end() &&
              std::find(walk.begin(), walk.end(), "Terminating") != walk.end())
      << "the task's history lost rows across the restart: " << json(walk).dump();
  for (const auto& s : Subtasks(id)) {
    const auto events = Events(HistoryOf(history, s["index"]));
    EXPECT_EQ(std::count(events.begin(), events.end(), "Succeeded"), 1)
        << "subtask " << s["index"] << ": " << json(events).dump();
  }
}

// This test verifies that workers left running through a server crash (they
// see their calls fail and retry) reconnect to the restarted server on the
// same port and finish the task.
TEST_F(ServerRestartTest, RunningWorkersReconnectAfterServerKilledAndRestarted) {
  StartServer();
  const uint16_t port = server_port();
  StartWorker("a", 4);
  StartWorker("b", 4);
  WaitWorkerId("a");
  WaitWorkerId("b");

  // 40 subtasks of 300 ms on 8 slots: about 1.5 s of work, so the crash lands
  // mid-task with subtasks running.
  const json submitted = Submit({"--kind", "sleep", "--range", "0:40", "--subtasks", "40",
                                 "--params", R"({"ms": 300})"});
  const std::string id = submitted.at("id").get<std::string>();
  WaitFor(
      [&](std::string& observed) {
        const json task = GetTask(id);
        observed = TaskSummary(task);
        return task["subtasks"]["succeeded"] > 0 && task["subtasks"]["running"] > 0;
      },
      60s, "task " + id + " to have subtasks both succeeded and running");

  KillServer();
  StartServer({.port = port});

  const json task = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(task, "state"), "Terminated") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["succeeded"], 40) << TaskSummary(task);
  EXPECT_TRUE(worker("a").Running());
  EXPECT_TRUE(worker("b").Running());
}

}  // namespace
}  // namespace orchard::it
