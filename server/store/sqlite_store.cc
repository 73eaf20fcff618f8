// SqliteStore: opening the database, the read operations, workers, Ping.
// Task writes are in sqlite_store_tasks.cc, leases in sqlite_store_leases.cc.
//
// Thread-safety: any thread; reads borrow a read connection, writes run on
// the writer thread (see writer.h).
#include "server/store/sqlite_store.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/strcat.h"
#include "common/util.h"
#include "server/store/rows.h"
#include "server/store/schema.h"

namespace orchard::store {

using sqlite::Connection;
using sqlite::Query;
using sqlite::WriteCtx;

namespace {

constexpr int kBusyTimeoutMs = 5000;

uint32_t ClampPage(uint32_t requested, uint32_t dflt, uint32_t max) {
  if (requested == 0) return dflt;
  return std::min(requested, max);
}

// " AND state IN (1,2)" for a non-empty filter (numbers, never user text).
std::string StateList(const std::vector<State>& states) {
  if (states.empty()) return "";
  std::string out = " AND state IN (";
  for (size_t i = 0; i < states.size(); ++i) {
    out += Cat(i == 0 ? "" : ",", static_cast<int>(states[i]));
  }
  return out + ")";
}

std::vector<std::string> ParseKinds(std::string_view json) {
  std::vector<std::string> kinds;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return kinds;
  for (const auto& k : j) {
    if (k.is_string()) kinds.push_back(k.get<std::string>());
  }
  return kinds;
}

absl::Status CheckTaskExists(Connection& db, std::string_view id) {
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT 1 FROM tasks WHERE id = ?1"));
  q->BindText(1, id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? absl::OkStatus() : sqlite::TaskNotFound(id);
}

absl::Status ApplyPragmas(Connection& db, bool writer, const std::string& synchronous) {
  STORE_RETURN_IF_ERROR(db.Exec(Cat("PRAGMA busy_timeout = ", kBusyTimeoutMs)));
  STORE_RETURN_IF_ERROR(db.Exec("PRAGMA temp_store = MEMORY"));
  if (!writer) {
    STORE_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = -16384"));
    return db.Exec("PRAGMA query_only = 1");
  }
  {
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("PRAGMA journal_mode = WAL"));
    STORE_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row || q->View(0) != "wal") {
      return absl::FailedPreconditionError(
          Cat("store: cannot switch the database to WAL mode (journal_mode is ",
              row ? q->Text(0) : "unknown", ")"));
    }
  }
  STORE_RETURN_IF_ERROR(db.Exec(Cat("PRAGMA synchronous = ", synchronous)));
  // Planning a million subtasks should not spill the page cache mid-write.
  STORE_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = -131072"));
  return db.Exec("PRAGMA journal_size_limit = 67108864");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(options);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Store>(std::move(*s));
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("path: the database file is empty");
  std::string sync = options.synchronous;
  std::transform(sync.begin(), sync.end(), sync.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (sync.empty()) sync = "normal";
  if (sync != "normal" && sync != "full") {
    return absl::InvalidArgumentError(
        Cat("synchronous: '", options.synchronous, "' is not \"normal\" or \"full\""));
  }
  STORE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> w, Connection::Open(options.path, true));
  STORE_RETURN_IF_ERROR(ApplyPragmas(*w, /*writer=*/true, sync));
  STORE_RETURN_IF_ERROR(sqlite::EnsureSchema(*w));
  uint64_t revision = 0;
  {
    STORE_ASSIGN_OR_RETURN(Query q, w->Prepare("SELECT value FROM meta WHERE key = 'revision'"));
    STORE_ASSIGN_OR_RETURN(bool row, q->Step());
    if (row) revision = q->Uint(0);
  }
  auto readers = std::make_unique<sqlite::ReaderPool>();
  for (int i = 0; i < std::max(1, options.reader_connections); ++i) {
    STORE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> r, Connection::Open(options.path, false));
    STORE_RETURN_IF_ERROR(ApplyPragmas(*r, /*writer=*/false, sync));
    readers->Add(std::move(r));
  }
  STORE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> checkpointer,
                         Connection::Open(options.path, false));
  auto writer = std::make_unique<sqlite::GroupCommitWriter>(std::move(w), std::move(checkpointer),
                                                            revision, options.max_batch);
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(writer), std::move(readers)));
}

SqliteStore::SqliteStore(std::unique_ptr<sqlite::GroupCommitWriter> writer,
                         std::unique_ptr<sqlite::ReaderPool> readers)
    : writer_(std::move(writer)), readers_(std::move(readers)) {}

