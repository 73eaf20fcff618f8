// The transition batcher: reconcilers' task transitions, sent together.
// Transitions queued while the previous call was out go in the next
// TransitionTasks call, so a quiet worker adds no wait and a busy one shares
// calls and commits among its reconcilers. Free subtask slots go to the
// plans in a call: each plan leases its first slices in its own write, and
// the runner queues them, instead of waiting for the next Acquire.
//
// The server must have TransitionTasks and the WaitTask that answers with
// results: server and worker upgrade together.
//
// Thread-safety: loop thread only.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "worker/server_api.h"
#include "worker/signal.h"
#include "worker/state.h"
#include "worker/subtask_runner.h"

namespace orchard::worker {

class TransitionBatcher {
 public:
  static constexpr int kMaxTransitionsPerCall = 1000;

  TransitionBatcher(WorkerState& state, ServerApi& api, SubtaskRunner& runner)
      : state_(state), api_(api), runner_(runner) {}

  // Queues one transition and returns its own result from the batched call
  // (CANCELLED when the worker stops first).
  Awaitable<absl::StatusOr<pb::Task>> Transition(pb::TransitionTaskRequest req);

  // Sends the queued transitions until the daemon stops.
  Awaitable<void> Loop();

 private:
  struct Pending {
    explicit Pending(asio::any_io_executor ex) : done(ex) {}
    pb::TransitionTaskRequest req;
    std::optional<absl::StatusOr<pb::Task>> result;
    Signal done;
  };

  WorkerState& state_;
  ServerApi& api_;
  SubtaskRunner& runner_;
  std::deque<std::shared_ptr<Pending>> pending_;
};

}  // namespace orchard::worker
