// SqliteStore: leases — Acquire, Heartbeat, Report, ReleaseTask and the lease
// sweeper (ExpireLeases). The hot path of a running cluster: each call is one
// write operation built from cached statements, touching subtasks by primary
// key or through the small partial indexes (runnable, leased, active).
//
// Thread-safety: any thread; each call is one operation on the writer thread.
#include <algorithm>
#include <limits>

#include "common/backoff.h"
#include "common/lifecycle/subtask.h"
#include "common/strcat.h"
#include "server/store/rows.h"
#include "server/store/sqlite_store.h"

namespace orchard::store {

using lifecycle::SubtaskEvent;
using sqlite::Connection;
using sqlite::CounterDelta;
using sqlite::Query;
using sqlite::SubtaskRow;
using sqlite::TaskRow;
using sqlite::WriteCtx;

namespace {

// Most expired subtask leases handled by one sweep, so one sweep never holds
// the writer for long; the next sweep takes the rest.
constexpr int64_t kMaxExpiredPerSweep = 10'000;

// Task rows read once per operation (policy for retries and backoff).
class TaskCache {
 public:
  absl::StatusOr<const TaskRow*> Get(Connection& db, const std::string& id) {
    auto it = rows_.find(id);
    if (it == rows_.end()) {
      STORE_ASSIGN_OR_RETURN(TaskRow row, sqlite::LoadTaskRow(db, id));
      it = rows_.emplace(id, std::move(row)).first;
    }
    return &it->second;
  }