SqliteStore::~SqliteStore() {
  readers_.reset();
  // Finishes the queued writes; the write connection closes last, so its
  // close checkpoints the WAL into the database file.
  writer_.reset();
}

absl::Status SqliteStore::Write(sqlite::WriteOp op) { return writer_->Run(std::move(op)); }

void SqliteStore::FailNextCommitsForTesting(int n) { writer_->FailNextCommitsForTesting(n); }

absl::Status SqliteStore::ExecForTesting(const std::string& sql) {
  return Write([&](WriteCtx& ctx) { return ctx.db.Exec(sql); });
}

absl::Status SqliteStore::Ping() {
  return Write([](WriteCtx& ctx) -> absl::Status {
    STORE_ASSIGN_OR_RETURN(Query q,
                           ctx.db.Prepare("UPDATE meta SET value = value + 1 WHERE key = 'ping'"));
    return q->Run();
  });
}

// ---- reads ----

absl::StatusOr<pb::Task> SqliteStore::GetTask(const std::string& id) {
  return Read<absl::StatusOr<pb::Task>>([&](Connection& db) { return sqlite::LoadTask(db, id); });
}

absl::StatusOr<pb::WaitTaskResponse> SqliteStore::TaskSnapshot(const std::string& id,
                                                                uint32_t results_up_to) {
  return Read<absl::StatusOr<pb::WaitTaskResponse>>(
      [&](Connection& db) -> absl::StatusOr<pb::WaitTaskResponse> {
        // One read transaction: the counts and the results agree, and the
        // connection's cache (reset by every commit in between) fills once.
        STORE_ASSIGN_OR_RETURN(Query begin, db.Prepare("BEGIN"));
        STORE_RETURN_IF_ERROR(begin->Run());
        struct End {
          Connection& db;
          ~End() {
            if (!db.in_transaction()) return;
            if (auto q = db.Prepare("COMMIT"); q.ok()) (void)(*q)->Run();
            if (db.in_transaction()) (void)db.Exec("ROLLBACK");
          }
        } end{db};
        return sqlite::LoadTaskSnapshot(db, id, results_up_to);
      });
}

absl::StatusOr<TaskPage> SqliteStore::ListTasks(const TaskFilter& filter) {
  const uint32_t limit = ClampPage(filter.page_size, 100, 1000);
  std::optional<int64_t> before_seq;
  if (!filter.page_token.empty()) {
    STORE_ASSIGN_OR_RETURN(before_seq, sqlite::DecodePageToken(filter.page_token, 't'));
  }
  std::string sql =
      Cat("SELECT ", sqlite::kTaskColumns, ", seq FROM tasks WHERE 1", StateList(filter.states));
  if (!filter.kind.empty()) sql += " AND kind = ?";
  for (size_t i = 0; i < filter.labels.size(); ++i) {
    sql +=
        " AND EXISTS (SELECT 1 FROM task_labels l WHERE l.task_id = tasks.id"
        " AND l.key = ? AND l.value = ?)";
  }
  if (before_seq) sql += " AND seq < ?";
  sql += " ORDER BY seq DESC LIMIT ?";

  return Read<absl::StatusOr<TaskPage>>([&](Connection& db) -> absl::StatusOr<TaskPage> {
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(sql));
    int p = 1;
    if (!filter.kind.empty()) q->BindText(p++, filter.kind);
    for (const auto& [k, v] : filter.labels) {
      q->BindText(p++, k);
      q->BindText(p++, v);
    }
    if (before_seq) q->BindInt(p++, *before_seq);
    q->BindInt(p++, limit + 1);
    TaskPage page;
    int64_t last_seq = 0;
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      if (page.tasks.size() == limit) {
        page.next_page_token = sqlite::EncodePageToken('t', last_seq);
        break;
      }
      sqlite::ReadTask(*q, &page.tasks.emplace_back());
      last_seq = q->Int(24);
    }
    return page;
  });
}

absl::StatusOr<std::vector<pb::Task>> SqliteStore::TasksChangedAfter(uint64_t after_revision,
                                                                     const std::string& task_id,
                                                                     uint32_t limit) {
  limit = ClampPage(limit, 1000, 10000);
  return Read<absl::StatusOr<std::vector<pb::Task>>>(
      [&](Connection& db) -> absl::StatusOr<std::vector<pb::Task>> {
        static const std::string kOne =
            Cat("SELECT ", sqlite::kTaskColumns, " FROM tasks WHERE id = ?1 AND revision > ?2");
        static const std::string kAll =
            Cat("SELECT ", sqlite::kTaskColumns,
                " FROM tasks WHERE revision > ?1 ORDER BY revision LIMIT ?2");
        std::vector<pb::Task> out;
        STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(task_id.empty() ? kAll : kOne));
        if (task_id.empty()) {
          q->BindInt(1, after_revision);
          q->BindInt(2, limit);
        } else {
          q->BindText(1, task_id);
          q->BindInt(2, after_revision);
        }
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          sqlite::ReadTask(*q, &out.emplace_back());
        }
        return out;
      });
}

