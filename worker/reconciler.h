// The task reconciler: one coroutine per task this worker holds a reconcile
// lease on. Each turn it decides one step from the task as last read
// (Decide(), decide.h), takes it (plan, transition, stop subtasks, wait,
// reduce and finalise), and goes on with the task the server answered; an
// error reads the task again (level-triggered, with backoff for transient
// faults). It ends when the task is terminal, gone, or the lease is lost,
// and releases a lease it still holds.
//
// Thread-safety: loop thread only; plans and finishes go to `control_pool`,
// folds to `pool` (unless the handler's control functions are quick).
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/lifecycle/task.h"
#include "worker/handler.h"
#include "worker/server_api.h"
#include "worker/state.h"
#include "worker/transition_batcher.h"

namespace orchard::worker {

class Reconciler {
 public:
  // Plans with more explicit bounds than this go alone (TransitionTask).
  static constexpr int kMaxBatchedBounds = 1000;
  // The most slices a plan asks to lease in its own write (the server's limit).
  static constexpr uint64_t kMaxLeasedAtPlan = 1000;
  // How long a reconciler whose active slices all run here waits for its own
  // reports' answer before it parks a wait on the server (LocalWait).
  static constexpr int64_t kLocalWaitMs = 50;

  Reconciler(WorkerState& state, ServerApi& api, const Registry& registry,
             TransitionBatcher& batcher, asio::thread_pool& pool, asio::thread_pool& control_pool)
      : state_(state),
        api_(api),
        registry_(registry),
        batcher_(batcher),
        pool_(pool),
        control_pool_(control_pool) {}

  // Takes over a task lease and starts reconciling it on the loop. A newer
  // lease epoch of a task still reconciled here stops the old coroutine. If
  // the coroutine dies by an exception, it is logged and the lease released.
  void Start(pb::TaskLease lease);

 private:
  Awaitable<void> Reconcile(std::shared_ptr<ReconciledTask> entry, pb::Task task);
  // The coroutine of `entry` ended by an exception: forget the task and give
  // its lease back, so another reconciler takes it now, not at expiry.
  void Abandon(const std::shared_ptr<ReconciledTask>& entry, const std::string& error);

  Awaitable<absl::StatusOr<pb::Task>> Plan(ReconciledTask& entry, const pb::Task& task,
                                           const Handler* handler);
  Awaitable<absl::StatusOr<pb::Task>> Transition(const ReconciledTask& entry,
                                                 const pb::Task& task,
                                                 lifecycle::TaskEvent event, std::string reason,
                                                 pb::TransitionTaskRequest req);
  Awaitable<absl::StatusOr<pb::Task>> Stop(const ReconciledTask& entry, const pb::Task& task);
  Awaitable<absl::StatusOr<pb::Task>> Wait(ReconciledTask& entry, const pb::Task& task,
                                           int64_t wait_ms, int64_t errors_above);
  Awaitable<std::string> FailedSubtasksSummary(const std::string& task_id);
  Awaitable<lifecycle::TaskEvent> TerminatingCause(const std::string& task_id);
  bool AllActiveHeldHere(const pb::Task& task) const;
  Awaitable<std::optional<pb::WaitTaskResponse>> LocalWait(ReconciledTask& entry,
                                                          const pb::Task& task);
  Awaitable<void> Release(std::string task_id, uint64_t epoch);

  WorkerState& state_;
  ServerApi& api_;
  const Registry& registry_;
  TransitionBatcher& batcher_;
  asio::thread_pool& pool_;
  asio::thread_pool& control_pool_;
};

}  // namespace orchard::worker
