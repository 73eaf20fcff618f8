// The Store: the one place where Orchard's state lives and the one writer of
// it. Every state change goes through the lifecycle tables in common/lifecycle
// again here, in the same transaction that writes it, with its history row.
//
// Implementations: SqliteStore (embedded, WAL, group commit). PostgreSQL comes
// later behind this same interface, so nothing outside store/ may assume a
// single process holds the state.
//
// Thread-safety: every method may be called from any thread at once; methods
// block until their write is durable (committed) or their read is done.
// Times are milliseconds by the server's clock, passed in by the caller so
// tests can drive expiry with a fake clock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lifecycle/state.h"
#include "common/lifecycle/task.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::store {

namespace pb = ::orchard::v1;

struct SubmitResult {
  pb::Task task;
  bool created = false;  // false: request_id matched an existing task
};

struct TaskFilter {
  std::vector<State> states;                 // empty = any
  std::map<std::string, std::string> labels;  // all must match
  std::string kind;                          // empty = any
  uint32_t page_size = 100;
  std::string page_token;                    // opaque, from a previous page
};
struct TaskPage {
  std::vector<pb::Task> tasks;  // newest first
  std::string next_page_token;  // empty on the last page
};

// Tasks per state, and the sums of their subtask counters per state
// (metrics). Indexed by State's number (1..5); index 0 is unused.
struct StateCounts {
  uint64_t tasks[6] = {};
  uint64_t subtasks[6] = {};
};

// A task's subtasks aggregated for display: cell i covers the indices
// [i * cell_size, min((i + 1) * cell_size, total)) and counts its subtasks
// per state (indexed by State's number). At most max_cells cells, so a task
// of 100,000 subtasks still renders fast.
struct SubtaskGridCell {
  uint64_t begin = 0, end = 0;  // subtask indices, half-open
  uint64_t by_state[6] = {};
};
struct SubtaskGrid {
  uint64_t total = 0;
  uint64_t cell_size = 1;
  std::vector<SubtaskGridCell> cells;
};

struct SubtaskFilter {
  std::string task_id;
  std::vector<State> states;
  // Only subtasks in Error or with a last error (a failed attempt being
  // retried keeps its error): the dashboard's failed subtasks.
  bool failed_only = false;
  uint32_t page_size = 1000;
  std::string page_token;
};
struct SubtaskPage {
  std::vector<pb::Subtask> subtasks;  // by index
  std::string next_page_token;
};

struct HistoryFilter {
  std::string task_id;
  std::optional<int64_t> subtask_index;  // -1: the task's own rows; unset: all
  uint32_t page_size = 1000;
  std::string page_token;
};
struct HistoryPage {
  std::vector<pb::HistoryEntry> entries;  // oldest first
  std::string next_page_token;
};

// A write of a task's own state. Writers: a reconciler holding the task's
// lease (lease_worker/lease_epoch set), or a client (cancel, retry) with no
// lease. Refused with ABORTED when expected_version is set and differs, with
// FAILED_PRECONDITION when the table has no such edge, the lease is not held
// at that epoch, or the event's guard fails (see Store::TransitionTask).
struct TaskTransition {
  std::string task_id;
  std::string actor;              // worker id, or "client"
  uint64_t expected_version = 0;  // 0: any version (clients)
  std::string lease_worker;       // empty: no lease required (clients)
  uint64_t lease_epoch = 0;
  lifecycle::TaskEvent event = lifecycle::TaskEvent::kPlanned;
  std::string reason;
  Outcome outcome = Outcome::kNone;  // with Finalized / FinalizedFailed / Invalid
  std::string result_json;           // with Finalized / FinalizedFailed
  std::optional<pb::Plan> plan;      // with Planned, on a task that has no subtasks yet
  // With AllSucceeded: then Finalized in the same write (outcome, result_json
  // and reason go with it), so a finished task ends in one round trip.
  bool then_finalize = false;
  // With Planned: lease up to this many runnable subtasks to lease_worker in
  // the same write, for lease_ttl_ms, as Acquire would; see TransitionResult.
  uint32_t lease_subtasks = 0;
  int64_t lease_ttl_ms = 0;
};