absl::StatusOr<SubtaskPage> SqliteStore::ListSubtasks(const SubtaskFilter& filter) {
  if (filter.task_id.empty()) return absl::InvalidArgumentError("task_id: required");
  const uint32_t limit = ClampPage(filter.page_size, 1000, 10000);
  int64_t after = -1;
  if (!filter.page_token.empty()) {
    STORE_ASSIGN_OR_RETURN(after, sqlite::DecodePageToken(filter.page_token, 's'));
  }
  std::string sql =
      Cat("SELECT ", sqlite::kSubtaskColumns, " FROM subtasks WHERE task_id = ?1 AND idx > ?2",
          StateList(filter.states),
          filter.failed_only ? " AND (state = 4 OR error <> '')" : "", " ORDER BY idx LIMIT ?3");
  return Read<absl::StatusOr<SubtaskPage>>([&](Connection& db) -> absl::StatusOr<SubtaskPage> {
    STORE_RETURN_IF_ERROR(CheckTaskExists(db, filter.task_id));
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(sql));
    q->BindText(1, filter.task_id);
    q->BindInt(2, after);
    q->BindInt(3, limit + 1);
    SubtaskPage page;
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      if (page.subtasks.size() == limit) {
        page.next_page_token =
            sqlite::EncodePageToken('s', static_cast<int64_t>(page.subtasks.back().index()));
        break;
      }
      page.subtasks.push_back(sqlite::ToProto(sqlite::ReadSubtask(*q)));
    }
    return page;
  });
}

absl::StatusOr<HistoryPage> SqliteStore::GetHistory(const HistoryFilter& filter) {
  if (filter.task_id.empty()) return absl::InvalidArgumentError("task_id: required");
  const uint32_t limit = ClampPage(filter.page_size, 1000, 10000);
  int64_t after = 0;
  if (!filter.page_token.empty()) {
    STORE_ASSIGN_OR_RETURN(after, sqlite::DecodePageToken(filter.page_token, 'h'));
  }
  return Read<absl::StatusOr<HistoryPage>>([&](Connection& db) -> absl::StatusOr<HistoryPage> {
    STORE_RETURN_IF_ERROR(CheckTaskExists(db, filter.task_id));
    constexpr const char* kCols =
        "SELECT task_id, subtask_index, from_state, to_state, event, reason, actor, time_ms, "
        "version, attempt, id FROM history ";
    static const std::string kAll =
        Cat(kCols, "WHERE task_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
    // The literal -1 lets SQLite use the partial index of the task's rows.
    static const std::string kTask =
        Cat(kCols, "WHERE task_id = ?1 AND id > ?2 AND subtask_index = -1 ORDER BY id LIMIT ?3");
    static const std::string kOne =
        Cat(kCols, "WHERE task_id = ?1 AND id > ?2 AND subtask_index = ?4 ORDER BY id LIMIT ?3");
    const std::string& sql = !filter.subtask_index         ? kAll
                             : *filter.subtask_index == -1 ? kTask
                                                           : kOne;
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(sql));
    q->BindText(1, filter.task_id);
    q->BindInt(2, after);
    q->BindInt(3, limit + 1);
    if (filter.subtask_index && *filter.subtask_index != -1) q->BindInt(4, *filter.subtask_index);
    HistoryPage page;
    int64_t last_id = 0;
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      if (page.entries.size() == limit) {
        page.next_page_token = sqlite::EncodePageToken('h', last_id);
        break;
      }
      pb::HistoryEntry& e = page.entries.emplace_back();
      e.set_task_id(q->Text(0));
      e.set_subtask_index(q->Int(1));
      e.set_from(static_cast<pb::State>(q->Int(2)));
      e.set_to(static_cast<pb::State>(q->Int(3)));
      e.set_event(q->Text(4));
      e.set_reason(q->Text(5));
      e.set_actor(q->Text(6));
      e.set_time_ms(q->Int(7));
      e.set_version(q->Uint(8));
      e.set_attempt(static_cast<uint32_t>(q->Int(9)));
      last_id = q->Int(10);
    }
    return page;
  });
}

