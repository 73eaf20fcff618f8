// A thin RAII layer over the SQLite C API, used only inside server/store/:
// the mapping of SQLite result codes to absl::Status, a prepared statement
// with typed binds and columns, a connection that prepares each statement once
// (SQLITE_PREPARE_PERSISTENT) and keeps it, and a small pool of read
// connections.
//
// Thread-safety: a Connection and its statements are used by one thread at a
// time (they are opened SQLITE_OPEN_NOMUTEX). The writer thread owns the write
// connection; a ReaderPool hands each read connection to one caller at a time
// and is itself thread-safe.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early returns on error, for code that is mostly a sequence of statements.
#define STORE_CONCAT_INNER_(a, b) a##b
#define STORE_CONCAT_(a, b) STORE_CONCAT_INNER_(a, b)
#define STORE_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status store_status_ = (expr);         \
    if (!store_status_.ok()) return store_status_; \
  } while (0)
#define STORE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)
#define STORE_ASSIGN_OR_RETURN(lhs, expr) \
  STORE_ASSIGN_OR_RETURN_IMPL_(STORE_CONCAT_(store_or_, __LINE__), lhs, expr)

namespace orchard::store::sqlite {

// UNAVAILABLE for conditions that may pass (busy, locked, disk full, I/O
// error, read-only file), INTERNAL for the rest; the message carries `what`
// and SQLite's own message.
absl::Status SqliteStatus(int rc, sqlite3* db, std::string_view what);

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt, std::string sql)
      : db_(db), stmt_(stmt), sql_(std::move(sql)) {}
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // 1-based parameter index. Text and blobs are NOT copied: the caller keeps
  // them alive until the statement is reset (a Query's scope).
  template <typename Int>
  void BindInt(int i, Int v) {
    Check(sqlite3_bind_int64(stmt_, i, static_cast<sqlite3_int64>(v)));
  }
  void BindText(int i, std::string_view v);
  void BindBlob(int i, std::string_view v);

  // true: a row is ready; false: done.
  absl::StatusOr<bool> Step();
  // Steps until done, ignoring rows.
  absl::Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  uint64_t Uint(int col) const { return static_cast<uint64_t>(Int(col)); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string_view View(int col) const;
  std::string Text(int col) const { return std::string(View(col)); }

  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t changes() const { return sqlite3_changes64(db_); }
  // Reset for the next step, keeping (Rewind) or clearing (Reset) bindings.
  void Rewind() { sqlite3_reset(stmt_); }
  void Reset();
  const std::string& sql() const { return sql_; }

  bool in_use = false;  // borrowed by a Query

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  int bind_rc_ = SQLITE_OK;
};

// A cached statement borrowed for one use; resets it (and clears its
// bindings) when the scope ends, so no statement keeps a read open.
class Query {
 public:
  explicit Query(Stmt* s) : s_(s) { s_->in_use = true; }
  Query(Query&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Query& operator=(Query&&) = delete;
  ~Query() {
    if (s_ != nullptr) {
      s_->Reset();
      s_->in_use = false;
    }
  }
  Stmt* operator->() const { return s_; }
  Stmt& operator*() const { return *s_; }

 private:
  Stmt* s_;
};

class Connection {
 public:
  // Opens (creating when `create`) the database file with the pragmas every
  // Orchard connection uses.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool create);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One-off statements (schema, pragmas): parsed on every call.
  absl::Status Exec(std::string_view sql);
  // The statement for `sql`, prepared on first use and kept; statements are
  // keyed by their text. A statement already borrowed (a nested use of the
  // same text while its rows are being read) is an INTERNAL error.
  absl::StatusOr<Query> Prepare(std::string_view sql);

  // False when SQLite rolled the transaction back on its own (e.g. after
  // SQLITE_FULL or an I/O error) or none is open.
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  sqlite3* raw() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<std::string_view, std::unique_ptr<Stmt>> cache_;  // keys view Stmt::sql()
};

// Read connections handed out one caller at a time; Borrow blocks while all
// are in use.
class ReaderPool {
 public:
  ReaderPool() = default;
  void Add(std::unique_ptr<Connection> c);

  class Lease {
   public:
    Lease(ReaderPool* pool, Connection* c) : pool_(pool), c_(c) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), c_(std::exchange(o.c_, nullptr)) {}
    ~Lease() {
      if (c_ != nullptr) pool_->Return(c_);
    }
    Connection& operator*() const { return *c_; }
    Connection* operator->() const { return c_; }

   private:
    ReaderPool* pool_;
    Connection* c_;
  };
  Lease Borrow();

 private:
  void Return(Connection* c);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> all_;
  std::vector<Connection*> free_;
};

}  // namespace orchard::store::sqlite
