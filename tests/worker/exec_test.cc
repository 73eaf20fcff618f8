// Tests of the exec handler: the allowlist, the environment a program sees,
// results and failures, the output cap, progress, timeouts, stopping the
// whole process group, and the reduce program. Programs are small sh
// scripts written into a temp dir per test.
#include "tests/testing/temp_dir.h"
#include "worker/handlers/exec.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace orchard::worker {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("exec");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes an executable sh script and returns its path.
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    return path;
  }

  // An ExecHandler allowing `programs` (a JSON object as in the config file).
  static ExecHandler Handler(const json& programs) {
    auto config = ParseExecConfig(json{{"exec", {{"programs", programs}}}});
    EXPECT_TRUE(config.ok()) << config.status();
    return ExecHandler(*config);
  }

  absl::StatusOr<json> Run(const ExecHandler& h, const json& params, std::stop_token stop = {},
                           uint64_t begin = 10, uint64_t end = 20) {
    SliceContext ctx;
    ctx.task_id = "t-abc";
    ctx.index = 3;
    ctx.begin = begin;
    ctx.end = end;
    ctx.attempt = 2;
    ctx.params = &params;
    ctx.progress = &progress_;
    ctx.stop = stop;
    return h.Run(ctx);
  }

  fs::path dir_;
  std::atomic<uint64_t> progress_{0};
};

// This test verifies that a program that is not in the allowlist is refused
// when the task is planned, with INVALID_ARGUMENT naming params.program and
// the program, and that bad params name their field.
TEST_F(ExecTest, ProgramNotInTheAllowlistIsRefusedAtPlan) {
  auto h = Handler({{"echo", {{"argv", {"/bin/echo"}}}}});
  json params{{"program", "/bin/rm"}};
  PlanInput in{0, 10, &params};
  auto st = h.PlanSlices(in).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("params.program"), std::string::npos) << st;
  EXPECT_NE(st.message().find("'/bin/rm'"), std::string::npos) << st;
  params = {{"program", "echo"}, {"args", {"ok", 3}}};
  st = h.PlanSlices(in).status();
  EXPECT_NE(st.message().find("params.args[1]"), std::string::npos) << st;
  params = {{"program", "echo"}, {"args", {"ok"}}};
  EXPECT_TRUE(h.PlanSlices(in).ok());
}

// This test verifies that config errors name the field.
TEST_F(ExecTest, ConfigErrorsNameTheField) {
  auto c = ParseExecConfig(json::parse(R"({"exec": {"programs": {"x": {"argv": ["rel"]}}}})"));
  EXPECT_NE(c.status().message().find("exec.programs.x.argv[0]"), std::string::npos) << c.status();
  c = ParseExecConfig(json::parse(R"({"exec": {"programs": {"x": {"argv": ["/bin/true"],
      "reduce": "nope"}}}})"));
  EXPECT_NE(c.status().message().find("exec.programs.x.reduce"), std::string::npos) << c.status();
  c = ParseExecConfig(json::parse(R"({"exec": {"programs": {"x": {"argv": ["/bin/true"],
      "timeout": "soon"}}}})"));
  EXPECT_NE(c.status().message().find("exec.programs.x.timeout"), std::string::npos) << c.status();
}

