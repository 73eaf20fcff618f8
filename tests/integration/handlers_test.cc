// The exec and csv.aggregate handlers on a real cluster: exact answers over
// many slices and across a killed worker, an allowlisted program that runs,
// one that is refused, and a cancel that kills the program's process group.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <random>

#include "harness.h"

namespace orchard::it {
namespace {

class HandlersTest : public Cluster {
 protected:
  // A CSV with quoted fields (commas, newlines and quotes inside), CRLF and
  // LF line ends; returns its path and fills the expected sums and counts
  // per region.
  std::string WriteCsv(int rows, std::map<std::string, std::pair<int64_t, int64_t>>& expected) {
    std::mt19937 rng(42);
    const char* names[] = {"plain", "\"a,b\"", "\"two\nlines\"", "\"say \"\"hi\"\"\"", ""};
    std::string text = "region,name,amount\r\n";
    for (int i = 0; i < rows; ++i) {
      std::string region = std::to_string(10 + rng() % 7);
      int64_t amount = static_cast<int64_t>(rng() % 100000) - 5000;
      text += region + "," + names[rng() % 5] + "," + std::to_string(amount) +
              (i % 3 == 0 ? "\r\n" : "\n");
      expected[region].first += amount;
      expected[region].second += 1;
    }
    std::string path = (dir() / "data.csv").string();
    std::ofstream(path, std::ios::binary) << text;
    size_ = text.size();
    return path;
  }

  std::string CsvParams(const std::string& path, uint64_t chunk) {
    return json{{"path", path},
                {"group_by", {"region"}},
                {"aggregates", {{{"column", "amount"}, {"op", "sum"}}, {{"op", "count"}}}},
                {"chunk_bytes", chunk}}
        .dump();
  }

  static void ExpectTable(const json& task,
                          const std::map<std::string, std::pair<int64_t, int64_t>>& expected) {
    const json& result = task["result"];
    ASSERT_EQ(result["columns"], json({"region", "amount_sum", "count"})) << result.dump();
    ASSERT_EQ(result["rows"].size(), expected.size()) << result.dump();
    size_t i = 0;
    for (const auto& [region, sc] : expected) {
      EXPECT_EQ(result["rows"][i], json({region, sc.first, sc.second})) << result.dump();
      ++i;
    }
    EXPECT_EQ(result["bad_rows"], 0) << result.dump();
  }

  // Writes an executable sh script into the test's dir.
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = (dir() / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    return path;
  }

  // Writes the worker config allowing `programs`; returns its path.
  std::string Config(const json& programs) {
    std::string path = (dir() / "worker.json").string();
    std::ofstream(path) << json{{"exec", {{"programs", programs}}}}.dump(2);
    return path;
  }