// ---- workers ----

absl::StatusOr<std::string> SqliteStore::RegisterWorker(const std::string& name,
                                                        const std::vector<std::string>& kinds,
                                                        uint32_t slots, int64_t now_ms) {
  const std::string id = NewId("w-");
  // replace: a kind that is not valid UTF-8 must not throw.
  const std::string kinds_json =
      nlohmann::json(kinds).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  STORE_RETURN_IF_ERROR(Write([&](WriteCtx& ctx) -> absl::Status {
    STORE_ASSIGN_OR_RETURN(
        Query q, ctx.db.Prepare("INSERT INTO workers(id, name, kinds, slots, register_time_ms, "
                                "last_heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"));
    q->BindText(1, id);
    q->BindText(2, name);
    q->BindText(3, kinds_json);
    q->BindInt(4, slots);
    q->BindInt(5, now_ms);
    return q->Run();
  }));
  return id;
}

absl::Status SqliteStore::DeregisterWorker(const std::string& worker_id, int64_t now_ms) {
  // Idempotent: deregistering an unknown (or already gone) worker is OK.
  return Write([&](WriteCtx& ctx) -> absl::Status {
    {
      STORE_ASSIGN_OR_RETURN(Query q, ctx.db.Prepare("DELETE FROM workers WHERE id = ?1"));
      q->BindText(1, worker_id);
      STORE_RETURN_IF_ERROR(q->Run());
    }
    {
      // Its reconcile leases are free at once; the next holder gets a new epoch.
      STORE_ASSIGN_OR_RETURN(
          Query q, ctx.db.Prepare("UPDATE tasks SET lease_worker = '', lease_expire_ms = 0, "
                                  "revision = ?2 WHERE lease_worker <> '' AND lease_worker = ?1"));
      q->BindText(1, worker_id);
      q->BindInt(2, ctx.revision);
      STORE_RETURN_IF_ERROR(q->Run());
    }
    // Its subtask leases expire now, so the sweeper hands them on without
    // waiting for the TTL.
    STORE_ASSIGN_OR_RETURN(
        Query q, ctx.db.Prepare("UPDATE subtasks SET lease_expire_ms = ?2 WHERE state IN (2, 3) "
                                "AND worker = ?1 AND lease_expire_ms > ?2"));
    q->BindText(1, worker_id);
    q->BindInt(2, now_ms);
    return q->Run();
  });
}

absl::StatusOr<std::vector<pb::WorkerInfo>> SqliteStore::ListWorkers(int64_t now_ms,
                                                                     int64_t alive_window_ms) {
  return Read<absl::StatusOr<std::vector<pb::WorkerInfo>>>(
      [&](Connection& db) -> absl::StatusOr<std::vector<pb::WorkerInfo>> {
        STORE_ASSIGN_OR_RETURN(
            Query q, db.Prepare("SELECT id, name, kinds, slots, slots_in_use, last_heartbeat_ms, "
                                "draining, register_time_ms FROM workers "
                                "ORDER BY register_time_ms, id"));
        std::vector<pb::WorkerInfo> out;
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          pb::WorkerInfo& w = out.emplace_back();
          w.set_id(q->Text(0));
          w.set_name(q->Text(1));
          for (std::string& k : ParseKinds(q->View(2))) w.add_kinds(std::move(k));
          w.set_slots(static_cast<uint32_t>(q->Int(3)));
          w.set_slots_in_use(static_cast<uint32_t>(q->Int(4)));
          w.set_last_heartbeat_ms(q->Int(5));
          w.set_alive(q->Int(5) >= now_ms - alive_window_ms);
          w.set_draining(q->Int(6) != 0);
          w.set_register_time_ms(q->Int(7));
        }
        return out;
      });
}

// ---- operators' reads ----

absl::StatusOr<StateCounts> SqliteStore::CountByState() {
  return Read<absl::StatusOr<StateCounts>>([&](Connection& db) -> absl::StatusOr<StateCounts> {
    STORE_ASSIGN_OR_RETURN(
        Query q, db.Prepare("SELECT state, count(*), sum(n_preparing), sum(n_running), "
                            "sum(n_terminating), sum(n_error), sum(n_terminated) FROM tasks "
                            "GROUP BY state"));
    StateCounts out;
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      int64_t state = q->Int(0);
      if (state >= 1 && state <= 5) out.tasks[state] += q->Uint(1);
      for (int s = 1; s <= 5; ++s) out.subtasks[s] += q->Uint(1 + s);
    }
    return out;
  });
}

