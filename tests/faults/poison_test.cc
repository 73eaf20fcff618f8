// One bad task cannot hold up another (issue 19): a normal `sum` task of
// 1,000 subtasks runs beside poisoned tasks on the same worker, and every
// one of them ends with a reason that names its cause, while the normal task
// ends exact in about its usual time. Real processes on loopback.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class PoisonTest : public FaultTest {
 protected:
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = (dir() / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    return path;
  }
  // Submits the normal task and waits for its end; returns how long it took.
  Duration RunSum(json* task) {
    const auto t0 = Clock::now();
    const json submitted = Submit({"--kind", "sum", "--range", "0:1000000", "--subtasks", "1000"});
    *task = WaitTaskEnded(Str(submitted, "id"), 180s);
    return std::chrono::duration_cast<Duration>(Clock::now() - t0);
  }
  void ExpectExactSum(const json& task) {
    EXPECT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
    EXPECT_EQ(task["result"]["sum"].get<uint64_t>(), SumOf(0, 1000000)) << task.dump();
  }
};

// This test verifies that, on one worker, a FIFO as csv.aggregate's path, a
// program that ignores SIGTERM (cancelled), one that crashes with SIGSEGV,
// one that prints broken JSON, one whose child outlives it, and a result over
// the size limit all end with their cause named, that a normal task beside
// them ends exact within twice its time alone (plus 5 s for this shared
// machine), that the worker then drains on SIGTERM, and that the invariant
// checker is clean.
TEST_F(PoisonTest, PoisonedTasksEndAndANormalTaskKeepsItsPace) {
  const std::string fifo = (dir() / "input.fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string config = (dir() / "worker.json").string();
  const std::string child_pid = (dir() / "forker.child").string();
  std::ofstream(config) << json{
      {"exec",
       {{"programs",
         {{"stubborn", {{"argv", {Script("stubborn.sh", "trap '' TERM\nsleep 600\n")}},
                        {"grace", "1s"}}},
          {"segv", {{"argv", {Script("segv.sh", "kill -SEGV $$\n")}}}},
          {"broken", {{"argv", {Script("broken.sh", "echo '{\"unterminated'\n")}}}},
          {"forker", {{"argv", {Script("forker.sh", "sleep 600 &\necho $! > " + child_pid +
                                                        "\necho '{\"ok\": 1}'\n")}}}},
          {"huge", {{"argv", {Script("huge.sh",
                                     "printf '{\"pad\": \"'; head -c 1500000 /dev/zero | "
                                     "tr '\\0' x; printf '\"}\\n'\n")}},
                    {"max_stdout_bytes", 4 << 20}}}}}}}}
                            .dump(2);
  StartServer();
  StartWorkers({"a"}, 4, {"--config", config});

  json alone;
  const Duration alone_took = RunSum(&alone);
  ExpectExactSum(alone);

  auto submit = [&](std::vector<std::string> args) { return Str(Submit(args), "id"); };
  const std::string fifo_task =
      submit({"--kind", "csv.aggregate", "--range", "0:100", "--subtasks", "1", "--params",
              json{{"path", fifo}}.dump()});
  const std::string stubborn = submit({"--kind", "exec", "--range", "0:1", "--subtasks", "1",
                                       "--params", R"({"program": "stubborn"})"});
  const std::string segv = submit({"--kind", "exec", "--range", "0:1", "--subtasks", "1",
                                   "--max-attempts", "2", "--backoff", "10ms", "--params",
                                   R"({"program": "segv"})"});
  const std::string broken = submit({"--kind", "exec", "--range", "0:1", "--subtasks", "1",
                                     "--params", R"({"program": "broken"})"});
  const std::string forker = submit({"--kind", "exec", "--range", "0:1", "--subtasks", "1",
                                     "--params", R"({"program": "forker"})"});
  const std::string huge = submit({"--kind", "exec", "--range", "0:1", "--subtasks", "1",
                                   "--params", R"({"program": "huge"})"});

  json beside;
  const Duration beside_took = RunSum(&beside);
  ExpectExactSum(beside);
  EXPECT_LE(beside_took, 2 * alone_took + Scaled(5s))
      << "alone " << alone_took.count() << " ms, beside the poison " << beside_took.count() << " ms";

  const json f = WaitTaskEnded(fifo_task, 30s);
  EXPECT_EQ(Str(f, "state"), "Error") << TaskSummary(f);
  EXPECT_NE(Str(f, "reason").find("params.path"), std::string::npos) << TaskSummary(f);
  EXPECT_NE(Str(f, "reason").find("not a regular file"), std::string::npos) << TaskSummary(f);

  const json s = WaitTaskEnded(segv, 30s);
  EXPECT_EQ(Str(s, "state"), "Error") << TaskSummary(s);
  EXPECT_NE(Str(s, "reason").find("signal"), std::string::npos) << TaskSummary(s);

  const json b = WaitTaskEnded(broken, 30s);
  EXPECT_EQ(Str(b, "outcome"), "SUCCEEDED") << TaskSummary(b);  // the text is kept as stdout
  EXPECT_TRUE(b["result"]["results"][0].contains("stdout")) << b.dump();

  const json fk = WaitTaskEnded(forker, 30s);
  EXPECT_EQ(Str(fk, "outcome"), "SUCCEEDED") << TaskSummary(fk);
  int pid = 0;
  std::ifstream(child_pid) >> pid;
  ASSERT_GT(pid, 0);
  WaitFor(
      [&](std::string& observed) {
        observed = "pid " + std::to_string(pid) + " still runs";
        return kill(pid, 0) != 0;
      },
      10s, "the forked child of forker.sh to be killed with its slice");

  const json h = WaitTaskEnded(huge, 30s);
  EXPECT_EQ(Str(h, "state"), "Error") << TaskSummary(h);
  EXPECT_NE(Str(h, "reason").find("over the limit of 1048576 bytes"), std::string::npos)
      << TaskSummary(h);

  // The program that ignores SIGTERM: a cancel still ends its task (SIGKILL
  // after the program's 1 s grace).
  WaitTaskState(stubborn, {"Running"}, 30s);
  const auto cancelled_at = Clock::now();
  ASSERT_EQ(Ctl({"cancel", stubborn}).exit_code, 0);
  const json st = WaitTaskEnded(stubborn, 30s);
  EXPECT_EQ(Str(st, "outcome"), "CANCELLED") << TaskSummary(st);
  EXPECT_LT(Clock::now() - cancelled_at, Scaled(15s));

  // The worker drains on SIGTERM and exits 0 within its 30 s grace.
  worker("a").Signal(SIGTERM);
  EXPECT_EQ(worker("a").WaitExit(35s), 0);
  ExpectInvariantsHold();
}

}  // namespace
}  // namespace orchard::it
