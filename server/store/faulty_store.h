// FaultyStore: a Store that wraps another and makes chosen calls fail, so
// the code above the store (the sweeper, the janitor, the service) is tested
// against storage faults without root, tmpfs or a full disk, as LevelDB's
// FaultInjectionTestEnv does for files.
//
// A Fault names an operation (one method, or any write, or any call), which
// matching call fails first (the nth from when the fault was added), how
// many fail (once, n times, always) and with what status. Two ways to fail:
//
//   kBefore  the call is refused before it reaches the wrapped store:
//            nothing is written (a write that never committed).
//   kAfter   the call goes through and commits, then its answer is replaced
//            by the status (the reply lost after the commit): the caller
//            must cope with a write it was told failed.
//
// The non-blocking forms count as their operation (ReportAsync is kReport)
// and answer through `done` exactly once, as the interface promises. A
// batch (TransitionTasks) is one call: a fault fails every item of it.
//
// Thread-safety: every method may be called from any thread at once; faults
// may be added and cleared while calls run.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/store/store.h"

namespace orchard::store {

class FaultyStore final : public Store {
 public:
  enum class Op {
    kCreateTask, kGetTask, kTaskSnapshot, kListTasks, kTasksChangedAfter, kListSubtasks,
    kGetHistory, kTransitionTask, kTransitionTasks, kStopSubtasks, kRegisterWorker,
    kDeregisterWorker, kListWorkers, kHeartbeat, kAcquire, kReport, kReleaseTask,
    kExpireLeases, kLiveKinds, kUnreconciledTasks, kPing, kCountByState, kGetSubtaskGrid,
    // Not a method: matches every call that may write (the ones above that
    // commit: create, transitions, stop, workers, heartbeat, acquire,
    // report, release, expire, ping).
    kAnyWrite,
    // Matches every call.
    kAny,
  };
  enum class When { kBefore, kAfter };
  static constexpr int kAlways = -1;

  struct Fault {
    Op op = Op::kAnyWrite;
    int nth = 1;    // the nth matching call from now fails first (1: the next)
    int times = 1;  // how many matching calls fail from then on; kAlways
    absl::Status status = absl::UnavailableError("faulty store: injected fault");
    When when = When::kBefore;
  };

  // `base` must outlive this store.
  explicit FaultyStore(Store* base) : base_(base) {}
  // Owns `base` (e.g. a store made by a factory that hands out one object).
  explicit FaultyStore(std::unique_ptr<Store> base) : owned_(std::move(base)), base_(owned_.get()) {}

  void Inject(Fault f);
  // Removes every fault not yet spent.
  void Clear();
  // Calls of `op` seen since construction (failed ones too).
  int Calls(Op op) const;
  // Faults fired since construction.
  int Injected() const;
  static bool IsWrite(Op op);
  static const char* OpName(Op op);

