// End-to-end lifecycle of a task on a real cluster: a clean run, a run whose
// subtask succeeds after retries, and a run that fails on its failure budget.
// Scenarios 1-3 of issue 2.
#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

namespace orchard::it {
namespace {

// The sum of the item indices 0..999999.
constexpr uint64_t kSumOfMillion = 499999500000ULL;

class TaskLifecycleTest : public Cluster {};

// The states a history walks through, from the rows' from/to fields: the
// first row's `from` (when it has one) and then every row's `to`.
std::vector<std::string> StatesWalked(const std::vector<json>& rows) {
  std::vector<std::string> states;
  for (const auto& r : rows) {
    const std::string from = Str(r, "from");
    if (states.empty() && !from.empty()) states.push_back(from);
    states.push_back(Str(r, "to"));
  }
  return states;
}

// Each row starts where the one before it ended.
void ExpectContiguous(const std::vector<json>& rows) {
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_EQ(Str(rows[i], "from"), Str(rows[i - 1], "to"))
        << "history row " << i << " does not start where row " << i - 1
        << " ended: " << rows[i - 1].dump() << " then " << rows[i].dump();
  }
}

// This test verifies that a `sum` task over a million items, split in 100
// subtasks and run by two workers, ends Terminated/SUCCEEDED with the exact
// sum, and that the task's own history walks Preparing -> Running ->
// Terminating -> Terminated.
TEST_F(TaskLifecycleTest, SumOverTwoWorkersSucceedsWithExactResultAndFullHistory) {
  StartServer();
  StartWorker("a", 4);
  StartWorker("b", 4);

  const json submitted =
      Submit({"--kind", "sum", "--range", "0:1000000", "--subtasks", "100"});
  const std::string id = submitted.at("id").get<std::string>();
  ASSERT_FALSE(id.empty());

  const json task = WaitTaskEnded(id);
  EXPECT_EQ(Str(task, "state"), "Terminated") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  EXPECT_EQ(task["result"], (json{{"sum", kSumOfMillion}})) << task.dump();
  EXPECT_EQ(task["subtasks"]["total"], 100) << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["succeeded"], 100) << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["terminated"], 100) << TaskSummary(task);
  EXPECT_EQ(task["items"]["done"], 1000000) << task.dump();
  EXPECT_EQ(task["items"]["total"], 1000000) << task.dump();

  const json history = History(id);
  const auto rows = HistoryOf(history, "task");
  EXPECT_EQ(StatesWalked(rows),
            (std::vector<std::string>{"Preparing", "Running", "Terminating", "Terminated"}))
      << json(rows).dump(1);
  ExpectContiguous(rows);
  // The events that moved it, leaving out a creation row (one with no `from`).
  std::vector<std::string> events;
  for (const auto& r : rows) {
    if (!Str(r, "from").empty()) events.push_back(Str(r, "event"));
  }
  EXPECT_EQ(events, (std::vector<std::string>{"Planned", "AllSucceeded", "Finalized"}))
      << json(rows).dump(1);

  // Every subtask committed exactly one success, and the slices tile the range.
  const json subtasks = Subtasks(id);
  ASSERT_EQ(subtasks.size(), 100u);
  uint64_t next_begin = 0;
  for (const auto& s : subtasks) {
    EXPECT_EQ(Str(s, "state"), "Terminated") << s.dump();
    EXPECT_EQ(Str(s, "outcome"), "SUCCEEDED") << s.dump();
    EXPECT_EQ(s["begin"], next_begin) << s.dump();
    next_begin = s["end"].get<uint64_t>();
  }
  EXPECT_EQ(next_begin, 1000000u);
}

