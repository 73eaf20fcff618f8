// SqliteStoreTest: a fresh SqliteStore on a file in the test's own temp
// directory, the StoreSteps over it, and a raw read-only connection to the
// same file so a test can count rows independently of the store's own reads.
// For the tests of SQLite's side of the store (tests/server/sqlite_*_test.cc)
// and of classes that want a real store (janitor, invariants, HTTP).
// Behaviour any store must have is tested in tests/server/store_contract/.
//
// Thread-safety: the fixture's methods from the test's thread; the store
// itself may be called from any thread.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "server/store/sqlite_store.h"
#include "tests/testing/store_steps.h"

namespace orchard::testing {

class SqliteStoreTest : public ::testing::Test, public StoreSteps {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string path() const { return (dir_ / "orchard.db").string(); }
  // Closes the store and opens the same file again (a server restart).
  void Reopen();
  store::SqliteStore& store() override { return *store_; }

  // The first column of the first row of `sql` on a raw read-only
  // connection (-1 when there is no row).
  int64_t Count(const std::string& sql);
  // Every counter of the task equals a SELECT count(*) of its rows.
  void ExpectCountersMatchRows(const std::string& id);

  std::filesystem::path dir_;
  std::unique_ptr<store::SqliteStore> store_;
  sqlite3* raw_ = nullptr;
};

}  // namespace orchard::testing