// A transition as written: the task, and the subtasks it leased to the
// reconciler (TaskTransition::lease_subtasks).
struct TransitionResult {
  pb::Task task;
  std::vector<pb::SubtaskLease> subtasks;
};

// The task snapshots a Report also asks for (WorkerService.Report's
// snapshot_tasks and snapshot_results_up_to).
struct SnapshotAsk {
  std::vector<std::string> task_ids;
  uint32_t results_up_to = 0;
};

struct ReportResult {
  std::vector<absl::Status> statuses;  // one per report, in order
  // One per SnapshotAsk id, in order: the task as TaskSnapshot would answer
  // it once the reports are written, read in their transaction (an unknown
  // task: an empty response). Empty when the store left the read to the
  // caller: see SqliteStore::ReportAsync.
  std::vector<std::optional<pb::WaitTaskResponse>> snapshots;
};

struct StopResult {
  uint64_t stopped = 0;      // Preparing -> Terminated (CANCELLED)
  uint64_t terminating = 0;  // Running -> Terminating
};

struct HeartbeatResult {
  std::vector<pb::LeaseRef> lost;  // not held any more at that epoch
  std::vector<pb::LeaseRef> stop;  // subtasks in Terminating: stop the handler
  int64_t lease_expire_ms = 0;
};

struct AcquireResult {
  std::vector<pb::SubtaskLease> subtasks;
  std::vector<pb::TaskLease> tasks;
  // The earliest time (>= now) at which a subtask now backing off becomes
  // runnable for this worker, or 0 when none is; a long poll wakes then.
  int64_t next_ready_ms = 0;
};

struct ExpireResult {
  uint64_t subtasks_expired = 0;
  uint64_t task_leases_expired = 0;
  uint64_t workers_expired = 0;  // workers marked not alive
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- tasks (clients) ----

  // Stores a validated spec as a new task in Preparing, or, when spec.request_id
  // is not empty and a task with that request_id exists, returns that task with
  // created = false (even if the spec differs; the first one wins).
  // REQUIRES: the spec was validated by the caller.
  virtual absl::StatusOr<SubmitResult> CreateTask(const pb::TaskSpec& spec, int64_t now_ms) = 0;
  virtual absl::StatusOr<pb::Task> GetTask(const std::string& id) = 0;  // NOT_FOUND
  // The task as a WaitTask answers it, read in one transaction: with every
  // TERMINATED subtask (by index) and results_complete when none is active
  // and it has 1..results_up_to subtasks. NOT_FOUND.
  virtual absl::StatusOr<pb::WaitTaskResponse> TaskSnapshot(const std::string& id,
                                                            uint32_t results_up_to) = 0;
  virtual absl::StatusOr<TaskPage> ListTasks(const TaskFilter& filter) = 0;
  // Tasks whose revision is greater than `after_revision`, oldest change first.
  virtual absl::StatusOr<std::vector<pb::Task>> TasksChangedAfter(uint64_t after_revision,
                                                                  const std::string& task_id,
                                                                  uint32_t limit) = 0;
  virtual absl::StatusOr<SubtaskPage> ListSubtasks(const SubtaskFilter& filter) = 0;
  virtual absl::StatusOr<HistoryPage> GetHistory(const HistoryFilter& filter) = 0;

  // One task transition, checked against the task table and the guards:
  //  - Planned with a plan: the task must have no subtasks; writes them all
  //    (uniform: cut by the spec's split policy) in Preparing, counters set.
  //    Planned without a plan: the task must already have subtasks (a retry).
  //  - Finalized / FinalizedFailed: refused while any subtask is Running or
  //    Terminating; stores result_json and outcome, sets finish time.
  //  - RetryRequested: moves every Error subtask and every Terminated subtask
  //    with outcome CANCELLED back to Preparing (attempt 0, history rows),
  //    clears outcome, result and finish time, bumps generation.
  //  - Invalid: outcome FAILED, reason kept.
  // Returns the task as written.
  virtual absl::StatusOr<pb::Task> TransitionTask(const TaskTransition& t, int64_t now_ms) = 0;

