// Rows of the SQLite store and the few writes every operation shares: reading
// tasks and subtasks into structs and protos, the checked subtask transition
// (table edge, CAS on version, history row, counter delta), history rows, and
// the incremental subtask counters of a task.
//
// Thread-safety: functions run on whichever connection they are given; the
// write helpers only on the writer thread inside an operation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/backoff.h"
#include "common/lifecycle/state.h"
#include "common/lifecycle/subtask.h"
#include "orchard/v1/orchard.pb.h"
#include "server/store/sqlite_db.h"

namespace orchard::store::sqlite {

namespace pb = ::orchard::v1;

inline pb::State ToProto(State s) { return static_cast<pb::State>(static_cast<int>(s)); }
inline pb::Outcome ToProto(Outcome o) { return static_cast<pb::Outcome>(static_cast<int>(o)); }
inline State StateOf(int64_t v) { return static_cast<State>(v); }
inline Outcome OutcomeOf(int64_t v) { return static_cast<Outcome>(v); }
inline bool IsActive(State s) { return s == State::kRunning || s == State::kTerminating; }

// ---- tasks ----

// The columns ReadTask expects, in order, for "SELECT <kTaskColumns> FROM tasks".
extern const char* const kTaskColumns;
void ReadTask(const Stmt& q, pb::Task* task);
// NOT_FOUND "task t-x not found".
absl::StatusOr<pb::Task> LoadTask(Connection& db, std::string_view id);
absl::Status TaskNotFound(std::string_view id);
// Whether a task with these counts has its results answered with it: none
// of its subtasks is Preparing, Running or Terminating, and it has
// 1..results_up_to of them.
bool ResultsDue(const pb::SubtaskCounts& c, uint32_t results_up_to);
// The task as a WaitTask answers it, in one read: with every TERMINATED
// subtask (by index) and results_complete when ResultsDue.
absl::StatusOr<pb::WaitTaskResponse> LoadTaskSnapshot(Connection& db, std::string_view id,
                                                       uint32_t results_up_to);

// What the operations need of a task, without parsing its spec.
struct TaskRow {
  std::string id;
  std::string kind;
  State state = State::kPreparing;
  Outcome outcome = Outcome::kNone;
  uint64_t version = 0;
  uint32_t generation = 0;
  std::string lease_worker;
  uint64_t lease_epoch = 0;
  int64_t lease_expire_ms = 0;
  uint32_t max_attempts = 3;
  uint32_t parallelism = 0;
  BackoffPolicy backoff;
  int64_t start_time_ms = 0;
  int64_t finish_time_ms = 0;
  std::string result_json;
  int64_t total = 0, preparing = 0, running = 0, terminating = 0, error = 0, terminated = 0,
          succeeded = 0, cancelled = 0;
};
absl::StatusOr<TaskRow> LoadTaskRow(Connection& db, std::string_view id);

// Checks that `worker` holds the task's reconcile lease at `epoch`
// (FAILED_PRECONDITION naming the task and the holder otherwise).
absl::Status CheckTaskLease(const TaskRow& task, std::string_view worker, uint64_t epoch);

// ---- counters ----

// A change of one task's subtask counters, applied once per operation.
struct CounterDelta {
  int64_t by_state[6] = {};  // indexed by State
  int64_t total = 0, succeeded = 0, cancelled = 0, items_done = 0, items_total = 0;

  // One subtask of `items` items moved from (from, from_outcome) to (to, to_outcome).
  void Move(State from, Outcome from_outcome, State to, Outcome to_outcome, uint64_t items);
  void Add(const CounterDelta& o);
  bool empty() const;
};
using TaskDeltas = std::map<std::string, CounterDelta, std::less<>>;

// Adds the deltas to their tasks' counters and sets their revision.
absl::Status ApplyDeltas(Connection& db, const TaskDeltas& deltas, uint64_t revision);

// ---- subtasks ----

struct SubtaskRow {
  std::string task_id;
  int64_t index = 0;
  uint64_t begin = 0, end = 0;
  State state = State::kPreparing;
  Outcome outcome = Outcome::kNone;
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  std::string worker;
  int64_t lease_expire_ms = 0;
  int64_t not_before_ms = 0;
  uint64_t progress = 0;
  std::string result_json;
  std::string error;
  uint64_t version = 0;
  int64_t update_time_ms = 0;
};

extern const char* const kSubtaskColumns;
SubtaskRow ReadSubtask(const Stmt& q, int first_col = 0);
pb::Subtask ToProto(const SubtaskRow& r);
// NOT_FOUND "subtask t-x/3 not found".
absl::StatusOr<SubtaskRow> LoadSubtask(Connection& db, std::string_view task_id, int64_t index);

// The edge `event` takes `row` along; FAILED_PRECONDITION naming the subtask.
absl::StatusOr<lifecycle::SubtaskEdge> SubtaskEdgeFor(const SubtaskRow& row,
                                                      lifecycle::SubtaskEvent event);

struct HistoryRow {
  std::string_view task_id;
  int64_t subtask_index = -1;
  int from = 0, to = 0;
  std::string_view event, reason, actor;
  int64_t time_ms = 0;
  uint64_t version = 0;
  uint32_t attempt = 0;
};
absl::Status InsertHistory(Connection& db, const HistoryRow& h);

// Writes `next` (the caller's changes for this event already made on a copy
// of `before`) in the edge's state and outcome, leaving the lease (worker,
// expiry) cleared when the edge leaves Running/Terminating; bumps the version
// (CAS on before.version: ABORTED when another write moved first); writes the
// history row; adds the counter change to `delta`.
// REQUIRES: edge == SubtaskEdgeFor(before, event), in this transaction.
absl::Status WriteSubtaskEdge(Connection& db, const SubtaskRow& before, SubtaskRow& next,
                              const lifecycle::SubtaskEdge& edge, lifecycle::SubtaskEvent event,
                              std::string_view reason, std::string_view actor, int64_t now_ms,
                              CounterDelta& delta);

// ---- leasing ----

// A Running task whose runnable subtasks may be leased: in Acquire, or by
// the reconciler that has just planned it.
struct LeaseCandidate {
  std::string id;
  std::string kind;
  std::string spec;  // the serialized TaskSpec (params go with each lease)
  uint32_t parallelism = 0;
  int64_t active = 0;  // subtasks Running or Terminating
};

// Leases up to `room` runnable subtasks of one task to `worker` (oldest
// ready first), appending the leases to `out` and the counter change to
// `delta`; the caller applies `delta`.
absl::Status LeaseSubtasks(Connection& db, const LeaseCandidate& c, uint64_t room,
                           const std::string& worker, int64_t now_ms, int64_t ttl_ms,
                           std::vector<pb::SubtaskLease>& out, CounterDelta& delta);

// ---- page tokens ----

// Opaque page tokens: a listing letter and a position.
std::string EncodePageToken(char listing, int64_t position);
// INVALID_ARGUMENT "page_token: ..." when the token is not from that listing.
absl::StatusOr<int64_t> DecodePageToken(std::string_view token, char listing);

}  // namespace orchard::store::sqlite