// This test verifies that the program gets the slice in its environment, the
// configured env, the fixed and extra argv (no shell), and that the JSON
// object on its last stdout line is the result.
TEST_F(ExecTest, ProgramSeesTheSliceAndItsLastLineIsTheResult) {
  std::string s = Script("env.sh",
                         "echo 'some log line'\n"
                         "printf '{\"task\":\"%s\",\"index\":%s,\"begin\":%s,\"end\":%s,"
                         "\"attempt\":%s,\"mode\":\"%s\",\"args\":\"%s\",\"home\":\"%s\"}\\n' "
                         "\"$ORCHARD_TASK_ID\" \"$ORCHARD_SUBTASK_INDEX\" \"$ORCHARD_RANGE_BEGIN\" "
                         "\"$ORCHARD_RANGE_END\" \"$ORCHARD_ATTEMPT\" \"$MODE\" \"$*\" \"$HOME\"\n");
  auto h = Handler({{"env", {{"argv", {s, "fixed"}}, {"env", {{"MODE", "fast"}}}}}});
  auto r = Run(h, {{"program", "env"}, {"args", {"a b", "$HOME;rm"}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json({{"task", "t-abc"},
                      {"index", 3},
                      {"begin", 10},
                      {"end", 20},
                      {"attempt", 2},
                      {"mode", "fast"},
                      {"args", "fixed a b $HOME;rm"},
                      {"home", ""}}));
  EXPECT_EQ(progress_.load(), 10u);
}

// This test verifies that output that is not a JSON object becomes
// {"stdout": ...}, capped at max_stdout_bytes (the tail is kept).
TEST_F(ExecTest, PlainOutputIsCappedAndKept) {
  std::string s = Script("big.sh", "i=0\nwhile [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done\n");
  auto h = Handler({{"big", {{"argv", {s}}, {"max_stdout_bytes", 100}}}});
  auto r = Run(h, {{"program", "big"}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::string out = (*r)["stdout"];
  EXPECT_LE(out.size(), 100u);
  EXPECT_NE(out.find("line 1999\n"), std::string::npos) << out;
}

// This test verifies that a non-zero exit is a retryable failure carrying
// the tail of stderr, and that exit 65 fails for good.
TEST_F(ExecTest, NonZeroExitFailsWithTheStderrTail) {
  std::string s = Script("fail.sh", "echo 'first' >&2\necho 'disk on fire' >&2\nexit ${1:-3}\n");
  auto h = Handler({{"fail", {{"argv", {s}}}}});
  auto r = Run(h, {{"program", "fail"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("exited with code 3"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("disk on fire"), std::string::npos) << r.status();
  r = Run(h, {{"program", "fail"}, {"args", {"65"}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
}

// This test verifies that `ORCHARD_PROGRESS N` lines on stderr set the
// slice's progress while it runs and stay out of the error text.
TEST_F(ExecTest, ProgressLinesReportProgress) {
  std::string s = Script("prog.sh",
                         "echo 'ORCHARD_PROGRESS 4' >&2\n"
                         "while [ ! -e \"$1\" ]; do sleep 0.01; done\n"
                         "exit 1\n");
  auto h = Handler({{"prog", {{"argv", {s}}}}});
  std::string flag = (dir_ / "go").string();
  std::thread t([&] {
    for (int i = 0; i < 500 && progress_.load() != 4; ++i) std::this_thread::sleep_for(10ms);
    std::ofstream{flag};
  });
  auto r = Run(h, {{"program", "prog"}, {"args", {flag}}});
  t.join();
  EXPECT_EQ(progress_.load(), 4u);
  EXPECT_EQ(r.status().message().find("ORCHARD_PROGRESS"), std::string::npos) << r.status();
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

pid_t ReadPid(const fs::path& p) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream f(p);
    pid_t pid = 0;
    if (f >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

// This test verifies that a stop request kills the whole process group
// promptly — the program and the child it forked — even when the program
// ignores SIGTERM (SIGKILL after the grace period).
TEST_F(ExecTest, StopKillsTheProcessGroupPromptly) {
  std::string s = Script("stubborn.sh",
                         "trap '' TERM\n"
                         "sleep 60 &\n"
                         "echo $! > \"$1\"\n"
                         "while true; do sleep 0.05; done\n");
  auto h = Handler({{"stubborn", {{"argv", {s}}, {"grace", "300ms"}}}});
  const fs::path pidfile = dir_ / "child.pid";
  std::stop_source stop;
  std::thread stopper([&] {
    ReadPid(pidfile);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = Run(h, {{"program", "stubborn"}, {"args", {pidfile.string()}}}, stop.get_token());
  const auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_LT(took, 5s);
  pid_t child = ReadPid(pidfile);
  ASSERT_GT(child, 0);
  // The forked `sleep 60` is gone too (a zombie until init reaps it at most).
  for (int i = 0; i < 200 && Alive(child); ++i) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    if (stat >> pid >> comm >> state && state == "Z") break;
    std::this_thread::sleep_for(10ms);
  }
  std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
  std::string pid, comm, state;
  if (stat >> pid >> comm >> state) EXPECT_EQ(state, "Z") << "child " << child << " survived";
}

// This test verifies that a program that exits but leaves a child behind in
// its group does not leave an orphan: the leftovers are killed.
TEST_F(ExecTest, NoOrphanSurvivesAFinishedProgram) {
  std::string s = Script("leaver.sh", "sleep 60 &\necho $! > \"$1\"\necho '{\"ok\":true}'\n");
  auto h = Handler({{"leaver", {{"argv", {s}}}}});
  const fs::path pidfile = dir_ / "child.pid";
  auto r = Run(h, {{"program", "leaver"}, {"args", {pidfile.string()}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json({{"ok", true}}));
  pid_t child = ReadPid(pidfile);
  ASSERT_GT(child, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, st;
    gone = !(stat >> pid >> comm >> st) || st == "Z";
    if (!gone) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(gone) << "child " << child << " survived";
}

// This test verifies the timeout: the operator's, shortened by params.timeout.
TEST_F(ExecTest, TimeoutFailsTheAttempt) {
  std::string s = Script("slow.sh", "sleep 30\n");
  auto h = Handler({{"slow", {{"argv", {s}}, {"timeout", "1m"}, {"grace", "100ms"}}}});
  const auto start = std::chrono::steady_clock::now();
  auto r = Run(h, {{"program", "slow"}, {"timeout", "200ms"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// This test verifies the reduce: the results in index order by default, or
// what the configured reduce program prints given them on stdin.
TEST_F(ExecTest, ReduceCollectsOrRunsTheReduceProgram) {
  std::string count = Script("count.sh", "echo \"{\\\"n\\\": $ORCHARD_SUBTASK_INDEX}\"\n");
  std::string sum = Script("sum.sh",
                           "tr -cd '0-9\\n,' | tr ',' '\\n' | "
                           "awk '{s+=$1} END {printf \"{\\\"total\\\": %d}\\n\", s}'\n");
  auto h = Handler({{"count", {{"argv", {count}}, {"reduce", "sum"}}},
                    {"plain", {{"argv", {count}}}},
                    {"sum", {{"argv", {sum}}}}});
  json acc = h.Init();
  for (int i : {1, 2, 4}) ASSERT_TRUE(h.Fold(acc, {{"n", i}}).ok());
  json plain{{"program", "plain"}};
  auto r = h.Finish({"t-abc", &plain, true}, acc);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json({{"results", {{{"n", 1}}, {{"n", 2}}, {{"n", 4}}}}}));
  json reduced{{"program", "count"}};
  r = h.Finish({"t-abc", &reduced, true}, acc);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json({{"total", 7}}));
}

}  // namespace
}  // namespace orchard::worker
