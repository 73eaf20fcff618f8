// Tests of SQLite's side of the store (server/store/sqlite_store.cc: open,
// reopen, the reads) against a real file in a temp directory. Time is
// explicit (now_ms values), never slept. What every Store must do is in
// tests/server/store_contract/; these tests are about this implementation.
#include "tests/testing/sqlite_store_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

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

// This test verifies that closing and reopening the file keeps tasks,
// subtasks, history, workers and the revision counter.
TEST_F(SqliteStore, ReopeningTheFileKeepsEverything) {
  pb::Task t = Start(Spec("sum", 0, 100, 10));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r")));
  pb::Task before = Get(t.id());
  auto subs = Subtasks(t.id());
  auto hist = History(t.id(), std::nullopt);
  Reopen();
  EXPECT_EQ(Get(t.id()).SerializeAsString(), before.SerializeAsString());
  auto subs2 = Subtasks(t.id());
  ASSERT_EQ(subs2.size(), subs.size());
  for (size_t i = 0; i < subs.size(); ++i) {
    EXPECT_EQ(subs2[i].SerializeAsString(), subs[i].SerializeAsString());
  }
  EXPECT_EQ(History(t.id(), std::nullopt).size(), hist.size());
  EXPECT_EQ(Ok(store().ListWorkers(kNow, 1000)).size(), 1u);
  // The lease held before the restart is still honoured.
  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease())));
  pb::Task later = Get(t.id());
  EXPECT_GT(later.revision(), before.revision());
  EXPECT_EQ(later.counts().succeeded(), 2u);
}

}  // namespace
