// A newcomer's first hour (issue 16), on real processes: a task of a kind no
// worker runs still ends by its deadline or a cancel, every screen says why
// it waits, submit warns about the likely typo, and a reused request id with
// another spec is refused.
#include <string>
#include <vector>

#include "harness.h"

namespace orchard::it {
namespace {

class FirstHourTest : public Cluster {};

// The task's own history rows as "event by actor".
std::vector<std::string> TaskSteps(const json& history) {
  std::vector<std::string> out;
  for (const auto& r : HistoryOf(history, "task")) {
    out.push_back(Str(r, "event") + " by " + Str(r, "actor"));
  }
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// This test verifies the worst first-hour defect: a typo of a kind with a
// deadline. submit succeeds but warns on stderr (kinds offered, the nearest
// one) with a clean JSON stdout; get says why the task waits; and the task
// ends Error/FAILED by its deadline though no worker runs the kind, ended by
// the server (actor "server" in its history).
TEST_F(FirstHourTest, ATaskOfAKindNoWorkerRunsEndsByItsDeadline) {
  StartServer();
  StartWorker("a", 2);
  WaitWorkerId("a");

  const CtlResult submit = Ctl({"submit", "--kind", "summ", "--range", "0:10", "--subtasks", "1",
                                "--deadline", "3s", "-o", "json"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const json submitted = json::parse(submit.out);  // stdout is JSON only
  const std::string id = Str(submitted, "id");
  EXPECT_TRUE(Contains(submit.err, "warning: no live worker runs kind 'summ'")) << submit.err;
  EXPECT_TRUE(Contains(submit.err, "kinds offered now: ")) << submit.err;
  EXPECT_TRUE(Contains(submit.err, "did you mean 'sum'?")) << submit.err;

  const json waiting = GetTask(id);
  if (Str(waiting, "state") == "Preparing") {
    EXPECT_TRUE(Contains(Str(waiting, "reason"), "no live worker runs kind 'summ'; kinds offered now:"))
        << TaskSummary(waiting);
  }
  const json ended = WaitTaskEnded(id, 20s);
  EXPECT_EQ(Str(ended, "state"), "Error") << TaskSummary(ended);
  EXPECT_EQ(Str(ended, "outcome"), "FAILED") << TaskSummary(ended);
  EXPECT_TRUE(Contains(Str(ended, "reason"), "deadline")) << TaskSummary(ended);
  const std::vector<std::string> steps = TaskSteps(History(id));
  ASSERT_GE(steps.size(), 2u) << json(steps).dump();
  EXPECT_EQ(steps[steps.size() - 2], "DeadlineExceeded by server") << json(steps).dump();
  EXPECT_EQ(steps.back(), "FinalizedFailed by server") << json(steps).dump();
}

// This test verifies that cancelling a task that no worker can reconcile
// ends it Terminated/CANCELLED within seconds (it stayed Terminating for
// ever), and that `watch` shows why it waits before that.
TEST_F(FirstHourTest, ACancelEndsATaskThatNoWorkerRuns) {
  StartServer();
  const json submitted = Submit({"--kind", "summ", "--range", "0:10", "--subtasks", "1"});
  const std::string id = Str(submitted, "id");
  // watch, not on a terminal: one plain line per change, ending at the end.
  const json waiting = GetTask(id);
  EXPECT_TRUE(Contains(Str(waiting, "reason"), "no live worker runs kind 'summ'; no worker is live"))
      << TaskSummary(waiting);
  const CtlResult cancel = Ctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  const json ended = WaitTaskEnded(id, 15s);
  EXPECT_EQ(Str(ended, "state"), "Terminated") << TaskSummary(ended);
  EXPECT_EQ(Str(ended, "outcome"), "CANCELLED") << TaskSummary(ended);
  EXPECT_EQ(TaskSteps(History(id)).back(), "Finalized by server");
  const CtlResult watch = Ctl({"watch", id});
  EXPECT_EQ(watch.exit_code, 4) << watch.out << watch.err;  // ended CANCELLED
}

// This test verifies that watch prints why a task waits while it waits, and
// exits 3 when the server ends it by its deadline.
TEST_F(FirstHourTest, WatchShowsWhyATaskWaitsUntilItEnds) {
  StartServer();
  const json submitted =
      Submit({"--kind", "summ", "--range", "0:10", "--subtasks", "1", "--deadline", "2s"});
  const CtlResult watch = Ctl({"watch", Str(submitted, "id")}, 30s);
  EXPECT_EQ(watch.exit_code, 3) << watch.out << watch.err;  // FAILED
  EXPECT_TRUE(Contains(watch.out, "no live worker runs kind 'summ'")) << watch.out;
  EXPECT_TRUE(Contains(watch.out, "deadline")) << watch.out;
}

// This test verifies idempotent submit that cannot hide a mistake: the same
// request id and spec returns the first task; another spec is refused with
// ALREADY_EXISTS naming the field, and nothing new is stored.
TEST_F(FirstHourTest, AReusedRequestIdWithAnotherSpecIsRefused) {
  StartServer();
  const std::vector<std::string> base = {"submit", "--kind", "noop", "--range", "0:10",
                                         "--subtasks", "2", "--request-id", "nightly-1"};
  const json first = Submit({base.begin() + 1, base.end()});
  const json again = Submit({base.begin() + 1, base.end()});
  EXPECT_EQ(Str(again, "id"), Str(first, "id"));

  std::vector<std::string> other = base;
  other[6] = "3";  // --subtasks 3
  const CtlResult refused = Ctl(other);
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_TRUE(Contains(refused.err, "split.subtasks differs")) << refused.err;
  EXPECT_TRUE(Contains(refused.err, Str(first, "id"))) << refused.err;
  EXPECT_EQ(ListTasks().size(), 1u);
}

// This test verifies orchardctl as people expect it: submit --wait ends
// with watch's exit code, watch -o json prints one JSON object per line
// (the last one the ended task), --state takes a comma list, and a misspelt
// subcommand gets the nearest one.
TEST_F(FirstHourTest, OrchardctlWaitsStreamsJsonTakesListsAndSuggests) {
  StartServer();
  StartWorker("a", 2);
  WaitWorkerId("a");
  const CtlResult waited =
      Ctl({"submit", "--kind", "sum", "--range", "0:100", "--subtasks", "4", "--wait"});
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  EXPECT_TRUE(Contains(waited.out, "Terminated SUCCEEDED")) << waited.out;
  // History and subtasks name the worker (by its name, the id beside it).
  const std::string done_id = Str(ListTasks()[0], "id");
  int named = 0;
  for (const auto& row : History(done_id)) {
    if (Str(row, "actor").rfind("w-", 0) == 0) {
      EXPECT_EQ(Str(row, "actor_name"), "a") << row.dump();
      ++named;
    }
  }
  EXPECT_GT(named, 0);
  EXPECT_TRUE(Contains(Ctl({"history", done_id}).out, "a (w-"));
  const CtlResult failed = Ctl({"submit", "--kind", "flaky", "--range", "0:10", "--subtasks", "2",
                                "--params", R"({"fail": {"1": -1}})", "--max-attempts", "1",
                                "--wait", "-o", "json"});
  EXPECT_EQ(failed.exit_code, 3) << failed.out << failed.err;
  // NDJSON: every line a JSON object, the last one the ended task.
  std::vector<json> lines;
  size_t start = 0;
  while (start < failed.out.size()) {
    size_t end = failed.out.find('\n', start);
    if (end == std::string::npos) end = failed.out.size();
    if (end > start) lines.push_back(json::parse(failed.out.substr(start, end - start)));
    start = end + 1;
  }
  ASSERT_FALSE(lines.empty()) << failed.out;
  EXPECT_EQ(Str(lines.back(), "state"), "Error") << failed.out;
  EXPECT_EQ(lines.back()["result_partial"], true) << failed.out;
  const std::string failed_id = Str(lines.back(), "id");
  const CtlResult watch = Ctl({"watch", failed_id, "-o", "json"});
  EXPECT_EQ(watch.exit_code, 3);
  EXPECT_EQ(Str(json::parse(watch.out), "state"), "Error") << watch.out;

  const json both = CtlJson({"list", "--state", "Terminated,Error"});
  EXPECT_EQ(both.size(), 2u) << both.dump();
  const json errors = CtlJson({"list", "--state", "Error"});
  EXPECT_EQ(errors.size(), 1u) << errors.dump();

  const CtlResult typo = Ctl({"sbumit"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_TRUE(Contains(typo.err, "Did you mean 'submit'?")) << typo.err;
}

}  // namespace
}  // namespace orchard::it