 private:
  std::map<std::string, TaskRow, std::less<>> rows_;
};

// A failed attempt that goes back to Preparing waits a full-jitter backoff.
int64_t RetryDelayMs(const TaskRow& task, uint32_t attempt, std::mt19937_64& rng) {
  return static_cast<int64_t>(FullJitterMs(task.backoff, attempt, rng));
}

absl::StatusOr<std::string> WorkerKinds(Connection& db, const std::string& worker_id) {
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT kinds FROM workers WHERE id = ?1"));
  q->BindText(1, worker_id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(Cat("worker ", worker_id, " not found"));
  return q->Text(0);
}

pb::LeaseRef Ref(const std::string& task_id, int64_t index, uint64_t epoch) {
  pb::LeaseRef r;
  r.set_task_id(task_id);
  r.set_subtask_index(index);
  r.set_epoch(epoch);
  return r;
}

// One report, inside its own savepoint; the caller adds `delta` on success.
absl::Status ApplyReport(WriteCtx& ctx, TaskCache& tasks, const std::string& worker,
                         const pb::SubtaskReport& r, int64_t now_ms, CounterDelta& delta) {
  const pb::LeaseRef& lease = r.lease();
  if (r.outcome_case() == pb::SubtaskReport::OUTCOME_NOT_SET) {
    return absl::InvalidArgumentError(Cat("reports: the report of subtask ", lease.task_id(), "/",
                                          lease.subtask_index(), " has no outcome"));
  }
  STORE_ASSIGN_OR_RETURN(SubtaskRow row,
                         sqlite::LoadSubtask(ctx.db, lease.task_id(), lease.subtask_index()));
  const std::string name = Cat("subtask ", row.task_id, "/", row.index);
  if (lease.epoch() != row.epoch) {
    return absl::FailedPreconditionError(
        Cat(name, ": lease epoch ", lease.epoch(), " is stale (now ", row.epoch, ")"));
  }
  if (!sqlite::IsActive(row.state) || row.worker != worker) {
    return absl::FailedPreconditionError(
        Cat(name, ": lease epoch ", lease.epoch(), " is not held by ", worker, " (subtask is ",
            StateName(row.state), row.worker.empty() ? "" : Cat(", held by ", row.worker), ")"));
  }
  STORE_ASSIGN_OR_RETURN(const TaskRow* task, tasks.Get(ctx.db, row.task_id));

  SubtaskRow next = row;
  SubtaskEvent event = SubtaskEvent::kSucceeded;
  std::string reason;
  switch (r.outcome_case()) {
    case pb::SubtaskReport::kSucceededResultJson:
      event = SubtaskEvent::kSucceeded;
      next.result_json = r.succeeded_result_json();
      next.progress = row.end - row.begin;
      break;
    case pb::SubtaskReport::kFailedError:
      event = lifecycle::FailureEvent(row.attempt, task->max_attempts, /*permanent=*/false);
      next.error = r.failed_error();
      reason = r.failed_error();
      break;
    case pb::SubtaskReport::kFailedPermanentlyError:
      event = SubtaskEvent::kFailedPermanently;
      next.error = r.failed_permanently_error();
      reason = r.failed_permanently_error();
      break;
    case pb::SubtaskReport::kStopped:
      event = SubtaskEvent::kStopped;
      reason = "stopped";
      break;
    case pb::SubtaskReport::OUTCOME_NOT_SET:
      break;  // refused above
  }
  STORE_ASSIGN_OR_RETURN(lifecycle::SubtaskEdge edge, sqlite::SubtaskEdgeFor(row, event));
  if (edge.to == State::kPreparing) {
    const int64_t delay = RetryDelayMs(*task, row.attempt, ctx.rng);
    next.not_before_ms = now_ms + delay;
    reason = Cat(reason, reason.empty() ? "" : "; ", "retry in ", delay, " ms");
  }
  return sqlite::WriteSubtaskEdge(ctx.db, row, next, edge, event, reason, worker, now_ms, delta);
}

absl::Status Savepoint(Connection& db, std::string_view sql) {
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(sql));
  return q->Run();
}

}  // namespace

namespace sqlite {

absl::Status LeaseSubtasks(Connection& db, const LeaseCandidate& c, uint64_t room,
                           const std::string& worker, int64_t now_ms, int64_t ttl_ms,
                           std::vector<pb::SubtaskLease>& out, CounterDelta& delta) {
  static const std::string kSql = Cat("SELECT ", kSubtaskColumns,
                                      " FROM subtasks WHERE task_id = ?1 AND state = 1 AND "
                                      "not_before_ms <= ?2 ORDER BY not_before_ms, idx LIMIT ?3");
  std::vector<SubtaskRow> rows;
  {
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
    q->BindText(1, c.id);
    q->BindInt(2, now_ms);
    q->BindInt(3, std::min<uint64_t>(room, std::numeric_limits<int64_t>::max()));
    while (true) {
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      rows.push_back(ReadSubtask(*q));
    }
  }
  if (rows.empty()) return absl::OkStatus();
  pb::TaskSpec spec;
  spec.ParseFromString(c.spec);
  for (const SubtaskRow& row : rows) {
    STORE_ASSIGN_OR_RETURN(lifecycle::SubtaskEdge edge, SubtaskEdgeFor(row, SubtaskEvent::kLeased));
    SubtaskRow next = row;
    next.attempt = row.attempt + 1;
    next.epoch = row.epoch + 1;
    next.worker = worker;
    next.lease_expire_ms = now_ms + ttl_ms;
    next.progress = 0;
    STORE_RETURN_IF_ERROR(WriteSubtaskEdge(db, row, next, edge, SubtaskEvent::kLeased,
                                           Cat("leased by ", worker), worker, now_ms, delta));
    pb::SubtaskLease& l = out.emplace_back();
    *l.mutable_lease() = Ref(c.id, row.index, next.epoch);
    l.set_kind(c.kind);
    l.set_begin(row.begin);
    l.set_end(row.end);
    l.set_attempt(next.attempt);
    l.set_params_json(spec.params_json());
    l.set_lease_expire_ms(next.lease_expire_ms);
  }
  return absl::OkStatus();
}

}  // namespace sqlite

absl::StatusOr<AcquireResult> SqliteStore::Acquire(const std::string& worker_id,
                                                   uint32_t max_subtasks, uint32_t max_tasks,
                                                   int64_t now_ms, int64_t ttl_ms) {
  using Out = absl::StatusOr<AcquireResult>;
  return Await<Out>([&](Done<Out> done) {
    AcquireAsync(worker_id, max_subtasks, max_tasks, now_ms, ttl_ms, done);
  });
}

void SqliteStore::AcquireAsync(std::string worker_id_in, uint32_t max_subtasks, uint32_t max_tasks,
                               int64_t now_ms, int64_t ttl_ms,
                               Done<absl::StatusOr<AcquireResult>> done) {
  struct State {
    std::string worker_id;
    AcquireResult out;
  };
  auto st = std::make_shared<State>();
  st->worker_id = std::move(worker_id_in);
  sqlite::WriteOp op = [st, max_subtasks, max_tasks, now_ms,
                        ttl_ms](WriteCtx& ctx) -> absl::Status {
    const std::string& worker_id = st->worker_id;
    AcquireResult& out = st->out;
    out = AcquireResult{};
    Connection& db = ctx.db;
    STORE_ASSIGN_OR_RETURN(std::string kinds, WorkerKinds(db, worker_id));
    sqlite::TaskDeltas deltas;

    if (max_subtasks > 0) {
      std::vector<sqlite::LeaseCandidate> candidates;
      {
        STORE_ASSIGN_OR_RETURN(
            // Only tasks with a subtask waiting in Preparing can lease one
            // (or say when a backoff ends): a busy server has many Running
            // tasks whose subtasks are all out.
            Query q, db.Prepare("SELECT id, kind, spec, parallelism, n_running + n_terminating "
                                "FROM tasks INDEXED BY tasks_runnable WHERE state = 2 AND "
                                "n_preparing > 0 AND kind IN (SELECT value FROM json_each(?1)) "
                                "ORDER BY priority DESC, seq"));
        q->BindText(1, kinds);
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          candidates.push_back(sqlite::LeaseCandidate{q->Text(0), q->Text(1), q->Text(2),
                                                      static_cast<uint32_t>(q->Int(3)), q->Int(4)});
        }
      }
      uint64_t remaining = max_subtasks;
      int64_t next_ready = 0;
      for (const sqlite::LeaseCandidate& c : candidates) {
        if (remaining == 0) break;
        uint64_t room = remaining;
        if (c.parallelism > 0) {
          int64_t free = static_cast<int64_t>(c.parallelism) - c.active;
          room = std::min<uint64_t>(room, free > 0 ? static_cast<uint64_t>(free) : 0);
        }
        if (room == 0) continue;
        const size_t before = out.subtasks.size();
        STORE_RETURN_IF_ERROR(sqlite::LeaseSubtasks(ctx.db, c, room, worker_id, now_ms, ttl_ms,
                                                    out.subtasks, deltas[c.id]));
        const uint64_t got = out.subtasks.size() - before;
        remaining -= got;
        if (got < room) {
          // This task has room but nothing ready: when does a backoff end?
          STORE_ASSIGN_OR_RETURN(
              Query q, db.Prepare("SELECT min(not_before_ms) FROM subtasks WHERE task_id = ?1 "
                                  "AND state = 1 AND not_before_ms > ?2"));
          q->BindText(1, c.id);
          q->BindInt(2, now_ms);
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (row && !q->IsNull(0)) {
            int64_t t = q->Int(0);
            if (next_ready == 0 || t < next_ready) next_ready = t;
          }
        }
      }
      out.next_ready_ms = remaining > 0 ? next_ready : 0;
      STORE_RETURN_IF_ERROR(sqlite::ApplyDeltas(db, deltas, ctx.revision));
    }

    if (max_tasks > 0) {
      // Free leases and expired ones, each from its own index, merged in
      // lease order (higher priority, then older).
      struct Candidate {
        int64_t priority, seq;
        std::string id;
      };
      std::vector<Candidate> found;
      struct Look {
        const char* sql;
        bool expired;  // binds ?2, now
      };
      for (const Look& look :
           {Look{"SELECT priority, seq, id FROM tasks INDEXED BY tasks_unleased WHERE state IN "
                 "(1, 2, 3) AND lease_worker = '' AND kind IN (SELECT value FROM json_each(?1)) "
                 "ORDER BY priority DESC, seq LIMIT ?3",
                 false},
            Look{"SELECT priority, seq, id FROM tasks INDEXED BY tasks_leased WHERE lease_worker "
                 "<> '' AND lease_expire_ms < ?2 AND state IN (1, 2, 3) AND kind IN (SELECT "
                 "value FROM json_each(?1)) ORDER BY priority DESC, seq LIMIT ?3",
                 true}}) {
        STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(look.sql));
        q->BindText(1, kinds);
        if (look.expired) q->BindInt(2, now_ms);
        q->BindInt(3, max_tasks);
        while (true) {
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) break;
          found.push_back(Candidate{q->Int(0), q->Int(1), q->Text(2)});
        }
      }
      std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
        return a.priority != b.priority ? a.priority > b.priority : a.seq < b.seq;
      });
      if (found.size() > max_tasks) found.resize(max_tasks);
      for (const Candidate& c : found) {
        const std::string& id = c.id;
        uint64_t epoch = 0;
        {
          // A lease change is not a change of the task's own state: revision
          // moves (watchers see the reconciler), version does not.
          STORE_ASSIGN_OR_RETURN(
              Query q, db.Prepare("UPDATE tasks SET lease_worker = ?2, lease_epoch = lease_epoch "
                                  "+ 1, lease_expire_ms = ?3, revision = ?4 WHERE id = ?1 "
                                  "RETURNING lease_epoch"));
          q->BindText(1, id);
          q->BindText(2, worker_id);
          q->BindInt(3, now_ms + ttl_ms);
          q->BindInt(4, ctx.revision);
          STORE_ASSIGN_OR_RETURN(bool row, q->Step());
          if (!row) continue;
          epoch = q->Uint(0);
          STORE_RETURN_IF_ERROR(q->Run());
        }
        pb::TaskLease& l = out.tasks.emplace_back();
        STORE_ASSIGN_OR_RETURN(*l.mutable_task(), sqlite::LoadTask(db, id));
        l.set_epoch(epoch);
      }
    }
    return absl::OkStatus();
  };
  WriteAsync(std::shared_ptr<AcquireResult>(st, &st->out), std::move(op), std::move(done));
}

