// Registration and heartbeats: the worker's membership in the cluster. It
// registers (again, when the server forgot it), sends a heartbeat every
// interval with every lease it holds and its progress, applies the server's
// answer (leases lost, subtasks to stop), and fences itself (drops every
// lease, stopping handlers) when no heartbeat was accepted for a share of the
// lease TTL, before the server's clock expires the leases.
//
// Thread-safety: loop thread only (coroutines on the daemon's loop).
#pragma once

#include "worker/handler.h"
#include "worker/server_api.h"
#include "worker/state.h"

namespace orchard::worker {

class Registration {
 public:
  Registration(WorkerState& state, ServerApi& api, const Registry& registry)
      : state_(state), api_(api), registry_(registry) {}

  // Returns once the worker has an id (or the daemon stopped); callers that
  // come while a registration is under way wait for that one.
  Awaitable<void> EnsureRegistered();

  // Runs until the daemon stops.
  Awaitable<void> HeartbeatLoop();

 private:
  // When the worker stops its handlers if no heartbeat has been accepted
  // since: a fraction of the TTL after the last accepted one was sent.
  int64_t FenceAtMs() const;

  WorkerState& state_;
  ServerApi& api_;
  const Registry& registry_;
  bool registering_ = false;
};

}  // namespace orchard::worker
