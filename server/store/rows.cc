// Row codecs and the shared checked writes of the SQLite store.
// Thread-safety: see rows.h.
#include "server/store/rows.h"

#include <charconv>

#include "common/strcat.h"

namespace orchard::store::sqlite {

const char* const kTaskColumns =
    "id, spec, state, outcome, reason, version, revision, result_json, create_time_ms, "
    "update_time_ms, start_time_ms, finish_time_ms, lease_worker, generation, n_total, "
    "n_preparing, n_running, n_terminating, n_error, n_terminated, n_succeeded, n_cancelled, "
    "items_done, items_total";

void ReadTask(const Stmt& q, pb::Task* t) {
  t->set_id(q.Text(0));
  std::string_view spec = q.View(1);
  t->mutable_spec()->ParseFromArray(spec.data(), static_cast<int>(spec.size()));
  t->set_state(static_cast<pb::State>(q.Int(2)));
  t->set_outcome(static_cast<pb::Outcome>(q.Int(3)));
  t->set_reason(q.Text(4));
  t->set_version(q.Uint(5));
  t->set_revision(q.Uint(6));
  t->set_result_json(q.Text(7));
  t->set_create_time_ms(q.Int(8));
  t->set_update_time_ms(q.Int(9));
  t->set_start_time_ms(q.Int(10));
  t->set_finish_time_ms(q.Int(11));
  t->set_reconciler(q.Text(12));
  t->set_generation(static_cast<uint32_t>(q.Int(13)));
  pb::SubtaskCounts* c = t->mutable_counts();
  c->set_total(q.Uint(14));
  c->set_preparing(q.Uint(15));
  c->set_running(q.Uint(16));
  c->set_terminating(q.Uint(17));
  c->set_error(q.Uint(18));
  c->set_terminated(q.Uint(19));
  c->set_succeeded(q.Uint(20));
  c->set_cancelled(q.Uint(21));
  c->set_items_done(q.Uint(22));
  c->set_items_total(q.Uint(23));
}

absl::Status TaskNotFound(std::string_view id) {
  return absl::NotFoundError(Cat("task ", id, " not found"));
}

absl::StatusOr<pb::Task> LoadTask(Connection& db, std::string_view id) {
  static const std::string kSql = Cat("SELECT ", kTaskColumns, " FROM tasks WHERE id = ?1");
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
  q->BindText(1, id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return TaskNotFound(id);
  pb::Task t;
  ReadTask(*q, &t);
  return t;
}

bool ResultsDue(const pb::SubtaskCounts& c, uint32_t results_up_to) {
  return c.preparing() + c.running() + c.terminating() == 0 && c.total() > 0 &&
         c.total() <= results_up_to;
}

absl::StatusOr<pb::WaitTaskResponse> LoadTaskSnapshot(Connection& db, std::string_view id,
                                                       uint32_t results_up_to) {
  pb::WaitTaskResponse out;
  STORE_ASSIGN_OR_RETURN(*out.mutable_task(), LoadTask(db, id));
  if (!ResultsDue(out.task().counts(), results_up_to)) return out;
  // Nothing can change these results but a new task version (a retry),
  // which the reconciler's compare-and-set would catch.
  static const std::string kSql = Cat("SELECT ", kSubtaskColumns,
                                      " FROM subtasks WHERE task_id = ?1 AND state = 5 ORDER BY idx");
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
  q->BindText(1, id);
  while (true) {
    STORE_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    *out.add_results() = ToProto(ReadSubtask(*q));
  }
  out.set_results_complete(true);
  return out;
}

absl::StatusOr<TaskRow> LoadTaskRow(Connection& db, std::string_view id) {
  STORE_ASSIGN_OR_RETURN(
      Query q,
      db.Prepare("SELECT id, kind, state, outcome, version, generation, lease_worker, "
                 "lease_epoch, lease_expire_ms, max_attempts, parallelism, backoff_initial_ms, "
                 "backoff_max_ms, start_time_ms, finish_time_ms, result_json, n_total, "
                 "n_preparing, n_running, n_terminating, n_error, n_terminated, n_succeeded, "
                 "n_cancelled FROM tasks WHERE id = ?1"));
  q->BindText(1, id);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return TaskNotFound(id);
  TaskRow t;
  t.id = q->Text(0);
  t.kind = q->Text(1);
  t.state = StateOf(q->Int(2));
  t.outcome = OutcomeOf(q->Int(3));
  t.version = q->Uint(4);
  t.generation = static_cast<uint32_t>(q->Int(5));
  t.lease_worker = q->Text(6);
  t.lease_epoch = q->Uint(7);
  t.lease_expire_ms = q->Int(8);
  t.max_attempts = static_cast<uint32_t>(q->Int(9));
  t.parallelism = static_cast<uint32_t>(q->Int(10));
  t.backoff.initial_ms = q->Uint(11);
  t.backoff.max_ms = q->Uint(12);
  t.start_time_ms = q->Int(13);
  t.finish_time_ms = q->Int(14);
  t.result_json = q->Text(15);
  t.total = q->Int(16);
  t.preparing = q->Int(17);
  t.running = q->Int(18);
  t.terminating = q->Int(19);
  t.error = q->Int(20);
  t.terminated = q->Int(21);
  t.succeeded = q->Int(22);
  t.cancelled = q->Int(23);
  return t;
}

absl::Status CheckTaskLease(const TaskRow& task, std::string_view worker, uint64_t epoch) {
  if (task.lease_epoch != epoch) {
    return absl::FailedPreconditionError(Cat("task ", task.id, ": reconcile lease epoch ", epoch,
                                             " is stale (now ", task.lease_epoch, ")"));
  }
  if (task.lease_worker.empty()) {
    return absl::FailedPreconditionError(Cat("task ", task.id, ": reconcile lease epoch ", epoch,
                                             " is no longer held by ", worker,
                                             " (expired or released)"));
  }
  if (task.lease_worker != worker) {
    return absl::FailedPreconditionError(Cat("task ", task.id, ": reconcile lease epoch ", epoch,
                                             " is held by ", task.lease_worker, ", not ", worker));
  }
  return absl::OkStatus();
}

// ---- counters ----

namespace {
void Count(CounterDelta& d, State s, Outcome o, uint64_t items, int64_t sign) {
  d.by_state[static_cast<int>(s)] += sign;
  if (s != State::kTerminated) return;
  if (o == Outcome::kSucceeded) {
    d.succeeded += sign;
    d.items_done += sign * static_cast<int64_t>(items);
  } else if (o == Outcome::kCancelled) {
    d.cancelled += sign;
  }
}
}  // namespace

void CounterDelta::Move(State from, Outcome from_outcome, State to, Outcome to_outcome,
                        uint64_t items) {
  Count(*this, from, from_outcome, items, -1);
  Count(*this, to, to_outcome, items, +1);
}

void CounterDelta::Add(const CounterDelta& o) {
  for (int i = 0; i < 6; ++i) by_state[i] += o.by_state[i];
  total += o.total;
  succeeded += o.succeeded;
  cancelled += o.cancelled;
  items_done += o.items_done;
  items_total += o.items_total;
}

bool CounterDelta::empty() const {
  for (int64_t v : by_state) {
    if (v != 0) return false;
  }
  return total == 0 && succeeded == 0 && cancelled == 0 && items_done == 0 && items_total == 0;
}

absl::Status ApplyDeltas(Connection& db, const TaskDeltas& deltas, uint64_t revision) {
  for (const auto& [task_id, d] : deltas) {
    if (d.empty()) continue;
    STORE_ASSIGN_OR_RETURN(
        Query q,
        db.Prepare("UPDATE tasks SET n_preparing = n_preparing + ?2, n_running = n_running + ?3, "
                   "n_terminating = n_terminating + ?4, n_error = n_error + ?5, "
                   "n_terminated = n_terminated + ?6, n_succeeded = n_succeeded + ?7, "
                   "n_cancelled = n_cancelled + ?8, items_done = items_done + ?9, "
                   "n_total = n_total + ?10, items_total = items_total + ?11, revision = ?12 "
                   "WHERE id = ?1"));
    q->BindText(1, task_id);
    q->BindInt(2, d.by_state[static_cast<int>(State::kPreparing)]);
    q->BindInt(3, d.by_state[static_cast<int>(State::kRunning)]);
    q->BindInt(4, d.by_state[static_cast<int>(State::kTerminating)]);
    q->BindInt(5, d.by_state[static_cast<int>(State::kError)]);
    q->BindInt(6, d.by_state[static_cast<int>(State::kTerminated)]);
    q->BindInt(7, d.succeeded);
    q->BindInt(8, d.cancelled);
    q->BindInt(9, d.items_done);
    q->BindInt(10, d.total);
    q->BindInt(11, d.items_total);
    q->BindInt(12, revision);
    STORE_RETURN_IF_ERROR(q->Run());
  }
  return absl::OkStatus();
}

// ---- subtasks ----

const char* const kSubtaskColumns =
    "task_id, idx, item_begin, item_end, state, outcome, attempt, epoch, worker, "
    "lease_expire_ms, not_before_ms, progress, result_json, error, version, update_time_ms";

SubtaskRow ReadSubtask(const Stmt& q, int c) {
  SubtaskRow r;
  r.task_id = q.Text(c + 0);
  r.index = q.Int(c + 1);
  r.begin = q.Uint(c + 2);
  r.end = q.Uint(c + 3);
  r.state = StateOf(q.Int(c + 4));
  r.outcome = OutcomeOf(q.Int(c + 5));
  r.attempt = static_cast<uint32_t>(q.Int(c + 6));
  r.epoch = q.Uint(c + 7);
  r.worker = q.Text(c + 8);
  r.lease_expire_ms = q.Int(c + 9);
  r.not_before_ms = q.Int(c + 10);
  r.progress = q.Uint(c + 11);
  r.result_json = q.Text(c + 12);
  r.error = q.Text(c + 13);
  r.version = q.Uint(c + 14);
  r.update_time_ms = q.Int(c + 15);
  return r;
}

pb::Subtask ToProto(const SubtaskRow& r) {
  pb::Subtask s;
  s.set_task_id(r.task_id);
  s.set_index(static_cast<uint64_t>(r.index));
  s.set_begin(r.begin);
  s.set_end(r.end);
  s.set_state(ToProto(r.state));
  s.set_outcome(ToProto(r.outcome));
  s.set_attempt(r.attempt);
  s.set_epoch(r.epoch);
  s.set_worker(r.worker);
  s.set_lease_expire_ms(r.lease_expire_ms);
  s.set_not_before_ms(r.not_before_ms);
  s.set_progress(r.progress);
  s.set_result_json(r.result_json);
  s.set_error(r.error);
  s.set_version(r.version);
  s.set_update_time_ms(r.update_time_ms);
  return s;
}

absl::StatusOr<SubtaskRow> LoadSubtask(Connection& db, std::string_view task_id, int64_t index) {
  static const std::string kSql =
      Cat("SELECT ", kSubtaskColumns, " FROM subtasks WHERE task_id = ?1 AND idx = ?2");
  STORE_ASSIGN_OR_RETURN(Query q, db.Prepare(kSql));
  q->BindText(1, task_id);
  q->BindInt(2, index);
  STORE_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(Cat("subtask ", task_id, "/", index, " not found"));
  return ReadSubtask(*q);
}

absl::StatusOr<lifecycle::SubtaskEdge> SubtaskEdgeFor(const SubtaskRow& row,
                                                      lifecycle::SubtaskEvent event) {
  absl::StatusOr<lifecycle::SubtaskEdge> edge = lifecycle::NextSubtask(row.state, event);
  if (!edge.ok()) {
    return absl::FailedPreconditionError(
        Cat("subtask ", row.task_id, "/", row.index, ": ", std::string(edge.status().message())));
  }
  return edge;
}

absl::Status InsertHistory(Connection& db, const HistoryRow& h) {
  STORE_ASSIGN_OR_RETURN(
      Query q, db.Prepare("INSERT INTO history(task_id, subtask_index, from_state, to_state, "
                          "event, reason, actor, time_ms, version, attempt) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  q->BindText(1, h.task_id);
  q->BindInt(2, h.subtask_index);
  q->BindInt(3, h.from);
  q->BindInt(4, h.to);
  q->BindText(5, h.event);
  q->BindText(6, h.reason);
  q->BindText(7, h.actor);
  q->BindInt(8, h.time_ms);
  q->BindInt(9, h.version);
  q->BindInt(10, h.attempt);
  return q->Run();
}

absl::Status WriteSubtaskEdge(Connection& db, const SubtaskRow& before, SubtaskRow& next,
                              const lifecycle::SubtaskEdge& edge, lifecycle::SubtaskEvent event,
                              std::string_view reason, std::string_view actor, int64_t now_ms,
                              CounterDelta& delta) {
  next.state = edge.to;
  next.outcome = edge.outcome;
  if (!IsActive(edge.to)) {
    next.worker.clear();
    next.lease_expire_ms = 0;
  }
  next.version = before.version + 1;
  next.update_time_ms = now_ms;
  {
    STORE_ASSIGN_OR_RETURN(
        Query q,
        db.Prepare("UPDATE subtasks SET state = ?3, outcome = ?4, attempt = ?5, epoch = ?6, "
                   "worker = ?7, lease_expire_ms = ?8, not_before_ms = ?9, progress = ?10, "
                   "result_json = ?11, error = ?12, version = ?13, update_time_ms = ?14 "
                   "WHERE task_id = ?1 AND idx = ?2 AND version = ?15"));
    q->BindText(1, next.task_id);
    q->BindInt(2, next.index);
    q->BindInt(3, static_cast<int>(next.state));
    q->BindInt(4, static_cast<int>(next.outcome));
    q->BindInt(5, next.attempt);
    q->BindInt(6, next.epoch);
    q->BindText(7, next.worker);
    q->BindInt(8, next.lease_expire_ms);
    q->BindInt(9, next.not_before_ms);
    q->BindInt(10, next.progress);
    q->BindText(11, next.result_json);
    q->BindText(12, next.error);
    q->BindInt(13, next.version);
    q->BindInt(14, next.update_time_ms);
    q->BindInt(15, before.version);
    STORE_RETURN_IF_ERROR(q->Run());
    if (q->changes() != 1) {
      return absl::AbortedError(Cat("subtask ", before.task_id, "/", before.index,
                                    " changed: expected version ", before.version));
    }
  }
  STORE_RETURN_IF_ERROR(InsertHistory(db, HistoryRow{.task_id = next.task_id,
                                                     .subtask_index = next.index,
                                                     .from = static_cast<int>(before.state),
                                                     .to = static_cast<int>(next.state),
                                                     .event = lifecycle::SubtaskEventName(event),
                                                     .reason = reason,
                                                     .actor = actor,
                                                     .time_ms = now_ms,
                                                     .version = next.version,
                                                     .attempt = next.attempt}));
  delta.Move(before.state, before.outcome, next.state, next.outcome, before.end - before.begin);
  return absl::OkStatus();
}

// ---- page tokens ----

std::string EncodePageToken(char listing, int64_t position) { return Cat(listing, "1.", position); }

absl::StatusOr<int64_t> DecodePageToken(std::string_view token, char listing) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        Cat("page_token: '", token, "' is not a page token of this listing"));
  };
  if (token.size() < 4 || token[0] != listing || token.substr(1, 2) != "1.") return bad();
  int64_t v = 0;
  std::string_view digits = token.substr(3);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return bad();
  return v;
}

}  // namespace orchard::store::sqlite