absl::StatusOr<HeartbeatResult> SqliteStore::Heartbeat(const pb::HeartbeatRequest& req,
                                                       int64_t now_ms, int64_t ttl_ms) {
  HeartbeatResult out;
  STORE_RETURN_IF_ERROR(Write([&](WriteCtx& ctx) -> absl::Status {
    out = HeartbeatResult{};
    out.lease_expire_ms = now_ms + ttl_ms;
    Connection& db = ctx.db;
    {
      STORE_ASSIGN_OR_RETURN(
          Query q, db.Prepare("UPDATE workers SET last_heartbeat_ms = ?2, alive = 1, draining = "
                              "?3, slots_in_use = ?4 WHERE id = ?1"));
      q->BindText(1, req.worker_id());
      q->BindInt(2, now_ms);
      q->BindInt(3, req.draining() ? 1 : 0);
      q->BindInt(4, req.slots_in_use());
      STORE_RETURN_IF_ERROR(q->Run());
      if (q->changes() == 0) {
        return absl::NotFoundError(Cat("worker ", req.worker_id(), " not found"));
      }
    }
    for (const pb::SubtaskProgress& sp : req.subtasks()) {
      const pb::LeaseRef& l = sp.lease();
      STORE_ASSIGN_OR_RETURN(
          Query q, db.Prepare("UPDATE subtasks SET lease_expire_ms = ?5, progress = ?6, version "
                              "= version + 1, update_time_ms = ?7 WHERE task_id = ?1 AND idx = "
                              "?2 AND epoch = ?3 AND worker = ?4 AND state IN (2, 3) "
                              "RETURNING state"));
      q->BindText(1, l.task_id());
      q->BindInt(2, l.subtask_index());
      q->BindInt(3, l.epoch());
      q->BindText(4, req.worker_id());
      q->BindInt(5, now_ms + ttl_ms);
      q->BindInt(6, sp.progress());
      q->BindInt(7, now_ms);
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) {
        out.lost.push_back(l);
        continue;
      }
      if (sqlite::StateOf(q->Int(0)) == State::kTerminating) out.stop.push_back(l);
      STORE_RETURN_IF_ERROR(q->Run());
    }
    for (const pb::LeaseRef& l : req.tasks()) {
      STORE_ASSIGN_OR_RETURN(
          Query q, db.Prepare("UPDATE tasks SET lease_expire_ms = ?4 WHERE id = ?1 AND "
                              "lease_worker = ?2 AND lease_epoch = ?3 AND lease_worker <> ''"));
      q->BindText(1, l.task_id());
      q->BindText(2, req.worker_id());
      q->BindInt(3, l.epoch());
      q->BindInt(4, now_ms + ttl_ms);
      STORE_RETURN_IF_ERROR(q->Run());
      if (q->changes() == 0) {
        pb::LeaseRef lost = l;
        lost.set_subtask_index(-1);
        out.lost.push_back(std::move(lost));
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<absl::Status>> SqliteStore::Report(
    const std::string& worker_id, const std::vector<pb::SubtaskReport>& reports, int64_t now_ms) {
  using Out = absl::StatusOr<ReportResult>;
  Out r = Await<Out>(
      [&](Done<Out> done) { ReportAsync(worker_id, reports, now_ms, SnapshotAsk{}, done); });
  if (!r.ok()) return r.status();
  return std::move(r->statuses);
}

void SqliteStore::ReportAsync(std::string worker_id, std::vector<pb::SubtaskReport> reports,
                              int64_t now_ms, SnapshotAsk ask,
                              Done<absl::StatusOr<ReportResult>> done) {
  struct State {
    std::string worker_id;
    std::vector<pb::SubtaskReport> reports;
    SnapshotAsk ask;
    ReportResult out;
  };
  auto st = std::make_shared<State>();
  st->worker_id = std::move(worker_id);
  st->reports = std::move(reports);
  st->ask = std::move(ask);
  sqlite::WriteOp op = [st, now_ms](WriteCtx& ctx) -> absl::Status {
    const auto& reports = st->reports;
    std::vector<absl::Status>& statuses = st->out.statuses;
    statuses.assign(reports.size(), absl::OkStatus());
    Connection& db = ctx.db;
    TaskCache tasks;
    sqlite::TaskDeltas deltas;
    for (size_t i = 0; i < reports.size(); ++i) {
      STORE_RETURN_IF_ERROR(Savepoint(db, "SAVEPOINT report"));
      CounterDelta delta;
      absl::Status s = ApplyReport(ctx, tasks, st->worker_id, reports[i], now_ms, delta);
      if (!db.in_transaction()) return s.ok() ? absl::UnavailableError("store: rolled back") : s;
      if (s.ok()) {
        STORE_RETURN_IF_ERROR(Savepoint(db, "RELEASE report"));
        deltas[reports[i].lease().task_id()].Add(delta);
      } else {
        STORE_RETURN_IF_ERROR(Savepoint(db, "ROLLBACK TO report"));
        STORE_RETURN_IF_ERROR(Savepoint(db, "RELEASE report"));
      }
      statuses[i] = std::move(s);
    }
    STORE_RETURN_IF_ERROR(sqlite::ApplyDeltas(db, deltas, ctx.revision));
    // The snapshots, as the reports leave the tasks (nothing after this op
    // in the batch is seen: a snapshot is a committed state, not the last).
    const SnapshotAsk& ask = st->ask;
    auto& snapshots = st->out.snapshots;
    snapshots.assign(ask.task_ids.size(), std::nullopt);
    const uint32_t up_to = std::min(ask.results_up_to, kWriterSnapshotResults);
    for (size_t i = 0; i < ask.task_ids.size() && i < kWriterSnapshots; ++i) {
      auto snap = sqlite::LoadTaskSnapshot(db, ask.task_ids[i], up_to);
      if (absl::IsNotFound(snap.status())) {
        snapshots[i].emplace();
        continue;
      }
      if (!snap.ok()) continue;  // left to the caller's read
      // Results the caller asked for and this read did not bring: its turn.
      if (!snap->results_complete() &&
          sqlite::ResultsDue(snap->task().counts(), ask.results_up_to)) {
        continue;
      }
      snapshots[i] = std::move(*snap);
    }
    return absl::OkStatus();
  };
  WriteAsync(std::shared_ptr<ReportResult>(st, &st->out), std::move(op), std::move(done));
}

absl::Status SqliteStore::ReleaseTask(const std::string& worker_id, const std::string& task_id,
                                      uint64_t epoch) {
  return Write([&](WriteCtx& ctx) -> absl::Status {
    STORE_ASSIGN_OR_RETURN(TaskRow task, sqlite::LoadTaskRow(ctx.db, task_id));
    // Releasing a lease already released at this epoch is a no-op (a retried
    // call); one taken over since is refused.
    if (task.lease_worker.empty() && task.lease_epoch == epoch) return absl::OkStatus();
    STORE_RETURN_IF_ERROR(sqlite::CheckTaskLease(task, worker_id, epoch));
    STORE_ASSIGN_OR_RETURN(
        Query q, ctx.db.Prepare("UPDATE tasks SET lease_worker = '', lease_expire_ms = 0, "
                                "revision = ?2 WHERE id = ?1"));
    q->BindText(1, task_id);
    q->BindInt(2, ctx.revision);
    return q->Run();
  });
}

absl::StatusOr<ExpireResult> SqliteStore::ExpireLeases(int64_t now_ms, int64_t worker_ttl_ms) {
  ExpireResult out;
  // Nothing has expired in almost every sweep: look first on a read
  // connection (three index probes), so an idle server commits nothing.
  auto due = Read<absl::StatusOr<bool>>([&](Connection& db) -> absl::StatusOr<bool> {
    STORE_ASSIGN_OR_RETURN(
        Query q,
        db.Prepare("SELECT EXISTS(SELECT 1 FROM subtasks INDEXED BY subtasks_leased "
                   "WHERE state IN (2, 3) AND lease_expire_ms < ?1) "
                   "OR EXISTS(SELECT 1 FROM tasks WHERE lease_worker <> '' AND "
                   "lease_expire_ms < ?1) "
                   "OR EXISTS(SELECT 1 FROM workers WHERE alive = 1 AND last_heartbeat_ms < ?2)"));
    q->BindInt(1, now_ms);
    q->BindInt(2, now_ms - worker_ttl_ms);
    STORE_ASSIGN_OR_RETURN(bool row, q->Step());
    return row && q->Int(0) != 0;
  });
  if (!due.ok()) return due.status();
  if (!*due) return out;
  STORE_RETURN_IF_ERROR(Write([&](WriteCtx& ctx) -> absl::Status {
    out = ExpireResult{};
    Connection& db = ctx.db;
    std::vector<SubtaskRow> rows;
    {
      static const std::string kSql =
          Cat("SELECT ", sqlite::kSubtaskColumns,
              " FROM subtasks WHERE state IN (2, 3) AND lease_expire_ms < ?1 "
              "ORDER BY lease_expire_ms LIMIT ?2");
      STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
      q->BindInt(1, now_ms);
      q->BindInt(2, kMaxExpiredPerSweep);
      while (true) {
        STORE_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        rows.push_back(sqlite::ReadSubtask(*q));
      }
    }
    TaskCache tasks;
    sqlite::TaskDeltas deltas;
    for (const SubtaskRow& row : rows) {
      STORE_ASSIGN_OR_RETURN(const TaskRow* task, tasks.Get(db, row.task_id));
      const SubtaskEvent event =
          lifecycle::LeaseExpiryEvent(row.state, row.attempt, task->max_attempts);
      STORE_ASSIGN_OR_RETURN(lifecycle::SubtaskEdge edge, sqlite::SubtaskEdgeFor(row, event));
      SubtaskRow next = row;
      std::string reason = Cat("lease expired (worker ", row.worker, ")");
      if (row.state == State::kRunning) next.error = reason;  // a failed attempt
      if (edge.to == State::kPreparing) {
        const int64_t delay = RetryDelayMs(*task, row.attempt, ctx.rng);
        next.not_before_ms = now_ms + delay;
        reason = Cat(reason, "; retry in ", delay, " ms");
      }
      STORE_RETURN_IF_ERROR(sqlite::WriteSubtaskEdge(db, row, next, edge, event, reason, "server",
                                                     now_ms, deltas[row.task_id]));
      ++out.subtasks_expired;
    }
    STORE_RETURN_IF_ERROR(sqlite::ApplyDeltas(db, deltas, ctx.revision));
    {
      STORE_ASSIGN_OR_RETURN(
          Query q, db.Prepare("UPDATE tasks SET lease_worker = '', lease_expire_ms = 0, "
                              "revision = ?2 WHERE lease_worker <> '' AND lease_expire_ms < ?1"));
      q->BindInt(1, now_ms);
      q->BindInt(2, ctx.revision);
      STORE_RETURN_IF_ERROR(q->Run());
      out.task_leases_expired = static_cast<uint64_t>(q->changes());
    }
    {
      STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("UPDATE workers SET alive = 0 WHERE alive = 1 AND "
                                                 "last_heartbeat_ms < ?1"));
      q->BindInt(1, now_ms - worker_ttl_ms);
      STORE_RETURN_IF_ERROR(q->Run());
      out.workers_expired = static_cast<uint64_t>(q->changes());
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace orchard::store
