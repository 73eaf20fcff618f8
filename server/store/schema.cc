// The SQLite schema (version 1). States and outcomes are stored as the numbers
// of proto/orchard/v1/orchard.proto's enums (Preparing 1 ... Terminated 5;
// outcome 0 none, 1 succeeded, 2 cancelled, 3 failed); uint64 values are
// stored bit-for-bit in SQLite's signed 64-bit integers.
//
// Thread-safety: run once on the write connection before the writer starts.
#include "server/store/schema.h"

#include "common/strcat.h"

namespace orchard::store::sqlite {

namespace {

constexpr const char* kSchemaV1 = R"sql(
-- One row per named counter: 'revision' (the global change counter every
-- write op bumps) and 'ping' (written by Store::Ping).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('revision', 0), ('ping', 0);

-- Tasks. `seq` orders tasks by creation (newest first in listings, older
-- first among equal priorities); `spec` is the serialized pb::TaskSpec, and
-- the policy fields the store itself needs are copied into columns, with their
-- defaults applied. Counters n_* are kept incrementally in the transaction of
-- every subtask transition.
CREATE TABLE tasks (
  seq                INTEGER PRIMARY KEY AUTOINCREMENT,
  id                 TEXT NOT NULL UNIQUE,
  request_id         TEXT NOT NULL DEFAULT '',
  kind               TEXT NOT NULL,
  spec               BLOB NOT NULL,
  priority           INTEGER NOT NULL DEFAULT 0,
  parallelism        INTEGER NOT NULL DEFAULT 0,
  max_attempts       INTEGER NOT NULL DEFAULT 3,
  backoff_initial_ms INTEGER NOT NULL DEFAULT 500,
  backoff_max_ms     INTEGER NOT NULL DEFAULT 30000,
  state              INTEGER NOT NULL,
  outcome            INTEGER NOT NULL DEFAULT 0,
  reason             TEXT NOT NULL DEFAULT '',
  result_json        TEXT NOT NULL DEFAULT '',
  version            INTEGER NOT NULL DEFAULT 1,
  revision           INTEGER NOT NULL,
  generation         INTEGER NOT NULL DEFAULT 0,
  create_time_ms     INTEGER NOT NULL,
  update_time_ms     INTEGER NOT NULL,
  start_time_ms      INTEGER NOT NULL DEFAULT 0,
  finish_time_ms     INTEGER NOT NULL DEFAULT 0,
  lease_worker       TEXT NOT NULL DEFAULT '',
  lease_epoch        INTEGER NOT NULL DEFAULT 0,
  lease_expire_ms    INTEGER NOT NULL DEFAULT 0,
  n_total            INTEGER NOT NULL DEFAULT 0,
  n_preparing        INTEGER NOT NULL DEFAULT 0,
  n_running          INTEGER NOT NULL DEFAULT 0,
  n_terminating      INTEGER NOT NULL DEFAULT 0,
  n_error            INTEGER NOT NULL DEFAULT 0,
  n_terminated       INTEGER NOT NULL DEFAULT 0,
  n_succeeded        INTEGER NOT NULL DEFAULT 0,
  n_cancelled        INTEGER NOT NULL DEFAULT 0,
  items_done         INTEGER NOT NULL DEFAULT 0,
  items_total        INTEGER NOT NULL DEFAULT 0
);
-- Idempotent submit: at most one task per non-empty request_id.
CREATE UNIQUE INDEX tasks_request_id ON tasks(request_id) WHERE request_id <> '';
-- Acquire (Running tasks by priority, then age) and listing by state.
CREATE INDEX tasks_by_state ON tasks(state, priority DESC, seq);
-- Watch: tasks changed after a revision.
CREATE INDEX tasks_by_revision ON tasks(revision);
-- ListTasks by kind.
CREATE INDEX tasks_by_kind ON tasks(kind, seq);
-- The lease sweeper: held reconcile leases by expiry (few rows).
CREATE INDEX tasks_leased ON tasks(lease_expire_ms) WHERE lease_worker <> '';

-- Labels, for ListTasks' all-must-match filter.
CREATE TABLE task_labels (
  task_id TEXT NOT NULL,
  key     TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
CREATE INDEX task_labels_by_value ON task_labels(key, value, task_id);

-- Subtasks, clustered by (task_id, idx).
CREATE TABLE subtasks (
  task_id         TEXT NOT NULL,
  idx             INTEGER NOT NULL,
  item_begin      INTEGER NOT NULL,
  item_end        INTEGER NOT NULL,
  state           INTEGER NOT NULL DEFAULT 1,
  outcome         INTEGER NOT NULL DEFAULT 0,
  attempt         INTEGER NOT NULL DEFAULT 0,
  epoch           INTEGER NOT NULL DEFAULT 0,
  worker          TEXT NOT NULL DEFAULT '',
  lease_expire_ms INTEGER NOT NULL DEFAULT 0,
  not_before_ms   INTEGER NOT NULL DEFAULT 0,
  progress        INTEGER NOT NULL DEFAULT 0,
  result_json     TEXT NOT NULL DEFAULT '',
  error           TEXT NOT NULL DEFAULT '',
  version         INTEGER NOT NULL DEFAULT 1,
  update_time_ms  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
-- Runnable subtasks of a task, ready ones first (Acquire, next_ready_ms,
-- StopSubtasks). Only Preparing rows are in it.
CREATE INDEX subtasks_runnable ON subtasks(task_id, not_before_ms) WHERE state = 1;
-- Leases by expiry, for the sweeper; StopSubtasks also scans it for a task's
-- active subtasks (it holds only Running/Terminating rows, so it is as small
-- as the cluster's slots). One index, not two: every completion deletes from
-- it, and each index costs pages in every commit.
CREATE INDEX subtasks_leased ON subtasks(lease_expire_ms) WHERE state IN (2, 3);

-- The audit trail: one row per state change of a task (subtask_index -1) or
-- a subtask. The task's creation is a row from state 0 (unspecified). Rows
-- are never deleted yet, so the rowid only grows (page tokens rely on it);
-- AUTOINCREMENT would cost a sqlite_sequence write per row.
CREATE TABLE history (
  id            INTEGER PRIMARY KEY,
  task_id       TEXT NOT NULL,
  subtask_index INTEGER NOT NULL,
  from_state    INTEGER NOT NULL,
  to_state      INTEGER NOT NULL,
  event         TEXT NOT NULL,
  reason        TEXT NOT NULL,
  actor         TEXT NOT NULL,
  time_ms       INTEGER NOT NULL,
  version       INTEGER NOT NULL,
  attempt       INTEGER NOT NULL
);
-- A task's history in order. Both indexes only ever append (id grows), so a
-- commit touches their last page only; one subtask's rows are found by
-- scanning this index, which carries subtask_index (an operator's query,
-- rare, unlike the writes).
CREATE INDEX history_by_task ON history(task_id, id, subtask_index);
-- The task's own rows (few).
CREATE INDEX history_task_rows ON history(task_id, id) WHERE subtask_index = -1;

-- Workers; kinds is a JSON array of strings.
CREATE TABLE workers (
  id                TEXT PRIMARY KEY,
  name              TEXT NOT NULL,
  kinds             TEXT NOT NULL,
  slots             INTEGER NOT NULL,
  slots_in_use      INTEGER NOT NULL DEFAULT 0,
  register_time_ms  INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  alive             INTEGER NOT NULL DEFAULT 1,
  draining          INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
)sql";

// Version 2: the two lease queries read only the rows they may lease. In
// version 1 they walked every task in the leasable states, reading each
// row: with 5,000 reconciled Running tasks, 1.7 ms on the writer for every
// Acquire. Each entry costs an index write when a task becomes leasable and
// when it stops being so, not on every write to the task.
constexpr const char* kSchemaV2 = R"sql(
-- Tasks whose reconcile lease is free, in lease order; kind is read from
-- the index, so tasks of kinds no worker asks for are skipped cheaply.
CREATE INDEX tasks_unleased ON tasks(priority DESC, seq, kind)
  WHERE state IN (1, 2, 3) AND lease_worker = '';
-- Running tasks with a subtask waiting in Preparing, in lease order.
CREATE INDEX tasks_runnable ON tasks(priority DESC, seq, kind)
  WHERE state = 2 AND n_preparing > 0;
)sql";

absl::StatusOr<int> UserVersion(Connection& db) {
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("PRAGMA user_version"));
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? static_cast<int>(q->Int(0)) : 0;
}

}  // namespace

absl::Status EnsureSchema(Connection& db) {
  STORE_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::StatusOr<int> version = UserVersion(db);
  absl::Status s = version.status();
  if (s.ok() && *version > kSchemaVersion) {
    s = absl::FailedPreconditionError(Cat("database schema version ", *version,
                                          " is newer than this server's (", kSchemaVersion,
                                          "); upgrade the server"));
  }
  if (s.ok() && *version == 0) s = db.Exec(kSchemaV1);
  if (s.ok() && *version < 2) s = db.Exec(kSchemaV2);
  if (s.ok() && *version < kSchemaVersion) {
    s = db.Exec(Cat("PRAGMA user_version = ", kSchemaVersion));
  }
  if (!s.ok()) {
    if (db.in_transaction()) (void)db.Exec("ROLLBACK");
    return s;
  }
  return db.Exec("COMMIT");
}

}  // namespace orchard::store::sqlite
