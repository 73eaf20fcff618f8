// Tests of server/store/writer.cc (the group-commit writer) through the
// store and on its own: a failed COMMIT fails its whole batch and nothing of
// it stays, a full disk fails the write and the store recovers, answering a
// batch does not hold up the next.
#include "tests/testing/sqlite_store_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "server/store/writer.h"

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::Outcome;
using orchard::State;
using orchard::lifecycle::TaskEvent;
using orchard::store::AcquireResult;
using orchard::store::TaskTransition;
using namespace orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// The tests read SqliteStore.Xxx; one fixture class for every file of this
// binary (GoogleTest requires one class per suite name).
using SqliteStore = orchard::testing::SqliteStoreTest;

// This test verifies that when a COMMIT fails every write of that batch gets
// UNAVAILABLE, nothing of it is stored, and the store works afterwards.
TEST_F(SqliteStore, FailedCommitFailsTheBatchAndTheStoreRecovers) {
  pb::Task keep = Submit(Spec("sum", 0, 10, 1));
  store().FailNextCommitsForTesting(1);
  auto lost = store().CreateTask(Spec("sum", 0, 10, 1), kNow);
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(lost.status().message().find("commit failed"), std::string::npos) << lost.status();
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), 1);
  pb::Task after = Submit(Spec("sum", 0, 10, 1));
  EXPECT_GT(after.revision(), keep.revision());
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), 2);
  EXPECT_EQ(Count("SELECT value FROM meta WHERE key = 'revision'"),
            static_cast<int64_t>(after.revision()));
}

// This test verifies that a full disk (simulated with max_page_count) fails
// the write with UNAVAILABLE and leaves the task unplanned, and that the same
// write succeeds once there is room again.
TEST_F(SqliteStore, FullDiskFailsTheWriteAndTheStoreRecovers) {
  pb::Task t = Submit(Spec("sum", 0, 200'000, 200'000));
  int64_t pages = Count("PRAGMA page_count");
  Ok(store().ExecForTesting("PRAGMA max_page_count = " + std::to_string(pages + 20)));
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  auto full = store().TransitionTask(plan, kNow);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kUnavailable) << full.status();
  EXPECT_EQ(Get(t.id()).state(), pb::PREPARING);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks"), 0);
  Ok(store().ExecForTesting("PRAGMA max_page_count = 1073741823"));
  pb::Task planned = Ok(store().TransitionTask(plan, kNow));
  EXPECT_EQ(planned.counts().total(), 200'000u);
  Ok(store().Ping());
}

// This test verifies that answering a batch's callers does not hold up the
// next batch: while the first write's callback is still running, a later
// write commits; and callers are still answered in commit order.
TEST_F(SqliteStore, TheNextBatchCommitsWhileTheLastOneIsAnswered) {
  namespace sq = orchard::store::sqlite;
  const std::string path = (dir_ / "writer.db").string();
  auto db = Ok(sq::Connection::Open(path, true));
  Ok(db->Exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
              "INSERT INTO meta VALUES ('revision', 0);"
              "CREATE TABLE t(v INTEGER NOT NULL)"));
  sq::GroupCommitWriter writer(std::move(db), nullptr, 0, 64);
  std::promise<void> first_ran, second_ran;
  std::promise<bool> first_saw_second;
  std::mutex mu;
  std::vector<int> answered;
  auto insert = [](int v, std::promise<void>* ran) {
    return [v, ran](sq::WriteCtx& ctx) -> absl::Status {
      auto q = ctx.db.Prepare("INSERT INTO t(v) VALUES (?1)");
      if (!q.ok()) return q.status();
      (*q)->BindInt(1, v);
      absl::Status s = (*q)->Run();
      ran->set_value();
      return s;
    };
  };
  std::vector<sq::WriteOp> first;
  first.push_back(insert(1, &first_ran));
  writer.RunAllAsync(std::move(first), [&](std::vector<absl::Status> s) {
    // Blocks this batch's answers until the next batch's op has run (or
    // 30 s pass, when answering would hold the writer).
    bool saw =
        second_ran.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    {
      std::lock_guard lock(mu);
      answered.push_back(s[0].ok() ? 1 : -1);
    }
    first_saw_second.set_value(saw);
  });
  // The first op ran, so its batch was taken: the second is a batch of its own.
  first_ran.get_future().wait();
  std::promise<void> second_answered;
  std::vector<sq::WriteOp> second;
  second.push_back(insert(2, &second_ran));
  writer.RunAllAsync(std::move(second), [&](std::vector<absl::Status> s) {
    {
      std::lock_guard lock(mu);
      answered.push_back(s[0].ok() ? 2 : -2);
    }
    second_answered.set_value();
  });
  EXPECT_TRUE(first_saw_second.get_future().get());
  ASSERT_EQ(second_answered.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  std::lock_guard lock(mu);
  EXPECT_EQ(answered, (std::vector<int>{1, 2}));
}

}  // namespace
