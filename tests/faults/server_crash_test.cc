// Server crash loop and restarts under long polls and watches: kill -9 of the
// server at random instants (seeded), restarted each time on the same db file
// and port. Nothing acknowledged is lost, the long task ends exact, and the
// workers and a running `orchardctl watch` reconnect and carry on.
#include <string>
#include <vector>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class ServerCrashTest : public FaultTest {};

// This test verifies guarantee 1 under a crash loop: after at least five
// kill -9s at random instants, every task whose submit was acknowledged
// exists, and the long task ends SUCCEEDED with the exact sum.
TEST_F(ServerCrashTest, CrashLoopLosesNoAcknowledgedWriteAndTheTaskEndsExact) {
  StartServer({.lease_ttl = "1s"});
  const uint16_t port = server_port();
  StartWorkers({"a", "b"}, 8);

  constexpr uint64_t kEnd = 30'000'000;
  const std::string id =
      Str(Submit({"--kind", "sum", "--range", "0:" + std::to_string(kEnd), "--subtasks",
                  "30000", "--max-attempts", "20", "--backoff", "50ms"}),
          "id");
  // The long task: 160 slices of 500 ms on 16 slots, at least 5 s of work,
  // so the crashes land while it runs.
  const std::string slow = Str(Submit({"--kind", "sleep", "--range", "0:160", "--subtasks",
                                       "160", "--params", R"({"ms": 500})", "--max-attempts",
                                       "20", "--backoff", "50ms"}),
                               "id");
  std::vector<std::string> acknowledged = {id, slow};
  int crashes = 0, while_running = 0;
  for (; crashes < 6; ++crashes) {
    // An acknowledged write right before the crash.
    acknowledged.push_back(
        Str(Submit({"--kind", "noop", "--range", "0:10", "--subtasks", "1"}), "id"));
    std::this_thread::sleep_for(RandomDelay(50ms, 900ms));  // the crash's random instant
    while_running += Str(GetTask(slow), "state") == "Running" ? 1 : 0;
    KillServer();
    StartServer({.port = port, .lease_ttl = "1s"});
  }
  EXPECT_GE(while_running, 5) << "crashes that hit the long task while it ran";
  const json before_end = GetTask(id);
  std::cout << "faults: " << while_running << " of " << crashes
            << " crashes hit the long task running; after them the sum task is "
            << TaskSummary(before_end) << "\n";

  for (const auto& t : acknowledged) {
    const CtlResult r = Ctl({"get", t, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << "acknowledged task " << t << " lost: " << r.err;
  }
  const json done = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(done, "state"), "Terminated") << TaskSummary(done);
  EXPECT_EQ(Str(done, "outcome"), "SUCCEEDED") << TaskSummary(done);
  EXPECT_EQ(done["result"], (json{{"sum", SumOf(0, kEnd)}})) << done.dump();
  const json slow_done = WaitTaskEnded(slow, 60s);
  EXPECT_EQ(Str(slow_done, "outcome"), "SUCCEEDED") << TaskSummary(slow_done);
  EXPECT_EQ(slow_done["result"], (json{{"slept_ms", 160 * 500}})) << slow_done.dump();
  for (size_t i = 2; i < acknowledged.size(); ++i) {
    const json t = WaitTaskEnded(acknowledged[i], 30s);
    EXPECT_EQ(t["result"], (json{{"count", 10}})) << t.dump();
  }
  KillServer();  // checked at rest too: what a crash leaves is consistent
  ExpectInvariantsHold();
  Summary("server kills (kill -9) with restarts on the same db", crashes,
          HasFailure() ? 0 : crashes);
}

// This test verifies that long polls (Acquire, WaitTask) and a watch stream
// survive a server restart: the workers and `orchardctl watch` reconnect on
// their own, the task finishes, and watch exits 0.
TEST_F(ServerCrashTest, WorkersAndWatchReconnectAfterRestarts) {
  StartServer();
  const uint16_t port = server_port();
  StartWorkers({"a", "b"}, 4);
  const std::string id = Str(Submit({"--kind", "sleep", "--range", "0:48", "--subtasks", "48",
                                     "--params", R"({"ms": 250})"}),
                             "id");
  auto watch = Process::Start("watch", {CtlBinary(), "--server", server_address(), "watch", id},
                              dir() / "watch.stdout.log", dir() / "watch.stderr.log");
  int restarts = 0;
  for (; restarts < 2; ++restarts) {
    WaitFor(
        [&](std::string& observed) {
          const json t = GetTask(id);
          observed = TaskSummary(t);
          return t["subtasks"]["running"].get<int64_t>() > 0;
        },
        30s, "subtasks running before restart " + std::to_string(restarts + 1));
    KillServer();
    // The fault: the server stays down a while, so every long poll and the
    // watch stream see it gone.
    std::this_thread::sleep_for(RandomDelay(300ms, 1200ms));
    StartServer({.port = port});
  }
  const json done = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(done, "outcome"), "SUCCEEDED") << TaskSummary(done);
  EXPECT_EQ(done["result"], (json{{"slept_ms", 48 * 250}})) << done.dump();
  const auto code = watch->WaitExit(30s);
  EXPECT_EQ(code, 0) << "watch: " << TailFile(watch->stderr_path(), 20)
                     << TailFile(watch->stdout_path(), 20);
  EXPECT_TRUE(worker("a").Running());
  EXPECT_TRUE(worker("b").Running());
  ExpectInvariantsHold();
  Summary("server restarts under long polls and a watch", restarts,
          code == 0 && !HasFailure() ? restarts : 0);
}

}  // namespace
}  // namespace orchard::it