  uint64_t size_ = 0;
};

// This test verifies that a csv.aggregate task over a CSV with quoted
// newlines, split into dozens of byte-range subtasks, ends SUCCEEDED with
// the exact per-group sums and counts.
TEST_F(HandlersTest, CsvAggregateSplitIntoManySubtasksIsExact) {
  StartServer();
  StartWorker("a", 2);
  StartWorker("b", 2);
  std::map<std::string, std::pair<int64_t, int64_t>> expected;
  const std::string path = WriteCsv(20000, expected);
  const json submitted =
      Submit({"--kind", "csv.aggregate", "--range", "0:" + std::to_string(size_), "--subtasks",
              "1", "--params", CsvParams(path, 16 << 10)});
  const json task = WaitTaskEnded(submitted.at("id").get<std::string>(), 120s);
  ASSERT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  EXPECT_GT(task["subtasks"]["total"].get<int64_t>(), 20) << TaskSummary(task);
  ExpectTable(task, expected);
}

// This test verifies that killing a worker in the middle of a csv.aggregate
// task changes nothing in the answer: its slices are leased again after the
// lease expires and every slice is counted exactly once. (About 2,000 small
// slices on one slot, so the kill lands mid-run even on a fast machine.)
TEST_F(HandlersTest, CsvAggregateStaysExactWhenAWorkerIsKilled) {
  StartServer();
  StartWorker("a", 1);
  std::map<std::string, std::pair<int64_t, int64_t>> expected;
  const std::string path = WriteCsv(60000, expected);
  const json submitted =
      Submit({"--kind", "csv.aggregate", "--range", "0:" + std::to_string(size_), "--subtasks",
              "1", "--params", CsvParams(path, 512)});
  const std::string id = submitted.at("id").get<std::string>();
  WaitFor(
      [&](std::string& observed) {
        const json t = GetTask(id);
        observed = TaskSummary(t);
        return t["subtasks"]["succeeded"].get<int64_t>() >= 5;
      },
      60s, "a few slices of " + id + " to succeed");
  worker("a").Kill();
  const json mid = GetTask(id);
  ASSERT_NE(Str(mid, "state"), "Terminated") << "the task ended before the kill: "
                                             << TaskSummary(mid);
  StartWorker("b", 2);
  const json task = WaitTaskEnded(id, 180s);
  ASSERT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  ExpectTable(task, expected);
}

// This test verifies that an exec task runs an allowlisted script once per
// slice with the slice in its environment, and that the task's result is
// the slices' results in index order.
TEST_F(HandlersTest, ExecRunsAnAllowlistedScriptPerSlice) {
  const std::string script = Script(
      "slice.sh",
      "echo \"{\\\"index\\\": $ORCHARD_SUBTASK_INDEX, \\\"begin\\\": $ORCHARD_RANGE_BEGIN, "
      "\\\"end\\\": $ORCHARD_RANGE_END, \\\"arg\\\": \\\"$1\\\"}\"\n");
  const std::string config = Config({{"slice", {{"argv", {script}}}}});
  StartServer();
  StartWorker("a", 2, {"--config", config});
  const json submitted = Submit({"--kind", "exec", "--range", "0:40", "--subtasks", "4",
                                 "--params", R"({"program": "slice", "args": ["x"]})"});
  const json task = WaitTaskEnded(submitted.at("id").get<std::string>(), 60s);
  ASSERT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  json want = json::array();
  for (int i = 0; i < 4; ++i) {
    want.push_back({{"index", i}, {"begin", i * 10}, {"end", i * 10 + 10}, {"arg", "x"}});
  }
  EXPECT_EQ(task["result"], json({{"results", want}})) << task.dump();
}

// This test verifies the result size limit of a slice (issue 19): a slice
// whose result is over 1 MiB fails for good on its first attempt (no retry
// loop), with an error that names the size and the limit, and the task ends.
TEST_F(HandlersTest, ASliceResultOverTheLimitFailsTheSliceForGood) {
  const std::string script = Script(
      "big.sh",
      "if [ \"$ORCHARD_SUBTASK_INDEX\" = 1 ]; then n=1500000; else n=10; fi\n"
      "printf '{\"pad\": \"'; head -c $n /dev/zero | tr '\\0' x; printf '\"}\\n'\n");
  const std::string config =
      Config({{"big", {{"argv", {script}}, {"max_stdout_bytes", 4 << 20}}}});
  StartServer();
  StartWorker("a", 2, {"--config", config});
  const json submitted = Submit({"--kind", "exec", "--range", "0:3", "--subtasks", "3",
                                 "--max-attempts", "3", "--params", R"({"program": "big"})"});
  const std::string id = Str(submitted, "id");
  const json task = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(task, "state"), "Error") << TaskSummary(task);
  EXPECT_NE(Str(task, "reason").find("over the limit of 1048576 bytes"), std::string::npos)
      << TaskSummary(task);
  const json slice = SubtaskAt(Subtasks(id), 1);
  EXPECT_EQ(Str(slice, "state"), "Error") << slice.dump();
  EXPECT_EQ(slice["attempt"], 1) << slice.dump();  // not retried
  EXPECT_NE(Str(slice, "error").find("result of 15000"), std::string::npos) << slice.dump();
}

// This test verifies the result size limit of a task (issue 19): 40 slices
// of 60 KB each succeed, their reduced result (2.4 MB) is over the limit, and
// the task ends Error/FAILED with a reason naming the limit, instead of
// staying Running while the worker retries the final write for ever; a
// normal task on the same worker meanwhile ends SUCCEEDED.
TEST_F(HandlersTest, AReducedResultOverTheLimitFailsTheTask) {
  const std::string script = Script(
      "wide.sh", "printf '{\"pad\": \"'; head -c 60000 /dev/zero | tr '\\0' x; printf '\"}\\n'\n");
  const std::string config = Config({{"wide", {{"argv", {script}}}}});
  StartServer();
  StartWorker("a", 4, {"--config", config});
  const json big = Submit({"--kind", "exec", "--range", "0:40", "--subtasks", "40", "--params",
                           R"({"program": "wide"})"});
  const json sum = Submit({"--kind", "sum", "--range", "0:1000", "--subtasks", "10"});
  const json task = WaitTaskEnded(Str(big, "id"), 60s);
  EXPECT_EQ(Str(task, "state"), "Error") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "FAILED") << TaskSummary(task);
  EXPECT_NE(Str(task, "reason").find("over the limit of 1048576 bytes"), std::string::npos)
      << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["succeeded"], 40) << TaskSummary(task);
  const json other = WaitTaskEnded(Str(sum, "id"), 60s);
  EXPECT_EQ(Str(other, "outcome"), "SUCCEEDED") << TaskSummary(other);
  EXPECT_EQ(other["result"]["sum"], 499500) << other.dump();
}