// This test verifies that a subtask failing its first two attempts, with
// three attempts allowed, is retried after a backoff and the task still
// succeeds with the exact sum; the retries show in the subtask's attempt
// counter and history.
TEST_F(TaskLifecycleTest, FlakySubtaskIsRetriedWithBackoffAndTaskSucceeds) {
  StartServer();
  StartWorker("a", 4);

  const json submitted = Submit({"--kind", "flaky", "--range", "0:1000", "--subtasks", "10",
                                 "--params", R"({"fail": {"3": 2}})", "--max-attempts", "3",
                                 "--backoff", "100ms"});
  const std::string id = submitted.at("id").get<std::string>();

  const json task = WaitTaskEnded(id);
  EXPECT_EQ(Str(task, "state"), "Terminated") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "SUCCEEDED") << TaskSummary(task);
  EXPECT_EQ(task["result"], (json{{"sum", 499500}})) << task.dump();

  const json sub3 = SubtaskAt(Subtasks(id), 3);
  EXPECT_EQ(sub3["attempt"], 3) << sub3.dump();
  EXPECT_EQ(Str(sub3, "state"), "Terminated") << sub3.dump();
  EXPECT_EQ(Str(sub3, "outcome"), "SUCCEEDED") << sub3.dump();

  const auto rows = HistoryOf(History(id), 3);
  std::vector<json> outcomes;  // the Failed and Succeeded rows, in order
  int leased = 0;
  for (const auto& r : rows) {
    const std::string e = Str(r, "event");
    if (e == "Failed" || e == "Succeeded") outcomes.push_back(r);
    if (e == "Leased") ++leased;
  }
  EXPECT_EQ(Events(outcomes), (std::vector<std::string>{"Failed", "Failed", "Succeeded"}))
      << json(rows).dump(1);
  EXPECT_EQ(leased, 3) << json(rows).dump(1);
  const std::regex retry_in(R"(retry in \d+ ?ms)", std::regex::icase);
  for (const auto& r : outcomes) {
    if (Str(r, "event") != "Failed") continue;
    EXPECT_EQ(Str(r, "to"), "Preparing") << r.dump();
    EXPECT_TRUE(std::regex_search(Str(r, "reason"), retry_in))
        << "a Failed row should say when the retry comes: " << r.dump();
  }
  if (outcomes.size() == 3) {
    EXPECT_EQ(outcomes[0]["attempt"], 1) << outcomes[0].dump();
    EXPECT_EQ(outcomes[1]["attempt"], 2) << outcomes[1].dump();
    EXPECT_EQ(outcomes[2]["attempt"], 3) << outcomes[2].dump();
  }
}

// This test verifies that a subtask failing every attempt, with no failed
// subtask tolerated, fails the task: Error/FAILED with a reason naming the
// subtask, and nothing left running.
TEST_F(TaskLifecycleTest, SubtaskOutOfAttemptsExceedsBudgetAndFailsTask) {
  StartServer();
  StartWorker("a", 4);

  const json submitted = Submit({"--kind", "flaky", "--range", "0:1000", "--subtasks", "10",
                                 "--params", R"({"fail": {"3": -1}})", "--max-attempts", "2",
                                 "--max-failed-subtasks", "0", "--backoff", "100ms"});
  const std::string id = submitted.at("id").get<std::string>();

  const json task = WaitTaskEnded(id);
  EXPECT_EQ(Str(task, "state"), "Error") << TaskSummary(task);
  EXPECT_EQ(Str(task, "outcome"), "FAILED") << TaskSummary(task);
  const std::regex names_subtask_3(R"(subtask\D{0,12}\b3\b)", std::regex::icase);
  EXPECT_TRUE(std::regex_search(Str(task, "reason"), names_subtask_3))
      << "the reason should name subtask 3: " << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["running"], 0) << TaskSummary(task);
  EXPECT_EQ(task["subtasks"]["terminating"], 0) << TaskSummary(task);
  EXPECT_GE(task["subtasks"]["error"].get<int64_t>(), 1) << TaskSummary(task);

  const json subtasks = Subtasks(id);
  for (const auto& s : subtasks) {
    EXPECT_NE(Str(s, "state"), "Running") << s.dump();
    EXPECT_NE(Str(s, "state"), "Terminating") << s.dump();
  }
  const json sub3 = SubtaskAt(subtasks, 3);
  EXPECT_EQ(Str(sub3, "state"), "Error") << sub3.dump();
  EXPECT_EQ(sub3["attempt"], 2) << sub3.dump();
  EXPECT_FALSE(Str(sub3, "error").empty()) << "the last error is kept: " << sub3.dump();

  // The task failed through its budget: Running -> Terminating -> Error.
  const auto task_events = Events(HistoryOf(History(id), "task"));
  EXPECT_NE(std::find(task_events.begin(), task_events.end(), "BudgetExceeded"),
            task_events.end())
      << json(task_events).dump();
  ASSERT_FALSE(task_events.empty());
  EXPECT_EQ(task_events.back(), "FinalizedFailed") << json(task_events).dump();
}

}  // namespace
}  // namespace orchard::it
