// The SQLite schema of the store and its migration by PRAGMA user_version.
//
// Thread-safety: EnsureSchema runs once, on the write connection, before the
// writer thread starts.
#pragma once

#include "absl/status/status.h"
#include "server/store/sqlite_db.h"

namespace orchard::store::sqlite {

// The schema version this code writes (PRAGMA user_version).
inline constexpr int kSchemaVersion = 2;

// Creates the tables and indexes in an empty database; migrates an older
// one in the same transaction (version 1 -> 2 adds two indexes); refuses
// (FAILED_PRECONDITION) one written by a newer server.
absl::Status EnsureSchema(Connection& db);

}  // namespace orchard::store::sqlite
