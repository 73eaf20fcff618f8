// SqliteStore: task writes — submit, the checked task transition (with
// planning, finalising and retry), and Terminating's StopSubtasks.
//
// Thread-safety: any thread; each write is one operation on the writer thread
// (see writer.h), so its checks and its writes are one transaction.
#include <optional>

#include "common/lifecycle/subtask.h"
#include "common/lifecycle/task.h"
#include "common/split.h"
#include "common/strcat.h"
#include "common/util.h"
#include "server/store/rows.h"
#include "server/store/spec_diff.h"
#include "server/store/sqlite_store.h"

namespace orchard::store {

using sqlite::Connection;
using sqlite::CounterDelta;
using sqlite::Query;
using sqlite::SubtaskRow;
using sqlite::TaskRow;
using sqlite::WriteCtx;

namespace {

// Subtasks are moved in chunks so a task of a million never needs them all in
// memory at once.
constexpr int64_t kChunk = 10'000;

absl::StatusOr<std::optional<pb::Task>> FindByRequestId(Connection& db,
                                                        std::string_view request_id) {
  static const std::string kSql = Cat("SELECT ", sqlite::kTaskColumns,
                                      " FROM tasks WHERE request_id = ?1 AND request_id <> ''");
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
  q->BindText(1, request_id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return std::optional<pb::Task>();
  pb::Task t;
  sqlite::ReadTask(*q, &t);
  return std::optional<pb::Task>(std::move(t));
}

absl::StatusOr<pb::TaskSpec> LoadSpec(Connection& db, std::string_view id) {
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT spec FROM tasks WHERE id = ?1"));
  q->BindText(1, id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return sqlite::TaskNotFound(id);
  pb::TaskSpec spec;
  std::string_view blob = q->View(0);
  if (!spec.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::InternalError(Cat("task ", id, ": stored spec does not parse"));
  }
  return spec;
}

constexpr uint64_t kInsertRows = 64;

// "INSERT INTO subtasks ... VALUES (?1, ?3, ?4, ?5, ?2), (?1, ?6, ?7, ?8, ?2), ..."
// with `rows` rows: ?1 task id, ?2 time, then index, begin, end per row.
const std::string& InsertSql(uint64_t rows = kInsertRows) {
  auto make = [](uint64_t n) {
    std::string sql =
        "INSERT INTO subtasks(task_id, idx, item_begin, item_end, update_time_ms) VALUES ";
    for (uint64_t r = 0; r < n; ++r) {
      const uint64_t p = 3 + 3 * r;
      sql += Cat(r == 0 ? "" : ", ", "(?1, ?", p, ", ?", p + 1, ", ?", p + 2, ", ?2)");
    }
    return sql;
  };
  static const std::string kMany = make(kInsertRows);
  static const std::string kOne = make(1);
  return rows == 1 ? kOne : kMany;
}

// Writes the subtasks of a plan, all in Preparing, with prepared INSERTs of 64
// rows reused (one step per 64 rows);
// creation is not a transition, so no history row per subtask.
absl::StatusOr<uint64_t> InsertSubtasks(Connection& db, const TaskRow& task,
                                        const pb::TaskSpec& spec, const pb::Plan& plan,
                                        int64_t now_ms, CounterDelta& delta) {
  std::optional<UniformSplit> split;
  const std::vector<uint64_t> bounds(plan.bounds().begin(), plan.bounds().end());
  if (plan.uniform()) {
    absl::StatusOr<UniformSplit> s =
        spec.split().has_chunk()
            ? UniformSplit::ByChunk(spec.begin(), spec.end(), spec.split().chunk())
            : UniformSplit::BySubtasks(spec.begin(), spec.end(),
                                       spec.split().has_subtasks() ? spec.split().subtasks() : 1);
    if (!s.ok()) return s.status();
    split = *s;
  } else {
    STORE_RETURN_IF_ERROR(ValidateBounds(bounds, spec.begin(), spec.end()));
  }
  const uint64_t n = split ? split->count() : bounds.size() - 1;

  auto slice = [&](uint64_t i) { return split ? split->At(i) : Slice{bounds[i], bounds[i + 1]}; };
  uint64_t items = 0;
  uint64_t i = 0;
  // Rows go kInsertRows per statement (one step and one cursor setup for many
  // rows), then one at a time for the rest.
  for (const auto& [sql, rows] : {std::pair<const std::string&, uint64_t>{InsertSql(), kInsertRows},
                                  std::pair<const std::string&, uint64_t>{InsertSql(1), 1}}) {
    if (n - i < rows) continue;
    STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(sql));
    q->BindText(1, task.id);
    q->BindInt(2, now_ms);
    for (; n - i >= rows; i += rows) {
      for (uint64_t r = 0; r < rows; ++r) {
        const Slice s = slice(i + r);
        const int p = 3 + 3 * static_cast<int>(r);
        q->BindInt(p, i + r);
        q->BindInt(p + 1, s.begin);
        q->BindInt(p + 2, s.end);
        items += s.end - s.begin;
      }
      STORE_ASSIGN_OR_RETURN(bool row, q->Step());
      (void)row;
      q->Rewind();  // keeps the bindings; every one is set again next round
    }
  }
  delta.total += static_cast<int64_t>(n);
  delta.by_state[static_cast<int>(State::kPreparing)] += static_cast<int64_t>(n);
  delta.items_total += static_cast<int64_t>(items);
  return n;
}

// RetryRequested's side effect: every Error subtask and every Terminated one
// with outcome CANCELLED goes back to Preparing with attempt 0.
absl::StatusOr<uint64_t> ResetFailedSubtasks(Connection& db, const TaskRow& task,
                                             uint32_t generation, std::string_view actor,
                                             int64_t now_ms, CounterDelta& delta) {
  static const std::string kSql =
      Cat("SELECT ", sqlite::kSubtaskColumns,
          " FROM subtasks WHERE task_id = ?1 AND idx > ?2 AND (state = 4 OR (state = 5 AND "
          "outcome = 2)) ORDER BY idx LIMIT ?3");
  const std::string reason = Cat("task retry (generation ", generation, ")");
  uint64_t moved = 0;
  int64_t after = -1;
  while (true) {
    std::vector<SubtaskRow> rows;
    {
      STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
      q->BindText(1, task.id);
      q->BindInt(2, after);
      q->BindInt(3, kChunk);
      while (true) {
        STORE_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        rows.push_back(sqlite::ReadSubtask(*q));
      }
    }
    if (rows.empty()) return moved;
    for (const SubtaskRow& row : rows) {
      STORE_ASSIGN_OR_RETURN(lifecycle::SubtaskEdge edge,
                             sqlite::SubtaskEdgeFor(row, lifecycle::SubtaskEvent::kRetryRequested));
      SubtaskRow next = row;
      next.attempt = 0;
      next.not_before_ms = 0;
      next.progress = 0;
      next.result_json.clear();  // the last error stays until the next attempt reports
      STORE_RETURN_IF_ERROR(sqlite::WriteSubtaskEdge(db, row, next, edge,
                                                     lifecycle::SubtaskEvent::kRetryRequested,
                                                     reason, actor, now_ms, delta));
      ++moved;
    }
    after = rows.back().index;
  }
}

}  // namespace

namespace {

// A new task's rows: the task, its labels and its Created history row. With
// a request_id already stored, that task instead (created = false).
// The answer to a submit whose request_id names `existing`: that task when
// the spec is the same; a different spec is a mistake (a reused key, an
// edited script), refused rather than answered with a task that is not the
// one asked for.
absl::StatusOr<SubmitResult> Resubmitted(pb::Task existing, const pb::TaskSpec& spec) {
  if (auto field = FirstSpecDifference(existing.spec(), spec)) {
    return absl::AlreadyExistsError(Cat("request_id: '", spec.request_id(),
                                        "' was used for task ", existing.id(),
                                        " with a different spec (", *field,
                                        " differs); use a new request_id"));
  }
  return SubmitResult{std::move(existing), false};
}

absl::Status WriteNewTask(WriteCtx& ctx, const pb::TaskSpec& spec, const std::string& id,
                          int64_t now_ms, SubmitResult& out) {
  const std::string& request_id = spec.request_id();
  if (!request_id.empty()) {
    // Checked in the transaction: two submits of one request_id may both
    // have missed a read before; the writer runs them one after the other.
    STORE_ASSIGN_OR_RETURN(std::optional<pb::Task> existing, FindByRequestId(ctx.db, request_id));
    if (existing) {
      STORE_ASSIGN_OR_RETURN(out, Resubmitted(std::move(*existing), spec));
      return absl::OkStatus();
    }
  }
  const pb::TaskPolicy& p = spec.policy();
  const std::string blob = spec.SerializeAsString();  // bound, not copied: outlives the step
  {
    STORE_ASSIGN_OR_RETURN(
        Query q,
        ctx.db.Prepare("INSERT INTO tasks(id, request_id, kind, spec, priority, parallelism, "
                       "max_attempts, backoff_initial_ms, backoff_max_ms, state, version, "
                       "revision, create_time_ms, update_time_ms) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, 1, ?10, ?11, ?11)"));
    q->BindText(1, id);
    q->BindText(2, request_id);
    q->BindText(3, spec.kind());
    q->BindBlob(4, blob);
    q->BindInt(5, p.priority());
    q->BindInt(6, p.parallelism());
    q->BindInt(7, p.max_attempts() == 0 ? 3 : p.max_attempts());
    q->BindInt(8, p.backoff_initial_ms() == 0 ? 500 : p.backoff_initial_ms());
    q->BindInt(9, p.backoff_max_ms() == 0 ? 30'000 : p.backoff_max_ms());
    q->BindInt(10, ctx.revision);
    q->BindInt(11, now_ms);
    STORE_RETURN_IF_ERROR(q->Run());
  }
  for (const auto& [key, value] : spec.labels()) {
    STORE_ASSIGN_OR_RETURN(
        Query q,
        ctx.db.Prepare("INSERT INTO task_labels(task_id, key, value) VALUES (?1, ?2, ?3)"));
    q->BindText(1, id);
    q->BindText(2, key);
    q->BindText(3, value);
    STORE_RETURN_IF_ERROR(q->Run());
  }
  STORE_RETURN_IF_ERROR(
      sqlite::InsertHistory(ctx.db, sqlite::HistoryRow{.task_id = id,
                                                       .subtask_index = -1,
                                                       .from = 0,
                                                       .to = static_cast<int>(State::kPreparing),
                                                       .event = "Created",
                                                       .reason = "submitted",
                                                       .actor = "client",
                                                       .time_ms = now_ms,
                                                       .version = 1,
                                                       .attempt = 0}));
  STORE_ASSIGN_OR_RETURN(out.task, sqlite::LoadTask(ctx.db, id));
  out.created = true;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SubmitResult> SqliteStore::CreateTask(const pb::TaskSpec& spec, int64_t now_ms) {
  const std::string& request_id = spec.request_id();
  if (!request_id.empty()) {
    // A resubmission needs no write at all.
    auto found = Read<absl::StatusOr<std::optional<pb::Task>>>(
        [&](Connection& db) { return FindByRequestId(db, request_id); });
    if (!found.ok()) return found.status();
    if (found->has_value()) return Resubmitted(std::move(**found), spec);
  }
  return Await<absl::StatusOr<SubmitResult>>(
      [&](Done<absl::StatusOr<SubmitResult>> done) { CreateTaskAsync(spec, now_ms, done); });
}

void SqliteStore::CreateTaskAsync(const pb::TaskSpec& spec, int64_t now_ms,
                                  Done<absl::StatusOr<SubmitResult>> done) {
  struct State {
    pb::TaskSpec spec;
    std::string id;
    SubmitResult out;
  };
  auto st = std::make_shared<State>();
  st->spec = spec;
  st->id = NewId("t-");
  sqlite::WriteOp op = [st, now_ms](WriteCtx& ctx) {
    return WriteNewTask(ctx, st->spec, st->id, now_ms, st->out);
  };
  WriteAsync(std::shared_ptr<SubmitResult>(st, &st->out), std::move(op), std::move(done));
}

namespace {

// One task transition (and, with then_finalize, its Finalized) as one
// write operation; `out` is the task as written.
absl::Status ApplyTaskTransition(WriteCtx& ctx, const TaskTransition& first, int64_t now_ms,
                                 TransitionResult& out) {
  using lifecycle::TaskEvent;
  Connection& db = ctx.db;
  // One transition of the task, checked and written with its history row.
  auto apply = [&](const TaskTransition& t) -> absl::Status {
    STORE_ASSIGN_OR_RETURN(TaskRow task, sqlite::LoadTaskRow(db, t.task_id));
    if (t.expected_version != 0 && t.expected_version != task.version) {
      return absl::AbortedError(Cat("task ", task.id, " changed: version ", task.version,
                                    ", expected ", t.expected_version));
    }
    if (!t.lease_worker.empty()) {
      STORE_RETURN_IF_ERROR(sqlite::CheckTaskLease(task, t.lease_worker, t.lease_epoch));
    }
    absl::StatusOr<State> to = lifecycle::NextTaskState(task.state, t.event);
    if (!to.ok()) {
      return absl::FailedPreconditionError(
          Cat("task ", task.id, ": ", std::string(to.status().message())));
    }
    const std::string actor = t.actor.empty() ? std::string("client") : t.actor;
    Outcome outcome = task.outcome;
    std::string result_json = task.result_json;
    std::string history_reason = t.reason;
    uint32_t generation = task.generation;
    int64_t finish_time_ms = task.finish_time_ms;
    CounterDelta delta;

    switch (t.event) {
      case TaskEvent::kPlanned:
        if (t.plan.has_value()) {
          if (task.total > 0) {
            return absl::FailedPreconditionError(
                Cat("task ", task.id, ": already has ", task.total,
                    " subtasks; Planned with a plan needs a task without subtasks"));
          }
          STORE_ASSIGN_OR_RETURN(pb::TaskSpec spec, LoadSpec(db, task.id));
          STORE_ASSIGN_OR_RETURN(uint64_t n,
                                 InsertSubtasks(db, task, spec, *t.plan, now_ms, delta));
          history_reason = Cat("planned ", Count(n, "subtask"), t.reason.empty() ? "" : "; ", t.reason);
        } else if (task.total == 0) {
          return absl::FailedPreconditionError(
              Cat("task ", task.id,
                  ": Planned without a plan needs existing subtasks (a "
                  "retry), and the task has none"));
        }
        break;
      case TaskEvent::kInvalid:
        outcome = Outcome::kFailed;
        break;
      case TaskEvent::kFinalized:
      case TaskEvent::kFinalizedFailed:
        if (task.running + task.terminating > 0) {
          return absl::FailedPreconditionError(Cat("task ", task.id, ": cannot finalise while ",
                                                   task.running, " running and ", task.terminating,
                                                   " terminating subtasks remain"));
        }
        if (t.event == TaskEvent::kFinalizedFailed) {
          if (t.outcome != Outcome::kNone && t.outcome != Outcome::kFailed) {
            return absl::InvalidArgumentError(
                Cat("outcome: FinalizedFailed takes FAILED, not ", OutcomeName(t.outcome)));
          }
          outcome = Outcome::kFailed;
        } else if (t.outcome == Outcome::kFailed) {
          return absl::InvalidArgumentError(
              "outcome: Finalized takes SUCCEEDED or CANCELLED (use FinalizedFailed)");
        } else if (t.outcome == Outcome::kNone) {
          // Not said: SUCCEEDED only when every subtask succeeded (a task
          // cancelled before it was planned has none, and was cancelled).
          outcome = task.total > 0 && task.succeeded == task.total ? Outcome::kSucceeded
                                                                   : Outcome::kCancelled;
        } else {
          outcome = t.outcome;
        }
        result_json = t.result_json;
        break;
      case TaskEvent::kRetryRequested: {
        generation = task.generation + 1;
        STORE_ASSIGN_OR_RETURN(uint64_t n,
                               ResetFailedSubtasks(db, task, generation, actor, now_ms, delta));
        history_reason = Cat("retrying ", Count(n, "subtask"), t.reason.empty() ? "" : "; ", t.reason);
        outcome = Outcome::kNone;
        result_json.clear();
        finish_time_ms = 0;
        break;
      }
      case TaskEvent::kCancelRequested:
      case TaskEvent::kAllSucceeded:
      case TaskEvent::kBudgetExceeded:
      case TaskEvent::kDeadlineExceeded:
        break;
    }
    const int64_t start_time_ms =
        (*to == State::kRunning && task.start_time_ms == 0) ? now_ms : task.start_time_ms;
    if (IsTerminal(*to)) finish_time_ms = now_ms;
    const uint64_t version = task.version + 1;
    {
      STORE_ASSIGN_OR_RETURN(
          Query q,
          // A terminal task needs no reconciler: its lease ends with it, so
          // the reconciler need not release it in another write.
          db.Prepare("UPDATE tasks SET state = ?3, outcome = ?4, reason = ?5, result_json = ?6, "
                     "version = ?7, revision = ?8, update_time_ms = ?9, start_time_ms = ?10, "
                     "finish_time_ms = ?11, generation = ?12, "
                     "lease_worker = CASE WHEN ?13 THEN '' ELSE lease_worker END, "
                     "lease_expire_ms = CASE WHEN ?13 THEN 0 ELSE lease_expire_ms END "
                     "WHERE id = ?1 AND version = ?2"));
      q->BindText(1, task.id);
      q->BindInt(2, task.version);
      q->BindInt(3, static_cast<int>(*to));
      q->BindInt(4, static_cast<int>(outcome));
      q->BindText(5, t.reason);
      q->BindText(6, result_json);
      q->BindInt(7, version);
      q->BindInt(8, ctx.revision);
      q->BindInt(9, now_ms);
      q->BindInt(10, start_time_ms);
      q->BindInt(11, finish_time_ms);
      q->BindInt(12, generation);
      q->BindInt(13, IsTerminal(*to) ? 1 : 0);
      STORE_RETURN_IF_ERROR(q->Run());
      if (q->changes() != 1) {
        return absl::AbortedError(
            Cat("task ", task.id, " changed: expected version ", task.version));
      }
    }
    STORE_RETURN_IF_ERROR(
        sqlite::InsertHistory(db, sqlite::HistoryRow{.task_id = task.id,
                                                     .subtask_index = -1,
                                                     .from = static_cast<int>(task.state),
                                                     .to = static_cast<int>(*to),
                                                     .event = lifecycle::TaskEventName(t.event),
                                                     .reason = history_reason,
                                                     .actor = actor,
                                                     .time_ms = now_ms,
                                                     .version = version,
                                                     .attempt = generation}));
    STORE_RETURN_IF_ERROR(
        sqlite::ApplyDeltas(db, sqlite::TaskDeltas{{task.id, delta}}, ctx.revision));
    return absl::OkStatus();
  };
  if (first.then_finalize && first.event != TaskEvent::kAllSucceeded) {
    return absl::InvalidArgumentError("then_finalize: only with AllSucceeded");
  }
  if (first.lease_subtasks > 0 &&
      (first.event != TaskEvent::kPlanned || first.lease_worker.empty())) {
    return absl::InvalidArgumentError("lease_subtasks: only with Planned, by a reconciler");
  }
  STORE_RETURN_IF_ERROR(apply(first));
  if (first.then_finalize) {
    // The same write carries the task on through Terminating (both rows
    // in its history), under the Finalized guard: no subtask active.
    TaskTransition next = first;
    next.expected_version = 0;
    next.event = TaskEvent::kFinalized;
    next.plan.reset();
    next.then_finalize = false;
    STORE_RETURN_IF_ERROR(apply(next));
  }
  out.subtasks.clear();
  if (first.lease_subtasks > 0) {
    // The planner's free slots take the first slices in this same write, as
    // its Acquire would have a moment later (parallelism holds).
    STORE_ASSIGN_OR_RETURN(TaskRow task, sqlite::LoadTaskRow(db, first.task_id));
    uint64_t room = first.lease_subtasks;
    const int64_t active = task.running + task.terminating;
    if (task.parallelism > 0) {
      room = std::min<uint64_t>(
          room, static_cast<uint64_t>(std::max<int64_t>(task.parallelism - active, 0)));
    }
    if (task.state == State::kRunning && room > 0) {
      sqlite::LeaseCandidate c{task.id, task.kind, "", task.parallelism, active};
      {
        STORE_ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT spec FROM tasks WHERE id = ?1"));
        q->BindText(1, task.id);
        STORE_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) return sqlite::TaskNotFound(task.id);
        c.spec = q->Text(0);
      }
      CounterDelta delta;
      STORE_RETURN_IF_ERROR(sqlite::LeaseSubtasks(db, c, room, first.lease_worker, now_ms,
                                                  first.lease_ttl_ms, out.subtasks, delta));
      STORE_RETURN_IF_ERROR(
          sqlite::ApplyDeltas(db, sqlite::TaskDeltas{{task.id, delta}}, ctx.revision));
    }
  }
  STORE_ASSIGN_OR_RETURN(out.task, sqlite::LoadTask(db, first.task_id));
  return absl::OkStatus();
}

// The blocking forms answer no leases, so they take no lease_subtasks.
absl::Status RefuseLeases(const TaskTransition& t) {
  if (t.lease_subtasks == 0) return absl::OkStatus();
  return absl::InvalidArgumentError("lease_subtasks: only in TransitionTasksAsync");
}

}  // namespace

absl::StatusOr<pb::Task> SqliteStore::TransitionTask(const TaskTransition& t, int64_t now_ms) {
  STORE_RETURN_IF_ERROR(RefuseLeases(t));
  TransitionResult out;
  STORE_RETURN_IF_ERROR(
      Write([&](WriteCtx& ctx) { return ApplyTaskTransition(ctx, t, now_ms, out); }));
  return std::move(out.task);
}

std::vector<absl::StatusOr<pb::Task>> SqliteStore::TransitionTasks(
    const std::vector<TaskTransition>& ts, int64_t now_ms) {
  for (const auto& t : ts) {
    if (auto s = RefuseLeases(t); !s.ok())
      return std::vector<absl::StatusOr<pb::Task>>(ts.size(), s);
  }
  using Out = std::vector<absl::StatusOr<TransitionResult>>;
  Out results = Await<Out>([&](Done<Out> done) { TransitionTasksAsync(ts, now_ms, done); });
  std::vector<absl::StatusOr<pb::Task>> out;
  out.reserve(results.size());
  for (auto& r : results) {
    if (r.ok()) {
      out.emplace_back(std::move(r->task));
    } else {
      out.emplace_back(r.status());
    }
  }
  return out;
}

void SqliteStore::TransitionTasksAsync(std::vector<TaskTransition> ts, int64_t now_ms,
                                       Done<std::vector<absl::StatusOr<TransitionResult>>> done) {
  struct State {
    std::vector<TaskTransition> ts;
    std::vector<TransitionResult> tasks;
  };
  auto st = std::make_shared<State>();
  st->ts = std::move(ts);
  st->tasks.resize(st->ts.size());
  std::vector<sqlite::WriteOp> ops;
  ops.reserve(st->ts.size());
  for (size_t i = 0; i < st->ts.size(); ++i) {
    ops.push_back([st, i, now_ms](WriteCtx& ctx) {
      return ApplyTaskTransition(ctx, st->ts[i], now_ms, st->tasks[i]);
    });
  }
  writer_->RunAllAsync(std::move(ops), [st, done = std::move(done)](std::vector<absl::Status> s) {
    std::vector<absl::StatusOr<TransitionResult>> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i].ok()) {
        out.emplace_back(std::move(st->tasks[i]));
      } else {
        out.emplace_back(std::move(s[i]));
      }
    }
    done(std::move(out));
  });
}

absl::StatusOr<StopResult> SqliteStore::StopSubtasks(const std::string& task_id,
                                                     const std::string& lease_worker,
                                                     uint64_t lease_epoch,
                                                     const std::string& reason, int64_t now_ms,
                                                     const std::string& actor_name) {
  using lifecycle::SubtaskEvent;
  // In bounded steps: each write stops at most kStopBatch waiting subtasks,
  // and the next write waits its turn behind what others queued meanwhile,
  // so cancelling a task of millions of subtasks never holds the writer for
  // long (submits, heartbeats and leases interleave) and no write's
  // transaction grows with the task (issue 19). The running ones are told
  // to stop in the first step. Each step is idempotent on its own.
  StopResult total;
  for (bool first = true;; first = false) {
  StopResult out;
  STORE_RETURN_IF_ERROR(Write([&](WriteCtx& ctx) -> absl::Status {
    out = StopResult{};
    Connection& db = ctx.db;
    STORE_ASSIGN_OR_RETURN(TaskRow task, sqlite::LoadTaskRow(db, task_id));
    if (task.state != State::kTerminating) {
      return absl::FailedPreconditionError(Cat("task ", task.id, " is ", StateName(task.state),
                                               ", not Terminating: nothing to stop"));
    }
    if (!lease_worker.empty()) {
      STORE_RETURN_IF_ERROR(sqlite::CheckTaskLease(task, lease_worker, lease_epoch));
    }
    const std::string actor = !actor_name.empty()     ? actor_name
                              : lease_worker.empty() ? std::string("client")
                                                     : lease_worker;
    const std::string why = reason.empty() ? std::string("task is terminating") : reason;
    CounterDelta delta;

    // Waiting subtasks never ran: Terminated/CANCELLED. Every one takes the
    // same edge (Preparing, CancelRequested), checked once here; the rows and
    // their history rows are then written set-wise, which keeps cancelling a
    // task of a million subtasks to a few seconds of the writer.
    {
      STORE_ASSIGN_OR_RETURN(
          lifecycle::SubtaskEdge edge,
          lifecycle::NextSubtask(State::kPreparing, SubtaskEvent::kCancelRequested));
      {
        STORE_ASSIGN_OR_RETURN(
            Query q,
            db.Prepare("INSERT INTO history(task_id, subtask_index, from_state, to_state, event, "
                       "reason, actor, time_ms, version, attempt) SELECT task_id, idx, 1, ?2, ?3, "
                       "?4, ?5, ?6, version + 1, attempt FROM subtasks INDEXED BY "
                       "subtasks_runnable WHERE task_id = ?1 AND state = 1 LIMIT ?7"));
        q->BindText(1, task.id);
        q->BindInt(2, static_cast<int>(edge.to));
        q->BindText(3, lifecycle::SubtaskEventName(SubtaskEvent::kCancelRequested));
        q->BindText(4, why);
        q->BindText(5, actor);
        q->BindInt(6, now_ms);
        q->BindInt(7, kStopBatch);
        STORE_RETURN_IF_ERROR(q->Run());
      }
      // The same rows as the history rows above: the same index walk, in
      // the same transaction, with the same limit.
      STORE_ASSIGN_OR_RETURN(
          Query q, db.Prepare("UPDATE subtasks SET state = ?2, "
                              "outcome = ?3, version = version + 1, update_time_ms = ?4 "
                              "WHERE task_id = ?1 AND state = 1 AND idx IN (SELECT idx FROM "
                              "subtasks INDEXED BY subtasks_runnable WHERE task_id = ?1 AND "
                              "state = 1 LIMIT ?5)"));
      q->BindInt(5, kStopBatch);
      q->BindText(1, task.id);
      q->BindInt(2, static_cast<int>(edge.to));
      q->BindInt(3, static_cast<int>(edge.outcome));
      q->BindInt(4, now_ms);
      STORE_RETURN_IF_ERROR(q->Run());
      out.stopped = static_cast<uint64_t>(q->changes());
      CounterDelta one;
      one.Move(State::kPreparing, Outcome::kNone, edge.to, edge.outcome, 0);
      for (int i = 0; i < 6; ++i) delta.by_state[i] += one.by_state[i] * q->changes();
      delta.cancelled += one.cancelled * q->changes();
      delta.succeeded += one.succeeded * q->changes();
    }

    // Running subtasks: the worker is told to stop (heartbeat's stop list).
    if (!first) return sqlite::ApplyDeltas(db, sqlite::TaskDeltas{{task.id, delta}}, ctx.revision);
    static const std::string kActive =
        Cat("SELECT ", sqlite::kSubtaskColumns,
            " FROM subtasks INDEXED BY subtasks_leased WHERE state IN (2, 3) AND task_id = ?1");
    std::vector<SubtaskRow> running;
    {
      STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kActive));
      q->BindText(1, task.id);
      while (true) {
        STORE_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        SubtaskRow r = sqlite::ReadSubtask(*q);
        if (r.state == State::kRunning) running.push_back(std::move(r));
      }
    }
    for (const SubtaskRow& row : running) {
      STORE_ASSIGN_OR_RETURN(lifecycle::SubtaskEdge edge,
                             sqlite::SubtaskEdgeFor(row, SubtaskEvent::kCancelRequested));
      SubtaskRow next = row;
      STORE_RETURN_IF_ERROR(sqlite::WriteSubtaskEdge(
          db, row, next, edge, SubtaskEvent::kCancelRequested, why, actor, now_ms, delta));
      ++out.terminating;
    }
    return sqlite::ApplyDeltas(db, sqlite::TaskDeltas{{task.id, delta}}, ctx.revision);
  }));
  total.stopped += out.stopped;
  total.terminating += out.terminating;
  if (out.stopped < kStopBatch) return total;
  }
}

}  // namespace orchard::store