absl::StatusOr<SubtaskGrid> SqliteStore::GetSubtaskGrid(const std::string& task_id,
                                                        uint32_t max_cells) {
  if (max_cells == 0 || max_cells > 10000) {
    return absl::InvalidArgumentError("max_cells: must be 1..10000");
  }
  return Read<absl::StatusOr<SubtaskGrid>>([&](Connection& db) -> absl::StatusOr<SubtaskGrid> {
    SubtaskGrid grid;
    {
      STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT n_total FROM tasks WHERE id = ?1"));
      q->BindText(1, task_id);
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) return sqlite::TaskNotFound(task_id);
      grid.total = q->Uint(0);
    }
    grid.cell_size = std::max<uint64_t>(1, (grid.total + max_cells - 1) / max_cells);
    const uint64_t n_cells = (grid.total + grid.cell_size - 1) / grid.cell_size;
    grid.cells.resize(n_cells);
    for (uint64_t i = 0; i < n_cells; ++i) {
      grid.cells[i].begin = i * grid.cell_size;
      grid.cells[i].end = std::min(grid.total, (i + 1) * grid.cell_size);
    }
    // The primary key (task_id, idx) yields the rows in index order, so the
    // grouping needs no sort.
    STORE_ASSIGN_OR_RETURN(
        Query q, db.Prepare("SELECT idx / ?2, state, count(*) FROM subtasks WHERE task_id = ?1 "
                            "GROUP BY 1, 2"));
    q->BindText(1, task_id);
    q->BindInt(2, grid.cell_size);
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      const int64_t cell = q->Int(0), state = q->Int(1);
      if (cell < 0 || state < 1 || state > 5) continue;
      if (static_cast<uint64_t>(cell) >= grid.cells.size()) {
        // Indices past n_total (cannot happen while counters are exact):
        // widen the grid rather than drop them.
        const uint64_t old = grid.cells.size();
        grid.cells.resize(static_cast<size_t>(cell) + 1);
        for (uint64_t i = old; i < grid.cells.size(); ++i) {
          grid.cells[i].begin = i * grid.cell_size;
          grid.cells[i].end = (i + 1) * grid.cell_size;
        }
      }
      grid.cells[static_cast<size_t>(cell)].by_state[state] += q->Uint(2);
    }
    return grid;
  });
}

absl::StatusOr<std::vector<std::string>> SqliteStore::LiveKinds(int64_t now_ms,
                                                                int64_t alive_window_ms) {
  return Read<absl::StatusOr<std::vector<std::string>>>(
      [&](Connection& db) -> absl::StatusOr<std::vector<std::string>> {
        STORE_ASSIGN_OR_RETURN(
            Query q, db.Prepare("SELECT DISTINCT j.value FROM workers w, json_each(w.kinds) j "
                                "WHERE w.last_heartbeat_ms >= ?1 ORDER BY 1"));
        q->BindInt(1, now_ms - alive_window_ms);
        std::vector<std::string> out;
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          out.push_back(q->Text(0));
        }
        return out;
      });
}

absl::StatusOr<std::vector<pb::Task>> SqliteStore::UnreconciledTasks(int64_t now_ms,
                                                                     int64_t alive_window_ms,
                                                                     const std::string& after_id,
                                                                     uint32_t limit) {
  return Read<absl::StatusOr<std::vector<pb::Task>>>(
      [&](Connection& db) -> absl::StatusOr<std::vector<pb::Task>> {
        // Walks the active tasks (tasks_by_state); the live kinds are read
        // in the same transaction, so a worker that registers meanwhile is
        // either seen or its plan comes after this read.
        STORE_ASSIGN_OR_RETURN(
            Query q,
            db.Prepare(Cat("SELECT ", sqlite::kTaskColumns,
                           " FROM tasks WHERE state IN (1, 2, 3) AND id > ?3 "
                           "AND (lease_worker = '' OR lease_expire_ms <= ?1) "
                           "AND n_running + n_terminating = 0 "
                           "AND kind NOT IN (SELECT j.value FROM workers w, json_each(w.kinds) j "
                           "                 WHERE w.last_heartbeat_ms >= ?2) "
                           "ORDER BY id LIMIT ?4")));
        q->BindInt(1, now_ms);
        q->BindInt(2, now_ms - alive_window_ms);
        q->BindText(3, after_id);
        q->BindInt(4, limit);
        std::vector<pb::Task> out;
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          sqlite::ReadTask(*q, &out.emplace_back());
        }
        return out;
      });
}

}  // namespace orchard::store
