// The acquire loops: long polls for new leases, one loop per kind of work so
// a full set of subtask slots never holds back reconciliation, nor the other
// way round. Subtask leases go to the runner, task leases to the reconciler.
// Each loop asks only for the room it has, and sleeps on the matching signal
// while it has none.
//
// Thread-safety: loop thread only.
#pragma once

#include "worker/reconciler.h"
#include "worker/registration.h"
#include "worker/server_api.h"
#include "worker/state.h"
#include "worker/subtask_runner.h"

namespace orchard::worker {

enum class AcquireFor {
  kSubtasks,  // slices to run, up to the runner's room
  kTasks,     // reconcile leases, up to options.max_reconcilers
};

// Runs until the worker drains or stops.
Awaitable<void> AcquireLoop(AcquireFor what, WorkerState& state, ServerApi& api,
                            Registration& registration, SubtaskRunner& runner,
                            Reconciler& reconciler);

}  // namespace orchard::worker