  absl::StatusOr<SubmitResult> CreateTask(const pb::TaskSpec& spec, int64_t now_ms) override;
  absl::StatusOr<pb::Task> GetTask(const std::string& id) override;
  absl::StatusOr<pb::WaitTaskResponse> TaskSnapshot(const std::string& id,
                                                    uint32_t results_up_to) override;
  absl::StatusOr<TaskPage> ListTasks(const TaskFilter& filter) override;
  absl::StatusOr<std::vector<pb::Task>> TasksChangedAfter(uint64_t after_revision,
                                                          const std::string& task_id,
                                                          uint32_t limit) override;
  absl::StatusOr<SubtaskPage> ListSubtasks(const SubtaskFilter& filter) override;
  absl::StatusOr<HistoryPage> GetHistory(const HistoryFilter& filter) override;
  absl::StatusOr<pb::Task> TransitionTask(const TaskTransition& t, int64_t now_ms) override;
  std::vector<absl::StatusOr<pb::Task>> TransitionTasks(const std::vector<TaskTransition>& ts,
                                                        int64_t now_ms) override;
  void CreateTaskAsync(const pb::TaskSpec& spec, int64_t now_ms,
                       Done<absl::StatusOr<SubmitResult>> done) override;
  void TransitionTasksAsync(std::vector<TaskTransition> ts, int64_t now_ms,
                            Done<std::vector<absl::StatusOr<TransitionResult>>> done) override;
  void AcquireAsync(std::string worker_id, uint32_t max_subtasks, uint32_t max_tasks,
                    int64_t now_ms, int64_t ttl_ms,
                    Done<absl::StatusOr<AcquireResult>> done) override;
  void ReportAsync(std::string worker_id, std::vector<pb::SubtaskReport> reports, int64_t now_ms,
                   SnapshotAsk ask, Done<absl::StatusOr<ReportResult>> done) override;
  absl::StatusOr<StopResult> StopSubtasks(const std::string& task_id,
                                          const std::string& lease_worker, uint64_t lease_epoch,
                                          const std::string& reason, int64_t now_ms,
                                          const std::string& actor = {}) override;
  absl::StatusOr<std::string> RegisterWorker(const std::string& name,
                                             const std::vector<std::string>& kinds, uint32_t slots,
                                             int64_t now_ms) override;
  absl::Status DeregisterWorker(const std::string& worker_id, int64_t now_ms) override;
  absl::StatusOr<std::vector<pb::WorkerInfo>> ListWorkers(int64_t now_ms,
                                                          int64_t alive_window_ms) override;
  absl::StatusOr<HeartbeatResult> Heartbeat(const pb::HeartbeatRequest& req, int64_t now_ms,
                                            int64_t ttl_ms) override;
  absl::StatusOr<AcquireResult> Acquire(const std::string& worker_id, uint32_t max_subtasks,
                                        uint32_t max_tasks, int64_t now_ms,
                                        int64_t ttl_ms) override;
  absl::StatusOr<std::vector<absl::Status>> Report(const std::string& worker_id,
                                                   const std::vector<pb::SubtaskReport>& reports,
                                                   int64_t now_ms) override;
  absl::Status ReleaseTask(const std::string& worker_id, const std::string& task_id,
                           uint64_t epoch) override;
  absl::StatusOr<ExpireResult> ExpireLeases(int64_t now_ms, int64_t worker_ttl_ms) override;
  absl::StatusOr<std::vector<std::string>> LiveKinds(int64_t now_ms,
                                                     int64_t alive_window_ms) override;
  absl::StatusOr<std::vector<pb::Task>> UnreconciledTasks(int64_t now_ms, int64_t alive_window_ms,
                                                           const std::string& after_id,
                                                           uint32_t limit) override;
  absl::Status Ping() override;
  absl::StatusOr<StateCounts> CountByState() override;
  absl::StatusOr<SubtaskGrid> GetSubtaskGrid(const std::string& task_id,
                                             uint32_t max_cells) override;

 private:
  // What one call must do: go through (ok, kBefore), be refused before
  // the wrapped store (status, kBefore), or go through and then answer
  // the status (status, kAfter).
  struct Verdict {
    absl::Status status;
    When when = When::kBefore;
    bool refuse() const { return !status.ok() && when == When::kBefore; }
    bool replace() const { return !status.ok() && when == When::kAfter; }
  };
  Verdict Check(Op op);
  // Runs `call` unless refused; replaces its answer when the verdict says.
  template <typename R, typename F>
  R Run(Op op, F&& call);

  struct Armed {
    Fault fault;
    int skip;  // matching calls to let through before it fires
  };

  std::unique_ptr<Store> owned_;  // null when the caller owns base_
  Store* base_;
  mutable std::mutex mu_;
  std::vector<Armed> faults_;
  int calls_[static_cast<int>(Op::kAnyWrite)] = {};
  int injected_ = 0;
};

}  // namespace orchard::store
