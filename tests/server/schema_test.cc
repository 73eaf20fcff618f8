// Tests of server/store/schema.cc: a database written by an older server
// opens with the newer schema added and its rows kept.
#include "tests/testing/sqlite_store_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

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

// This test verifies that a database written by a version-1 server opens with the version-2
// indexes added and its tasks kept and leasable.
TEST_F(SqliteStore, OpeningAVersionOneDatabaseAddsTheLeaseIndexes) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  store_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP INDEX tasks_unleased; DROP INDEX tasks_runnable; "
                           "PRAGMA user_version = 1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  Reopen();
  EXPECT_EQ(Count("PRAGMA user_version"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                  "('tasks_unleased', 'tasks_runnable')"),
            2);
  AcquireResult a = Acquire(Worker({"sum"}), 0, kNow, 1);
  ASSERT_EQ(a.tasks.size(), 1u);
  EXPECT_EQ(a.tasks[0].task().id(), t.id());
}

}  // namespace
