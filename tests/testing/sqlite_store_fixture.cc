#include "tests/testing/sqlite_store_fixture.h"

#include <stdexcept>

#include "tests/testing/ok.h"
#include "tests/testing/temp_dir.h"

namespace orchard::testing {

namespace pb = ::orchard::v1;

void SqliteStoreTest::SetUp() {
  dir_ = FreshTestDir("store");
  Reopen();
}

void SqliteStoreTest::TearDown() {
  store_.reset();
  if (raw_ != nullptr) sqlite3_close(raw_);
  raw_ = nullptr;
  std::filesystem::remove_all(dir_);
}

void SqliteStoreTest::Reopen() {
  store_.reset();
  store_ = Ok(store::SqliteStore::Open(store::SqliteOptions{.path = path()}));
}

int64_t SqliteStoreTest::Count(const std::string& sql) {
  if (raw_ == nullptr) {
    if (sqlite3_open_v2(path().c_str(), &raw_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot open the database read-only");
    }
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(raw_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("bad sql: ") + sqlite3_errmsg(raw_));
  }
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

void SqliteStoreTest::ExpectCountersMatchRows(const std::string& id) {
  pb::SubtaskCounts c = Get(id).counts();
  auto n = [&](const std::string& where) {
    return static_cast<uint64_t>(
        Count("SELECT count(*) FROM subtasks WHERE task_id = '" + id + "'" + where));
  };
  auto items = [&](const std::string& where) {
    return static_cast<uint64_t>(Count(
        "SELECT coalesce(sum(item_end - item_begin), 0) FROM subtasks WHERE task_id = '" + id +
        "'" + where));
  };
  EXPECT_EQ(c.total(), n(""));
  EXPECT_EQ(c.preparing(), n(" AND state = 1"));
  EXPECT_EQ(c.running(), n(" AND state = 2"));
  EXPECT_EQ(c.terminating(), n(" AND state = 3"));
  EXPECT_EQ(c.error(), n(" AND state = 4"));
  EXPECT_EQ(c.terminated(), n(" AND state = 5"));
  EXPECT_EQ(c.succeeded(), n(" AND state = 5 AND outcome = 1"));
  EXPECT_EQ(c.cancelled(), n(" AND state = 5 AND outcome = 2"));
  EXPECT_EQ(c.items_done(), items(" AND state = 5 AND outcome = 1"));
  EXPECT_EQ(c.items_total(), items(""));
}

}  // namespace orchard::testing
