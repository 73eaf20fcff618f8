// Tests of the invariant checker (server/store/invariants.h): a database built
// through the real SqliteStore passes; each corruption, made with
// ExecForTesting on the live store, makes exactly the check that guards it
// fail. Single-threaded; time is explicit.
#include "tests/testing/temp_dir.h"
#include "server/store/invariants.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/lifecycle/task.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/clock.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::lifecycle::TaskEvent;
using orchard::store::CheckDatabase;
using orchard::store::InvariantReport;
using orchard::store::TaskTransition;

using orchard::testing::kNow;
using orchard::testing::Ok;

// The sum of [b, e) as the sum handler reports it.
std::string SumJson(uint64_t b, uint64_t e) {
  return "{\"sum\":" + std::to_string((b + e - 1) * (e - b) / 2) + "}";
}

class Invariants : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("invariants");
    store_ = Ok(orchard::store::SqliteStore::Open({.path = path()}));
    worker_ = Ok(store_->RegisterWorker("node", {"sum", "mystery"}, 64, kNow));
    done_ = Finished("sum", /*fail_index=*/-1);
    retried_ = Finished("sum", /*fail_index=*/3);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string path() const { return (dir_ / "orchard.db").string(); }

  pb::Task Transition(const std::string& id, TaskEvent e, std::string result = "",
                      bool plan = false) {
    TaskTransition t;
    t.task_id = id;
    t.actor = "client";
    t.event = e;
    t.result_json = std::move(result);
    if (plan) t.plan.emplace().set_uniform(true);
    return Ok(store_->TransitionTask(t, kNow));
  }

  // Leases every runnable subtask and reports each one: the sum of its
  // slice, or a permanent failure for subtask `fail_index`.
  void RunAll(int64_t fail_index) {
    auto acquired = Ok(store_->Acquire(worker_, 1000, 0, kNow, 10'000));
    std::vector<pb::SubtaskReport> reports;
    for (const pb::SubtaskLease& l : acquired.subtasks) {
      reports.push_back(l.lease().subtask_index() == fail_index
                            ? orchard::testing::FailedPermanently(l.lease(), "bad")
                            : orchard::testing::Succeeded(l.lease(), SumJson(l.begin(), l.end())));
    }
    for (const absl::Status& s : Ok(store_->Report(worker_, reports, kNow))) Ok(s);
  }

  // A `kind` task over [0, 100) in 10 slices that ends SUCCEEDED with the
  // right result; with fail_index >= 0 that subtask fails first, the task
  // fails on its budget and is retried once.
  std::string Finished(const std::string& kind, int64_t fail_index) {
    pb::TaskSpec spec = orchard::testing::GoodSpec();  // [0, 100) in 10
    spec.set_kind(kind);
    const std::string id = Ok(store_->CreateTask(spec, kNow)).task.id();
    Transition(id, TaskEvent::kPlanned, "", /*plan=*/true);
    RunAll(fail_index);
    if (fail_index >= 0) {
      uint64_t partial = 0;
      for (uint64_t i = 0; i < 10; ++i) {
        if (static_cast<int64_t>(i) != fail_index) partial += (20 * i + 9) * 10 / 2;
      }
      Transition(id, TaskEvent::kBudgetExceeded);
      Transition(id, TaskEvent::kFinalizedFailed, "{\"sum\":" + std::to_string(partial) + "}");
      Transition(id, TaskEvent::kRetryRequested);
      Transition(id, TaskEvent::kPlanned);
      RunAll(-1);
    }
    Transition(id, TaskEvent::kAllSucceeded);
    Transition(id, TaskEvent::kFinalized, SumJson(0, 100));
    return id;
  }

  InvariantReport Check() { return Ok(CheckDatabase(path())); }
  void Exec(const std::string& sql) { Ok(store_->ExecForTesting(sql)); }

  // Asserts that the report fails with a violation of `check` on `object`
  // whose message contains `words`.
  void ExpectViolation(const InvariantReport& r, const std::string& check,
                       const std::string& object, const std::string& words) {
    EXPECT_FALSE(r.ok());
    for (const auto& v : r.violations) {
      if (v.check == check && v.object == object &&
          v.message.find(words) != std::string::npos) {
        return;
      }
    }
    ADD_FAILURE() << "no " << check << " violation on " << object << " saying '" << words
                  << "' in:\n"
                  << r.ToText();
  }

  std::filesystem::path dir_;
  std::unique_ptr<orchard::store::SqliteStore> store_;
  std::string worker_, done_, retried_;
};

// This test verifies that a database written only through the store passes,
// with both finished results folded and compared.
TEST_F(Invariants, StoreWrittenDatabasePasses) {
  InvariantReport r = Check();
  EXPECT_TRUE(r.ok()) << r.ToText();
  EXPECT_EQ(r.tasks, 2u);
  EXPECT_EQ(r.subtasks, 20u);
  EXPECT_EQ(r.results_checked, 2u);
  EXPECT_TRUE(r.skipped.empty());
  EXPECT_NE(r.ToJson().find("\"ok\": true"), std::string::npos);
}

TEST_F(Invariants, IllegalSubtaskEdgeFails) {
  Exec("UPDATE history SET event = 'Succeeded' WHERE task_id = '" + done_ +
       "' AND subtask_index = 2 AND event = 'Leased'");
  ExpectViolation(Check(), "history", done_ + "/2", "no such edge");
}

TEST_F(Invariants, EdgeLeadingElsewhereFails) {
  Exec("UPDATE history SET to_state = 4 WHERE task_id = '" + done_ +
       "' AND subtask_index = 2 AND event = 'Leased'");
  ExpectViolation(Check(), "history", done_ + "/2", "the table takes Leased from Preparing to "
                                                    "Running");
}

TEST_F(Invariants, GapInSubtaskPathFails) {
  Exec("DELETE FROM history WHERE task_id = '" + done_ +
       "' AND subtask_index = 4 AND event = 'Leased'");
  ExpectViolation(Check(), "history", done_ + "/4", "starts from Running");
}

TEST_F(Invariants, MissingCreationRowFails) {
  Exec("DELETE FROM history WHERE task_id = '" + done_ + "' AND event = 'Created'");
  ExpectViolation(Check(), "history", done_, "creation row");
}

TEST_F(Invariants, IllegalTaskEdgeFails) {
  Exec("UPDATE history SET event = 'Finalized' WHERE task_id = '" + done_ +
       "' AND subtask_index = -1 AND event = 'Planned'");
  ExpectViolation(Check(), "history", done_, "no such edge");
}

TEST_F(Invariants, TaskVersionGapFails) {
  Exec("UPDATE history SET version = version + 5 WHERE task_id = '" + done_ +
       "' AND subtask_index = -1 AND event = 'Finalized'");
  ExpectViolation(Check(), "history", done_, "version");
}

TEST_F(Invariants, StoredStateDifferentFromHistoryFails) {
  Exec("UPDATE tasks SET state = 4, outcome = 3 WHERE id = '" + done_ + "'");
  ExpectViolation(Check(), "state", done_, "history ends in Terminated");
}

TEST_F(Invariants, AttemptNotCountedByLeasesFails) {
  Exec("UPDATE history SET attempt = 7 WHERE task_id = '" + retried_ +
       "' AND subtask_index = 3 AND event = 'Leased'");
  ExpectViolation(Check(), "history", retried_ + "/3", "attempt 7");
}

TEST_F(Invariants, CounterDriftFails) {
  Exec("UPDATE tasks SET n_succeeded = n_succeeded - 1, n_running = 1 WHERE id = '" + done_ + "'");
  InvariantReport r = Check();
  ExpectViolation(r, "counters", done_, "succeeded is 9 but the subtasks count 10");
  ExpectViolation(r, "counters", done_, "running is 1 but the subtasks count 0");
}

TEST_F(Invariants, ItemsDoneDriftFails) {
  Exec("UPDATE tasks SET items_done = 99 WHERE id = '" + done_ + "'");
  ExpectViolation(Check(), "counters", done_, "items_done is 99");
}

// A committed result that is retried and committed again is the double result
// guarantee 3 forbids: both the retry and the second Succeeded are reported.
TEST_F(Invariants, SecondCommittedResultFails) {
  const std::string row = "INSERT INTO history(task_id, subtask_index, from_state, to_state, "
                          "event, reason, actor, time_ms, version, attempt) VALUES ('" +
                          done_ + "', 5, ";
  Exec(row + "5, 1, 'RetryRequested', '', 'x', 0, 0, 0)");
  Exec(row + "1, 2, 'Leased', '', 'x', 0, 0, 1)");
  Exec(row + "2, 5, 'Succeeded', '', 'x', 0, 0, 1)");
  InvariantReport r = Check();
  ExpectViolation(r, "results", done_ + "/5", "a second committed result");
  ExpectViolation(r, "results", done_ + "/5", "only CANCELLED");
}

TEST_F(Invariants, SucceededRowReplacedByAnIllegalEdgeFails) {
  Exec("DELETE FROM history WHERE task_id = '" + done_ +
       "' AND subtask_index = 6 AND event = 'Succeeded'");
  Exec("INSERT INTO history(task_id, subtask_index, from_state, to_state, event, reason, actor, "
       "time_ms, version, attempt) VALUES ('" + done_ + "', 6, 2, 5, 'Stopped', '', 'x', 0, 0, 1)");
  ExpectViolation(Check(), "history", done_ + "/6", "no such edge");
}

TEST_F(Invariants, WrongTaskResultFails) {
  Exec("UPDATE tasks SET result_json = '{\"sum\":1}' WHERE id = '" + retried_ + "'");
  ExpectViolation(Check(), "reduce", retried_, "the fold of its 10 committed results is "
                                               "{\"sum\":4950}");
}

TEST_F(Invariants, ChangedSubtaskResultFails) {
  Exec("UPDATE subtasks SET result_json = '{\"sum\":0}' WHERE task_id = '" + done_ +
       "' AND idx = 9");
  ExpectViolation(Check(), "reduce", done_, "result is '{\"sum\":4950}'");
}

TEST_F(Invariants, RunningSubtaskOfFinishedTaskFails) {
  Exec("UPDATE subtasks SET state = 2, outcome = 0 WHERE task_id = '" + done_ + "' AND idx = 1");
  ExpectViolation(Check(), "state", done_ + "/1", "still Running though its task is Terminated");
}

TEST_F(Invariants, UnknownKindIsSkippedAndSaidSo) {
  Finished("mystery", -1);
  InvariantReport r = Check();
  EXPECT_TRUE(r.ok()) << r.ToText();
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_NE(r.skipped[0].find("'mystery'"), std::string::npos) << r.skipped[0];
  EXPECT_EQ(r.results_checked, 2u);
}

TEST_F(Invariants, MissingOrForeignFileIsAnError) {
  EXPECT_EQ(CheckDatabase((dir_ / "nope.db").string()).status().code(),
            absl::StatusCode::kNotFound);
  const std::string other = (dir_ / "other.txt").string();
  FILE* f = fopen(other.c_str(), "w");
  fputs("not a database", f);
  fclose(f);
  EXPECT_FALSE(CheckDatabase(other).ok());
}

}  // namespace