// This test verifies that a program that is not on the worker's allowlist is
// refused when the task is planned: the task ends in Error with a reason that
// names params.program and the program, and nothing ran.
TEST_F(HandlersTest, ExecRefusesAProgramNotOnTheAllowlist) {
  const std::string config = Config({{"ok", {{"argv", {"/bin/true"}}}}});
  StartServer();
  StartWorker("a", 2, {"--config", config});
  const json submitted = Submit({"--kind", "exec", "--range", "0:10", "--subtasks", "2",
                                 "--params", R"({"program": "/bin/sh", "args": ["-c", "id"]})"});
  const json task = WaitTaskEnded(submitted.at("id").get<std::string>(), 60s);
  EXPECT_EQ(Str(task, "state"), "Error") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "FAILED") << TaskSummary(task);
  EXPECT_NE(Str(task, "reason").find("params.program: '/bin/sh'"), std::string::npos)
      << TaskSummary(task);
}

// This test verifies that cancelling an exec task stops its programs
// promptly and kills their process groups: a child the program forked does
// not survive.
TEST_F(HandlersTest, CancelKillsTheProgramAndItsChildren) {
  const std::string script = Script("hang.sh",
                                    "sleep 120 &\n"
                                    "echo $! > \"$1/child-$ORCHARD_SUBTASK_INDEX.pid\"\n"
                                    "wait\n");
  const std::string config = Config({{"hang", {{"argv", {script}}, {"grace", "1s"}}}});
  StartServer();
  StartWorker("a", 2, {"--config", config});
  const json submitted =
      Submit({"--kind", "exec", "--range", "0:2", "--subtasks", "2", "--params",
              json{{"program", "hang"}, {"args", {dir().string()}}}.dump()});
  const std::string id = submitted.at("id").get<std::string>();
  std::vector<pid_t> children;
  WaitFor(
      [&](std::string& observed) {
        children.clear();
        for (int i = 0; i < 2; ++i) {
          std::ifstream f(dir() / ("child-" + std::to_string(i) + ".pid"));
          pid_t pid = 0;
          if (f >> pid && pid > 0) children.push_back(pid);
        }
        observed = std::to_string(children.size()) + " children started";
        return children.size() == 2;
      },
      60s, "both programs of " + id + " to start");
  const CtlResult cancel = Ctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  const json task = WaitTaskEnded(id, 30s);
  EXPECT_EQ(Str(task, "outcome"), "CANCELLED") << TaskSummary(task);
  for (pid_t child : children) {
    WaitFor(
        [&](std::string& observed) {
          std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
          std::string pid, comm, state;
          if (!(stat >> pid >> comm >> state)) return true;
          observed = "state " + state;
          return state == "Z";  // killed, waiting for init to reap it
        },
        10s, "the forked child " + std::to_string(child) + " to be killed");
  }
}

}  // namespace
}  // namespace orchard::it
