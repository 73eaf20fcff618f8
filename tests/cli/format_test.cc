// Tests of cli/format: the JSON shapes orchardctl promises (field names,
// count keys, parsed results, null times, "task" vs a subtask number) and the
// text rendering (tables, progress lines, exit codes), from hand-built protos.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/format.h"
#include "common/lifecycle/state.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::cli {
namespace {

using nlohmann::json;

// common's State and Outcome convert to the proto's by a cast.
static_assert(static_cast<int>(State::kPreparing) == v1::PREPARING);
static_assert(static_cast<int>(State::kRunning) == v1::RUNNING);
static_assert(static_cast<int>(State::kTerminating) == v1::TERMINATING);
static_assert(static_cast<int>(State::kError) == v1::ERROR);
static_assert(static_cast<int>(State::kTerminated) == v1::TERMINATED);
static_assert(static_cast<int>(Outcome::kSucceeded) == v1::SUCCEEDED);
static_assert(static_cast<int>(Outcome::kCancelled) == v1::CANCELLED);
static_assert(static_cast<int>(Outcome::kFailed) == v1::FAILED);

constexpr int64_t kT0 = 1'700'000'000'123;  // 2023-11-14T22:13:20.123Z

v1::Task RunningTask() {
  v1::Task t;
  t.set_id("t-abc");
  v1::TaskSpec* spec = t.mutable_spec();
  spec->set_kind("sum");
  spec->set_begin(0);
  spec->set_end(10000);
  spec->mutable_split()->set_subtasks(100);
  spec->set_params_json(R"({"factor": 2})");
  (*spec->mutable_labels())["team"] = "data";
  (*spec->mutable_labels())["env"] = "test";
  spec->mutable_policy()->set_max_attempts(3);
  t.set_state(v1::RUNNING);
  t.set_version(7);
  t.set_revision(19);
  t.set_generation(1);
  v1::SubtaskCounts* c = t.mutable_counts();
  c->set_total(100);
  c->set_preparing(51);
  c->set_running(4);
  c->set_terminating(0);
  c->set_error(0);
  c->set_terminated(45);
  c->set_succeeded(45);
  c->set_cancelled(0);
  c->set_items_done(4500);
  c->set_items_total(10000);
  t.set_create_time_ms(kT0);
  t.set_update_time_ms(kT0 + 5000);
  t.set_start_time_ms(kT0 + 1000);
  t.set_reconciler("w-1");
  return t;
}

// ------------------------------------------------------------------ times

TEST(FormatRfc3339Ms, UtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(kT0), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(FormatRfc3339Ms(1'704'067'199'999), "2023-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(TimeOrNull, ZeroIsNull) {
  EXPECT_TRUE(TimeOrNull(0).is_null());
  EXPECT_EQ(TimeOrNull(kT0), "2023-11-14T22:13:20.123Z");
}

// ------------------------------------------------------------------- task

// This test verifies every field `get -o json` promises for a running task:
// names, state spelling, empty outcome, lower-case count keys, parsed params
// and null result and times.
TEST(TaskToJson, RunningTaskHasEveryPromisedField) {
  json j = TaskToJson(RunningTask());
  for (const char* key :
       {"id", "kind", "state", "outcome", "reason", "subtasks", "items", "result", "range",
        "params", "labels", "version", "generation", "created", "updated", "started",
        "finished", "reconciler"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["id"], "t-abc");
  EXPECT_EQ(j["kind"], "sum");
  EXPECT_EQ(j["state"], "Running");
  EXPECT_EQ(j["outcome"], "");
  EXPECT_EQ(j["reason"], "");
  EXPECT_EQ(j["subtasks"], (json{{"total", 100},
                                 {"preparing", 51},
                                 {"running", 4},
                                 {"terminating", 0},
                                 {"error", 0},
                                 {"terminated", 45},
                                 {"succeeded", 45},
                                 {"cancelled", 0}}));
  EXPECT_EQ(j["items"], (json{{"done", 4500}, {"total", 10000}}));
  EXPECT_TRUE(j["result"].is_null());
  EXPECT_EQ(j["range"], (json{{"begin", 0}, {"end", 10000}}));
  EXPECT_EQ(j["split"], (json{{"subtasks", 100}}));
  EXPECT_EQ(j["params"], (json{{"factor", 2}}));
  EXPECT_EQ(j["labels"], (json{{"env", "test"}, {"team", "data"}}));
  EXPECT_EQ(j["policy"]["max_attempts"], 3);
  EXPECT_TRUE(j["policy"]["max_failed_subtasks"].is_null());
  EXPECT_EQ(j["version"], 7);
  EXPECT_EQ(j["revision"], 19);
  EXPECT_EQ(j["generation"], 1);
  EXPECT_EQ(j["created"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["updated"], "2023-11-14T22:13:25.123Z");
  EXPECT_EQ(j["started"], "2023-11-14T22:13:21.123Z");
  EXPECT_TRUE(j["finished"].is_null());
  EXPECT_EQ(j["reconciler"], "w-1");
}

TEST(TaskToJson, FinishedTaskHasOutcomeParsedResultAndFinishTime) {
  v1::Task t = RunningTask();
  t.set_state(v1::TERMINATED);
  t.set_outcome(v1::SUCCEEDED);
  t.set_result_json(R"({"sum": 49995000, "parts": [1, 2]})");
  t.set_finish_time_ms(kT0 + 60'000);
  json j = TaskToJson(t);
  EXPECT_EQ(j["state"], "Terminated");
  EXPECT_EQ(j["outcome"], "SUCCEEDED");
  ASSERT_TRUE(j["result"].is_object());
  EXPECT_EQ(j["result"]["sum"], 49995000);
  EXPECT_EQ(j["result"]["parts"], json::array({1, 2}));
  EXPECT_EQ(j["finished"], "2023-11-14T22:14:20.123Z");
}

TEST(TaskToJson, FailedTaskCarriesItsReason) {
  v1::Task t = RunningTask();
  t.set_state(v1::ERROR);
  t.set_outcome(v1::FAILED);
  t.set_reason("budget: 3 subtasks failed, 0 allowed");
  json j = TaskToJson(t);
  EXPECT_EQ(j["state"], "Error");
  EXPECT_EQ(j["outcome"], "FAILED");
  EXPECT_EQ(j["reason"], "budget: 3 subtasks failed, 0 allowed");
}

TEST(TaskToJson, ResultThatIsAScalarOrNotJson) {
  v1::Task t = RunningTask();
  t.set_result_json("42");
  EXPECT_EQ(TaskToJson(t)["result"], 42);
  // Not JSON: kept as the raw string rather than lost.
  t.set_result_json("{oops");
  EXPECT_EQ(TaskToJson(t)["result"], "{oops");
}

TEST(TaskToJson, EmptyParamsAreAnEmptyObject) {
  v1::Task t = RunningTask();
  t.mutable_spec()->clear_params_json();
  json j = TaskToJson(t);
  EXPECT_TRUE(j["params"].is_object());
  EXPECT_TRUE(j["params"].empty());
  EXPECT_TRUE(j["labels"].is_object());
}

TEST(TaskToJson, UnsetStateIsEmptyAndSplitByChunkAndBudgetShow) {
  v1::Task t;
  t.mutable_spec()->mutable_split()->set_chunk(64);
  t.mutable_spec()->mutable_policy()->set_max_failed_subtasks(-1);
  t.mutable_spec()->set_end(UINT64_MAX);
  json j = TaskToJson(t);
  EXPECT_EQ(j["state"], "");
  EXPECT_EQ(j["outcome"], "");
  EXPECT_EQ(j["split"], (json{{"chunk", 64}}));
  EXPECT_EQ(j["policy"]["max_failed_subtasks"], -1);
  EXPECT_EQ(j["range"]["end"].get<uint64_t>(), UINT64_MAX);
  EXPECT_TRUE(j["created"].is_null());
  EXPECT_TRUE(j["started"].is_null());
  // The JSON round-trips through text without losing the uint64.
  EXPECT_EQ(json::parse(j.dump())["range"]["end"].get<uint64_t>(), UINT64_MAX);
}

// ---------------------------------------------------------------- subtask

TEST(SubtaskToJson, HasEveryPromisedField) {
  v1::Subtask s;
  s.set_task_id("t-abc");
  s.set_index(7);
  s.set_begin(700);
  s.set_end(800);
  s.set_state(v1::TERMINATED);
  s.set_outcome(v1::SUCCEEDED);
  s.set_attempt(2);
  s.set_epoch(5);
  s.set_worker("w-9");
  s.set_progress(100);
  s.set_result_json(R"({"sum": 74950})");
  s.set_error("boom on attempt 1");
  s.set_update_time_ms(kT0);
  json j = SubtaskToJson(s);
  EXPECT_EQ(j["index"], 7);
  EXPECT_EQ(j["begin"], 700);
  EXPECT_EQ(j["end"], 800);
  EXPECT_EQ(j["state"], "Terminated");
  EXPECT_EQ(j["outcome"], "SUCCEEDED");
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["epoch"], 5);
  EXPECT_EQ(j["worker"], "w-9");
  EXPECT_EQ(j["progress"], 100);
  EXPECT_EQ(j["result"], (json{{"sum", 74950}}));
  EXPECT_EQ(j["error"], "boom on attempt 1");
  EXPECT_EQ(j["updated"], "2023-11-14T22:13:20.123Z");
  EXPECT_TRUE(j["lease_expires"].is_null());
  EXPECT_TRUE(j["not_before"].is_null());
}

TEST(SubtaskToJson, PendingSubtaskHasNullResultAndEmptyOutcome) {
  v1::Subtask s;
  s.set_index(0);
  s.set_state(v1::PREPARING);
  json j = SubtaskToJson(s);
  EXPECT_EQ(j["state"], "Preparing");
  EXPECT_EQ(j["outcome"], "");
  EXPECT_TRUE(j["result"].is_null());
  EXPECT_EQ(j["error"], "");
  EXPECT_EQ(j["worker"], "");
}

// ---------------------------------------------------------------- history

// This test verifies that a history row names the task itself with the
// string "task" and a subtask by its index as a JSON number.
TEST(HistoryToJson, ObjectIsTaskOrTheSubtaskNumber) {
  v1::HistoryEntry task_row;
  task_row.set_task_id("t-abc");
  task_row.set_subtask_index(-1);
  task_row.set_from(v1::PREPARING);
  task_row.set_to(v1::RUNNING);
  task_row.set_event("Planned");
  task_row.set_reason("100 slices");
  task_row.set_actor("w-1");
  task_row.set_time_ms(kT0);
  task_row.set_version(2);
  json t = HistoryToJson(task_row);
  EXPECT_EQ(t["object"], "task");
  EXPECT_TRUE(t["object"].is_string());
  EXPECT_EQ(t["from"], "Preparing");
  EXPECT_EQ(t["to"], "Running");
  EXPECT_EQ(t["event"], "Planned");
  EXPECT_EQ(t["reason"], "100 slices");
  EXPECT_EQ(t["actor"], "w-1");
  EXPECT_EQ(t["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(t["version"], 2);
  EXPECT_EQ(t["attempt"], 0);

  v1::HistoryEntry sub_row;
  sub_row.set_subtask_index(3);
  sub_row.set_from(v1::RUNNING);
  sub_row.set_to(v1::PREPARING);
  sub_row.set_event("Failed");
  sub_row.set_attempt(1);
  json s = HistoryToJson(sub_row);
  EXPECT_TRUE(s["object"].is_number_integer());
  EXPECT_EQ(s["object"], 3);
  EXPECT_EQ(s["attempt"], 1);

  v1::HistoryEntry zero_row;
  zero_row.set_subtask_index(0);
  EXPECT_EQ(HistoryToJson(zero_row)["object"], 0);
}

TEST(HistoryToJson, CreationRowHasAnEmptyFromState) {
  v1::HistoryEntry e;
  e.set_subtask_index(-1);
  e.set_to(v1::PREPARING);
  e.set_event("Submitted");
  json j = HistoryToJson(e);
  EXPECT_EQ(j["from"], "");
  EXPECT_EQ(j["to"], "Preparing");
}

// ---------------------------------------------------------------- workers

TEST(WorkerToJson, HasEveryPromisedField) {
  v1::WorkerInfo w;
  w.set_id("w-1");
  w.set_name("node-a");
  w.add_kinds("sum");
  w.add_kinds("sleep");
  w.set_slots(8);
  w.set_slots_in_use(3);
  w.set_alive(true);
  w.set_last_heartbeat_ms(kT0);
  json j = WorkerToJson(w);
  EXPECT_EQ(j["id"], "w-1");
  EXPECT_EQ(j["name"], "node-a");
  EXPECT_EQ(j["kinds"], json::array({"sum", "sleep"}));
  EXPECT_EQ(j["slots"], 8);
  EXPECT_EQ(j["slots_in_use"], 3);
  EXPECT_EQ(j["alive"], true);
  EXPECT_EQ(j["draining"], false);
  EXPECT_EQ(j["last_heartbeat"], "2023-11-14T22:13:20.123Z");
  EXPECT_TRUE(WorkerToJson(v1::WorkerInfo())["kinds"].is_array());
  EXPECT_TRUE(WorkerToJson(v1::WorkerInfo())["last_heartbeat"].is_null());
}

// ------------------------------------------------------------------- text

TEST(FormatTable, AlignsColumnsOnTheWidestCell) {
  std::string out = FormatTable({"ID", "KIND", "STATE"},
                                {{"t-1", "sum", "Running"}, {"t-22222", "x", "Error"}});
  EXPECT_EQ(out,
            "ID       KIND  STATE\n"
            "t-1      sum   Running\n"
            "t-22222  x     Error\n");
}

TEST(FormatTable, PadsShortRowsAndTrimsTrailingBlanks) {
  std::string out = FormatTable({"A", "B"}, {{"1"}, {"22", ""}});
  EXPECT_EQ(out,
            "A   B\n"
            "1\n"
            "22\n");
  EXPECT_EQ(FormatTable({"A"}, {}), "A\n");
  EXPECT_EQ(FormatTable({}, {{"k:", "v"}}), "k:  v\n");
}

TEST(ProgressText, SucceededOfTotalWithPercent) {
  EXPECT_EQ(ProgressText(45, 100), "45/100 (45%)");
  EXPECT_EQ(ProgressText(0, 0), "0/0 (0%)");
  EXPECT_EQ(ProgressText(1, 3), "1/3 (33%)");
  EXPECT_EQ(ProgressText(100, 100), "100/100 (100%)");
  EXPECT_EQ(ProgressText(UINT64_MAX, UINT64_MAX),
            "18446744073709551615/18446744073709551615 (100%)");
}

TEST(TaskTable, ListsIdKindStateProgressAge) {
  v1::Task done = RunningTask();
  done.set_id("t-done");
  done.set_state(v1::TERMINATED);
  done.set_outcome(v1::SUCCEEDED);
  std::string out = TaskTable({RunningTask(), done}, kT0 + 90'000);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    lines.push_back(out.substr(pos, nl - pos));
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0].rfind("ID", 0), 0u);
  for (const char* col : {"KIND", "STATE", "PROGRESS", "AGE"}) {
    EXPECT_NE(lines[0].find(col), std::string::npos) << col;
  }
  EXPECT_NE(lines[1].find("45/100 (45%)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("1m30s"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("Terminated/SUCCEEDED"), std::string::npos) << lines[2];
  // Aligned: the KIND column starts at the same offset on every line.
  EXPECT_EQ(lines[1].find("sum"), lines[0].find("KIND"));
  EXPECT_EQ(lines[2].find("sum"), lines[0].find("KIND"));
}

TEST(TaskText, ShowsStateProgressAndResult) {
  v1::Task t = RunningTask();
  t.set_result_json(R"({"sum": 1})");
  std::string out = TaskText(t, kT0 + 10'000);
  for (const char* part : {"t-abc", "sum", "Running", "45/100 (45%)", "items 4500/10000",
                           "[0, 10000)", "100 subtasks", R"({"factor":2})", "env=test, team=data",
                           "2023-11-14T22:13:20.123Z (10.0s ago)", R"({"sum":1})"}) {
    EXPECT_NE(out.find(part), std::string::npos) << part << "\n" << out;
  }
}

// This test verifies that a failed or cancelled task's result is marked
// partial in the text and the JSON, and a succeeded one's is not.
TEST(TaskText, AFailedTasksResultIsPartial) {
  v1::Task t = RunningTask();
  t.set_result_json(R"({"sum": 1})");
  t.set_state(v1::ERROR);
  t.set_outcome(v1::FAILED);
  EXPECT_NE(TaskText(t, kT0).find("Result (partial):"), std::string::npos) << TaskText(t, kT0);
  EXPECT_EQ(TaskToJson(t)["result_partial"], true);
  t.set_state(v1::TERMINATED);
  t.set_outcome(v1::SUCCEEDED);
  EXPECT_EQ(TaskText(t, kT0).find("partial"), std::string::npos) << TaskText(t, kT0);
  EXPECT_EQ(TaskToJson(t)["result_partial"], false);
  t.clear_result_json();
  t.set_outcome(v1::FAILED);
  EXPECT_EQ(TaskToJson(t)["result_partial"], false);  // no result at all
}

// This test verifies that a split asking for more subtasks than the range
// has items says how many were made, and that counts are singular for one.
TEST(TaskText, SplitSaysHowManySubtasksWereMade) {
  v1::Task t = RunningTask();
  t.mutable_spec()->set_end(10);
  t.mutable_counts()->set_total(10);
  std::string out = TaskText(t, kT0);
  EXPECT_NE(out.find("split: 100 subtasks asked, 10 made"), std::string::npos) << out;
  t.mutable_spec()->mutable_split()->set_subtasks(1);
  t.mutable_counts()->set_total(1);
  out = TaskText(t, kT0);
  EXPECT_NE(out.find("split: 1 subtask\n"), std::string::npos) << out;
}

// This test verifies that watch's line says why a waiting task waits.
TEST(ProgressLine, AWaitingTaskShowsWhy) {
  v1::Task t;
  t.set_state(v1::PREPARING);
  t.set_reason("no live worker runs kind 'summ'");
  EXPECT_NE(ProgressLine(t, ProgressView{}, 0).find("(no live worker runs kind 'summ')"),
            std::string::npos);
  t.set_state(v1::RUNNING);
  t.set_reason("planned 1 subtask");
  EXPECT_EQ(ProgressLine(t, ProgressView{}, 0).find("planned"), std::string::npos);
}

TEST(HistoryText, ShowsTimeObjectTransitionEventReasonActor) {
  v1::HistoryEntry a;
  a.set_subtask_index(-1);
  a.set_to(v1::PREPARING);
  a.set_event("Submitted");
  a.set_actor("client");
  a.set_time_ms(kT0);
  v1::HistoryEntry b;
  b.set_subtask_index(3);
  b.set_from(v1::RUNNING);
  b.set_to(v1::PREPARING);
  b.set_event("LeaseExpired");
  b.set_reason("lease expired at 12:00");
  b.set_actor("server");
  b.set_time_ms(kT0 + 1);
  std::string out = HistoryText({a, b});
  for (const char* part : {"TIME", "OBJECT", "2023-11-14T22:13:20.123Z", "task", "(new) -> Preparing",
                           "subtask 3", "Running -> Preparing", "LeaseExpired",
                           "lease expired at 12:00", "server"}) {
    EXPECT_NE(out.find(part), std::string::npos) << part << "\n" << out;
  }
  EXPECT_LT(out.find("Submitted"), out.find("LeaseExpired"));  // oldest first, as given
}

// --------------------------------------------------------------- progress

TEST(ProgressLine, BarCountsThroughputAndEta) {
  v1::Task t = RunningTask();
  std::string line = ProgressLine(t, ProgressView{120.0, 45.0}, 20);
  EXPECT_EQ(line.rfind("Running [#########...........]", 0), 0u) << line;
  for (const char* part : {"45/100 (45%) slices", "items 4500/10000", "preparing 51", "running 4",
                           "terminating 0", "error 0", "120 items/s", "ETA 45.0s"}) {
    EXPECT_NE(line.find(part), std::string::npos) << part << "\n" << line;
  }
}

TEST(ProgressLine, PlainLineHasNoBarAndNoUnknownRate) {
  v1::Task t = RunningTask();
  t.mutable_counts()->set_items_total(0);
  t.mutable_counts()->set_items_done(0);
  std::string line = ProgressLine(t, ProgressView{}, 0);
  EXPECT_EQ(line.find('['), std::string::npos) << line;
  EXPECT_EQ(line.find("items"), std::string::npos) << line;
  EXPECT_EQ(line.find("ETA"), std::string::npos) << line;
  EXPECT_EQ(line.find("/s"), std::string::npos) << line;
  EXPECT_NE(line.find("45/100 (45%) slices"), std::string::npos) << line;
  EXPECT_NE(ProgressLine(t, ProgressView{2.5, std::nullopt}, 0).find("2.50 slices/s"),
            std::string::npos);
}

TEST(ProgressLine, FullAndEmptyBars) {
  v1::Task t = RunningTask();
  t.mutable_counts()->set_succeeded(100);
  EXPECT_NE(ProgressLine(t, {}, 4).find("[####]"), std::string::npos);
  t.mutable_counts()->set_succeeded(0);
  EXPECT_NE(ProgressLine(t, {}, 4).find("[....]"), std::string::npos);
  t.mutable_counts()->set_total(0);
  EXPECT_NE(ProgressLine(t, {}, 4).find("[....]"), std::string::npos);
}

TEST(RateEstimator, MeasuresFromTheFirstObservationAfterOneSecond) {
  RateEstimator r;
  EXPECT_FALSE(r.PerSecond().has_value());
  r.Observe(10'000, 100);
  r.Observe(10'500, 150);
  EXPECT_FALSE(r.PerSecond().has_value());  // under a second: too noisy
  r.Observe(12'000, 300);
  ASSERT_TRUE(r.PerSecond().has_value());
  EXPECT_DOUBLE_EQ(*r.PerSecond(), 100.0);
  EXPECT_DOUBLE_EQ(*r.EtaSeconds(500), 5.0);
}

TEST(RateEstimator, NoProgressMeansNoRateAndCountsGoingBackRestart) {
  RateEstimator r;
  r.Observe(0, 50);
  r.Observe(5'000, 50);
  EXPECT_FALSE(r.PerSecond().has_value());
  EXPECT_FALSE(r.EtaSeconds(10).has_value());
  r.Observe(6'000, 10);  // a retry reset the counts
  r.Observe(8'000, 30);
  ASSERT_TRUE(r.PerSecond().has_value());
  EXPECT_DOUBLE_EQ(*r.PerSecond(), 10.0);
}

TEST(FinalLine, StateOutcomeAndReason) {
  v1::Task t = RunningTask();
  t.set_state(v1::TERMINATED);
  t.set_outcome(v1::SUCCEEDED);
  EXPECT_EQ(FinalLine(t), "t-abc Terminated SUCCEEDED");
  t.set_state(v1::ERROR);
  t.set_outcome(v1::FAILED);
  t.set_reason("deadline: 30s passed");
  EXPECT_EQ(FinalLine(t), "t-abc Error FAILED: deadline: 30s passed");
}

// This test verifies watch's exit codes: 0 SUCCEEDED, 3 FAILED, 4 CANCELLED,
// and no code while the task can still change.
TEST(ExitCodeFor, TellsTheOutcome) {
  v1::Task t;
  for (v1::State s : {v1::STATE_UNSPECIFIED, v1::PREPARING, v1::RUNNING, v1::TERMINATING}) {
    t.set_state(s);
    EXPECT_FALSE(ExitCodeFor(t).has_value()) << s;
  }
  t.set_state(v1::TERMINATED);
  t.set_outcome(v1::SUCCEEDED);
  EXPECT_EQ(ExitCodeFor(t), 0);
  t.set_outcome(v1::CANCELLED);
  EXPECT_EQ(ExitCodeFor(t), 4);
  t.set_state(v1::ERROR);
  t.set_outcome(v1::FAILED);
  EXPECT_EQ(ExitCodeFor(t), 3);
  t.set_outcome(v1::OUTCOME_UNSPECIFIED);
  EXPECT_EQ(ExitCodeFor(t), 3);
}

}  // namespace
}  // namespace orchard::cli