  // Several transitions, each on its own as TransitionTask would apply it
  // (one may fail while the others are written), sharing one commit where
  // the store can. The default applies them one after the other.
  virtual std::vector<absl::StatusOr<pb::Task>> TransitionTasks(
      const std::vector<TaskTransition>& ts, int64_t now_ms) {
    std::vector<absl::StatusOr<pb::Task>> out;
    out.reserve(ts.size());
    for (const auto& t : ts) out.push_back(TransitionTask(t, now_ms));
    return out;
  }

  // ---- non-blocking forms of the hot writes ----
  //
  // Each does what its blocking form does, and calls `done` exactly once
  // with what that would return: on a store thread once the write committed
  // or failed, or on the caller's (the defaults here run the blocking form).
  // `done` must not block; it may start more store calls.
  template <typename T>
  using Done = std::function<void(T)>;
  virtual void CreateTaskAsync(const pb::TaskSpec& spec, int64_t now_ms,
                               Done<absl::StatusOr<SubmitResult>> done) {
    done(CreateTask(spec, now_ms));
  }
  // Unlike the blocking forms, also answers the subtasks each leased.
  virtual void TransitionTasksAsync(std::vector<TaskTransition> ts, int64_t now_ms,
                                    Done<std::vector<absl::StatusOr<TransitionResult>>> done) {
    std::vector<absl::StatusOr<TransitionResult>> out;
    for (auto& r : TransitionTasks(ts, now_ms)) {
      if (r.ok()) {
        out.emplace_back(TransitionResult{.task = std::move(*r), .subtasks = {}});
      } else {
        out.emplace_back(r.status());
      }
    }
    done(std::move(out));
  }
  virtual void AcquireAsync(std::string worker_id, uint32_t max_subtasks, uint32_t max_tasks,
                            int64_t now_ms, int64_t ttl_ms,
                            Done<absl::StatusOr<AcquireResult>> done) {
    done(Acquire(worker_id, max_subtasks, max_tasks, now_ms, ttl_ms));
  }
  // Also answers `ask`'s snapshots; the default leaves every one to the
  // caller.
  virtual void ReportAsync(std::string worker_id, std::vector<pb::SubtaskReport> reports,
                           int64_t now_ms, SnapshotAsk ask,
                           Done<absl::StatusOr<ReportResult>> done) {
    auto r = Report(worker_id, reports, now_ms);
    if (!r.ok()) return done(r.status());
    ReportResult out{.statuses = std::move(*r), .snapshots = {}};
    out.snapshots.resize(ask.task_ids.size());
    done(std::move(out));
  }

  // Terminating's side effect, idempotent: Preparing subtasks -> Terminated
  // (CancelRequested, outcome CANCELLED) and Running ones -> Terminating.
  // Requires the task to be Terminating and, when lease_worker is set, that
  // lease at that epoch. The history rows name `actor`, else lease_worker,
  // else "client".
  virtual absl::StatusOr<StopResult> StopSubtasks(const std::string& task_id,
                                                  const std::string& lease_worker,
                                                  uint64_t lease_epoch, const std::string& reason,
                                                  int64_t now_ms,
                                                  const std::string& actor = {}) = 0;

  // ---- workers ----

  virtual absl::StatusOr<std::string> RegisterWorker(const std::string& name,
                                                     const std::vector<std::string>& kinds,
                                                     uint32_t slots, int64_t now_ms) = 0;
  virtual absl::Status DeregisterWorker(const std::string& worker_id, int64_t now_ms) = 0;
  // Workers, with alive = last heartbeat within alive_window_ms of now.
  virtual absl::StatusOr<std::vector<pb::WorkerInfo>> ListWorkers(int64_t now_ms,
                                                                  int64_t alive_window_ms) = 0;

