// The task reconciler's decision, as a pure function of what it observed:
// Decide(task, now) says what one step to take. The reconciler (reconciler.cc)
// performs it; the tests call Decide directly.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/lifecycle/task.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::worker {

struct Decision {
  enum Kind {
    kPlan,        // Preparing, no subtasks yet: ask the handler for a plan, then Planned
    kReplan,      // Preparing after a retry: subtasks exist, Planned without a plan
    kTransition,  // take `event` (Running -> Terminating)
    kStop,        // Terminating: stop subtasks still waiting or running
    kWait,        // nothing to do until something changes (or wait_ms passes)
    kFinalize,    // Terminating, nothing runs: reduce and finalise
    kDone,        // terminal: release the lease
  };
  Kind kind = kWait;
  lifecycle::TaskEvent event = lifecycle::TaskEvent::kPlanned;
  std::string reason;
  int64_t wait_ms = 0;
  int64_t errors_above = -1;  // for kWait: wake when more subtasks than this are in Error
};

// How long a reconciler waits at most before looking again (the resync).
inline constexpr int64_t kResyncMs = 20'000;

Decision Decide(const orchard::v1::Task& task, int64_t now_ms);

// How a Terminating task ends, given the event that made it Terminating.
struct Finish {
  lifecycle::TaskEvent event;  // Finalized or FinalizedFailed
  orchard::v1::Outcome outcome;
};
Finish FinishFor(lifecycle::TaskEvent cause);

}  // namespace orchard::worker
