// The subtask runner: the leases this worker takes to run slices. It queues
// new leases (a few ahead of free slots, so quick handlers do not pay a round
// trip per slice), runs each on a handler (on the pool, or on the loop for a
// QuickRun handler), and sends the finished slices' reports in batches; a
// lease stays known to heartbeats until its report was answered.
//
// Thread-safety: loop thread only; handlers' Run() goes to `pool`.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "worker/handler.h"
#include "worker/server_api.h"
#include "worker/state.h"

namespace orchard::worker {

class SubtaskRunner {
 public:
  SubtaskRunner(WorkerState& state, ServerApi& api, const Registry& registry,
                asio::thread_pool& pool)
      : state_(state), api_(api), registry_(registry), pool_(pool) {}

  // Leases to ask for: the slots, plus enough queued slices for about
  // kPrefetchMs of work per slot, less what runs or waits already, less the
  // room promised to plans in the TransitionTasks call in flight.
  uint32_t Room() const;
  // Room that a call in flight promised to plans; an Acquire must not ask
  // for it again. The transition batcher adds it before and takes it back
  // after its call.
  void PromiseToPlans(uint32_t slices) { plan_asks_ += slices; }
  void UnpromiseToPlans(uint32_t slices) { plan_asks_ -= slices; }

  // A new lease: known to heartbeats at once, run when a slot is free.
  void Enqueue(pb::SubtaskLease lease);
  // Starts queued leases while slots are free.
  void StartQueued();

  // Sends finished subtasks' reports in batches, until the daemon stops.
  Awaitable<void> ReporterLoop();

  // Nothing runs, waits for a slot, or waits to be reported (the drain).
  bool Idle() const { return state_.busy == 0 && queue_.empty() && pending_reports_.empty(); }

 private:
  // REQUIRES: state_.busy was incremented for this slice by StartQueued().
  Awaitable<void> RunSubtask(pb::SubtaskLease lease, std::shared_ptr<RunningSubtask> rs);
  // The handler ended (or its coroutine died): free its slot for the next.
  void HandlerEnded(RunningSubtask& rs);
  // RunSubtask's coroutine ended by an exception: the lease goes back to
  // the server as a retryable failure, so the slice is not stranded until
  // its lease expires.
  void ReportCrashed(const SubtaskKey& key, const std::shared_ptr<RunningSubtask>& rs,
                     const std::string& error);

  static constexpr double kPrefetchMs = 100;
  static constexpr uint32_t kMaxPrefetch = 2000;

  WorkerState& state_;
  ServerApi& api_;
  const Registry& registry_;
  asio::thread_pool& pool_;

  std::deque<pb::SubtaskLease> queue_;
  // The running average of handler times, which sizes the prefetch.
  double avg_run_ms_ = kPrefetchMs;
  uint32_t plan_asks_ = 0;
  std::vector<pb::SubtaskReport> pending_reports_;
};

}  // namespace orchard::worker
