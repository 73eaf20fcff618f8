// The coalescing WAL VFS (server/store/wal_vfs.h): a commit is in the file
// when COMMIT returns, whatever its size, exactly as with SQLite's own VFS.
//
// Each case writes through the VFS in a child process that then _exit()s
// without closing anything (as kill -9 right after a commit would), and the
// parent reads the file with SQLite's default VFS.
#include "server/store/wal_vfs.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace orchard::store::sqlite {
namespace {

class WalVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("orchard-wal-vfs-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "t.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `body` on a connection through the VFS in a child that _exit()s
  // with body's status, leaving the database and WAL files as they are.
  template <typename Body>
  void InChild(Body body) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      sqlite3* db = nullptr;
      const char* vfs = CoalescingWalVfsName();
      if (vfs == nullptr ||
          sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) !=
              SQLITE_OK ||
          Exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL") != SQLITE_OK) {
        _exit(2);
      }
      _exit(body(db) ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's writes failed";
  }

  static int Exec(sqlite3* db, const std::string& sql) {
    return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }

  // A query's one integer, read with SQLite's default VFS.
  int64_t Query(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }
  std::string IntegrityCheck() {
    sqlite3* db = nullptr;
    std::string out = "cannot open";
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
  }

  std::filesystem::path dir_;
  std::string path_;
};

// This test verifies that every small commit is readable by another
// connection as soon as it returns, and survives the process dying right
// after it, with nothing of the open transaction that followed.
TEST_F(WalVfsTest, EachCommitIsInTheFileWhenItReturns) {
  InChild([](sqlite3* db) {
    if (Exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)") != SQLITE_OK) return false;
    for (int i = 0; i < 200; ++i) {
      if (Exec(db, "INSERT INTO t(v) VALUES (printf('%.*c', 300, 'x'))") != SQLITE_OK) {
        return false;
      }
    }
    // Started, never committed: must not appear.
    return Exec(db, "BEGIN; INSERT INTO t(v) VALUES ('lost'); UPDATE t SET v = 'lost'") ==
           SQLITE_OK;
  });
  EXPECT_EQ(Query("SELECT count(*) FROM t"), 200);
  EXPECT_EQ(Query("SELECT count(*) FROM t WHERE v = 'lost'"), 0);
  EXPECT_EQ(IntegrityCheck(), "ok");
}

// This test verifies that transactions larger than one write call (128 KiB)
// and than the buffer (4 MiB) commit whole, alongside small ones.
TEST_F(WalVfsTest, LargeTransactionsCommitWhole) {
  InChild([](sqlite3* db) {
    if (Exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)") != SQLITE_OK) return false;
    for (int rows : {1, 40, 3000, 1, 12000, 2}) {
      std::string sql = "BEGIN;";
      sql += "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
             std::to_string(rows) + ") INSERT INTO t(v) SELECT randomblob(900) FROM n;";
      sql += "COMMIT";
      if (Exec(db, sql) != SQLITE_OK) return false;
    }
    return true;
  });
  EXPECT_EQ(Query("SELECT count(*) FROM t"), 1 + 40 + 3000 + 1 + 12000 + 2);
  EXPECT_EQ(IntegrityCheck(), "ok");
}

// This test verifies that a WAL checkpointed and restarted from its start
// (its writes are no longer appends) keeps every commit.
TEST_F(WalVfsTest, CommitsAfterTheWalRestartsAreKept) {
  InChild([](sqlite3* db) {
    if (Exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)") != SQLITE_OK) return false;
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 50; ++i) {
        if (Exec(db, "INSERT INTO t(v) VALUES ('r')") != SQLITE_OK) return false;
      }
      if (Exec(db, "PRAGMA wal_checkpoint(RESTART)") != SQLITE_OK) return false;
    }
    return true;
  });
  EXPECT_EQ(Query("SELECT count(*) FROM t"), 250);
  EXPECT_EQ(IntegrityCheck(), "ok");
}

}  // namespace
}  // namespace orchard::store::sqlite
