// The SQLite RAII layer: status mapping, statements, cached preparation, the
// reader pool. Thread-safety: see sqlite_db.h.
#include "server/store/sqlite_db.h"

#include "common/strcat.h"
#include "server/store/wal_vfs.h"

namespace orchard::store::sqlite {

absl::Status SqliteStatus(int rc, sqlite3* db, std::string_view what) {
  std::string msg = Cat(what, ": ", sqlite3_errstr(rc));
  if (db != nullptr && sqlite3_errcode(db) == rc) {
    std::string_view detail = sqlite3_errmsg(db);
    if (detail != sqlite3_errstr(rc)) msg = Cat(msg, " (", detail, ")");
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

void Stmt::BindText(int i, std::string_view v) {
  // An empty view may have a null data pointer, which would bind NULL.
  Check(sqlite3_bind_text(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                          SQLITE_STATIC));
}

void Stmt::BindBlob(int i, std::string_view v) {
  Check(sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                          SQLITE_STATIC));
}

absl::StatusOr<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return SqliteStatus(bind_rc_, db_, Cat("binding parameters of: ", sql_.substr(0, 80)));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(rc, db_, Cat("sqlite: ", sql_.substr(0, 80)));
}

absl::Status Stmt::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string_view Stmt::View(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr || n <= 0) return {};
  return std::string_view(static_cast<const char*>(p), static_cast<size_t>(n));
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path, bool create) {
  static std::once_flag once;
  std::call_once(once, [] {
    // Memory statistics take a global mutex on every allocation; Orchard
    // does not read them. Refused (harmlessly) if SQLite is already in use.
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  });
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, CoalescingWalVfsName());
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteStatus(rc, db, Cat("opening database ", path));
    sqlite3_close_v2(db);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  cache_.clear();  // finalize every statement before closing
  sqlite3_close_v2(db_);
}

absl::Status Connection::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string detail = err != nullptr ? err : "";
    sqlite3_free(err);
    return SqliteStatus(rc, db_, Cat("sqlite: ", text.substr(0, 80), ": ", detail));
  }
  return absl::OkStatus();
}

absl::StatusOr<Query> Connection::Prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    if (it->second->in_use) {
      return absl::InternalError(Cat("statement already in use: ", sql.substr(0, 80)));
    }
    return Query(it->second.get());
  }
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, db_, Cat("preparing: ", sql.substr(0, 120)));
  }
  auto stmt = std::make_unique<Stmt>(db_, raw, std::string(sql));
  Stmt* p = stmt.get();
  cache_.emplace(std::string_view(p->sql()), std::move(stmt));
  return Query(p);
}

void ReaderPool::Add(std::unique_ptr<Connection> c) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(c.get());
  all_.push_back(std::move(c));
}

ReaderPool::Lease ReaderPool::Borrow() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty(); });
  Connection* c = free_.back();
  free_.pop_back();
  return Lease(this, c);
}

void ReaderPool::Return(Connection* c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(c);
  }
  cv_.notify_one();
}

}  // namespace orchard::store::sqlite