  // Renews every listed lease that the worker still holds at that epoch (to
  // now + ttl_ms) and records progress; reports the others as lost and the
  // Terminating subtasks as stop. NOT_FOUND when the worker is unknown.
  virtual absl::StatusOr<HeartbeatResult> Heartbeat(const pb::HeartbeatRequest& req,
                                                    int64_t now_ms, int64_t ttl_ms) = 0;

  // Leases up to max_subtasks runnable subtasks (Preparing, not_before <= now,
  // task Running, kind in the worker's kinds, task parallelism respected,
  // higher priority then older tasks first) and up to max_tasks reconcile
  // leases on non-terminal tasks of those kinds whose lease is free or expired.
  // Each subtask lease: Leased (attempt + 1, epoch + 1, history row).
  virtual absl::StatusOr<AcquireResult> Acquire(const std::string& worker_id,
                                                uint32_t max_subtasks, uint32_t max_tasks,
                                                int64_t now_ms, int64_t ttl_ms) = 0;

  // Applies each report on its own: OK, or FAILED_PRECONDITION when the worker
  // does not hold that lease at that epoch any more (a zombie's late result)
  // or the table has no edge. Success stores the result; a failure with
  // attempts left goes back to Preparing with not_before = now + full-jitter
  // backoff from the task's policy.
  virtual absl::StatusOr<std::vector<absl::Status>> Report(const std::string& worker_id,
                                                           const std::vector<pb::SubtaskReport>& reports,
                                                           int64_t now_ms) = 0;

  virtual absl::Status ReleaseTask(const std::string& worker_id, const std::string& task_id,
                                   uint64_t epoch) = 0;

  // The lease sweeper, run periodically by the server: subtask leases that
  // expired by now go through LeaseExpired / LeaseExpiredPermanently (a failed
  // attempt; retry backoff applies); expired task leases are freed; workers
  // silent for longer than worker_ttl_ms are marked not alive.
  virtual absl::StatusOr<ExpireResult> ExpireLeases(int64_t now_ms, int64_t worker_ttl_ms) = 0;

  // Kinds run by at least one worker whose last heartbeat is within
  // alive_window_ms of now.
  virtual absl::StatusOr<std::vector<std::string>> LiveKinds(int64_t now_ms,
                                                             int64_t alive_window_ms) = 0;

  // Tasks that no reconciler can move on: not terminal, of a kind that no
  // worker heard from within alive_window_ms of now runs, whose reconcile
  // lease is free or expired, and with no subtask Running or Terminating.
  // Ids above `after_id`, in id order, at most `limit`. The server ends
  // those that must end (server/janitor.h); the others wait for a worker.
  virtual absl::StatusOr<std::vector<pb::Task>> UnreconciledTasks(int64_t now_ms,
                                                                   int64_t alive_window_ms,
                                                                   const std::string& after_id,
                                                                   uint32_t limit) = 0;

  // A write that changes nothing, to prove the store is writable (readiness).
  virtual absl::Status Ping() = 0;

  // ---- operators' reads (dashboard, metrics) ----
  // Defaults answer UNIMPLEMENTED, so a decorator or a test fake need not
  // provide them.

  // One aggregate read over the tasks table (no subtask rows are read).
  virtual absl::StatusOr<StateCounts> CountByState() {
    return absl::UnimplementedError("store: CountByState is not implemented");
  }
  // The task's subtasks in at most max_cells cells (1..10000); NOT_FOUND for
  // an unknown task.
  virtual absl::StatusOr<SubtaskGrid> GetSubtaskGrid(const std::string& task_id,
                                                     uint32_t max_cells) {
    return absl::UnimplementedError("store: GetSubtaskGrid is not implemented");
  }
};

struct SqliteOptions {
  std::string path;
  // "normal" (default: survives kill -9 of the process, as WAL commits are
  // written before the call returns; a power cut may lose the last commits)
  // or "full" (fsync every commit; survives power loss).
  std::string synchronous = "normal";
  int reader_connections = 4;
  int max_batch = 256;  // most operations folded into one group commit
};

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace orchard::store
