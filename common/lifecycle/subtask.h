// The subtask lifecycle: its events and transition table, as data.
//
// The store is the only writer of subtask state, and it checks every write
// against this table in the transaction that performs it.
//
//             (1) Leased                      (3) Succeeded
//   +-----------+ -------------> +---------+ ------------------> +------------+
//   | Preparing |                | Running |                     | Terminated |
//   +-----------+ <------------- +---------+                     +------------+
//     |   ^  ^     (4) Failed      |  |  (5) FailedPermanently      ^    ^  |
//     |   |  |     (6) LeaseExpired|  |  (7) LeaseExpiredPermanently|    |  |
//     |   |  |                     |  v                             |    |  |
//     |   |  |   (11)          +-------+                            |    |  |
//     |   |  +-----------------| Error |                            |    |  |
//     |   |   RetryRequested   +-------+                            |    |  |
//     |   |                        (8) CancelRequested              |    |  |
//     |   |                    Running ---------> +-------------+   |    |  |
//     |   |                                       | Terminating | --+    |  |
//     |   |                                       +-------------+ (9)    |  |
//     +---|-- (2) CancelRequested -----------------------------------------+ |
//         +--- (12) RetryRequested (only a CANCELLED subtask of a failed task)-+
//
// (1)  Leased: a worker took the lease; attempt + 1 and a new epoch.
// (2)  CancelRequested while waiting: it never ran; Terminated/CANCELLED.
// (3)  Succeeded: the epoch holder reported a result; Terminated/SUCCEEDED.
// (4)  Failed with attempts left: back to Preparing, not_before = now + backoff.
// (5)  FailedPermanently: the handler said it cannot succeed, or the attempts
//      are spent; the last error is kept.
// (6)  LeaseExpired with attempts left (the server's clock decides): counts as
//      a failed attempt and waits for a new lease.
// (7)  LeaseExpiredPermanently: the same with no attempts left.
// (8)  CancelRequested while running: the worker is told to stop the handler.
// (9)  From Terminating: Stopped (the worker stopped the handler), LeaseExpired
//      (the worker vanished), or Failed / FailedPermanently (the handler failed
//      while stopping): all end Terminated/CANCELLED; Succeeded (it finished
//      before it saw the stop): Terminated/SUCCEEDED and the result counts.
// (11) RetryRequested: a retry of the task re-runs a failed subtask.
// (12) RetryRequested on Terminated: allowed by the table only for a subtask
//      that was CANCELLED because its task failed; the store checks the
//      outcome. This edge is an addition to DESIGN.md: without it a retry of a
//      task that failed on its budget could never finish the slices that were
//      stopped when it failed.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/lifecycle/state.h"

namespace orchard::lifecycle {

enum class SubtaskEvent : uint8_t {
  kLeased,
  kCancelRequested,
  kSucceeded,
  kFailed,
  kFailedPermanently,
  kLeaseExpired,
  kLeaseExpiredPermanently,
  kStopped,
  kRetryRequested,
};

inline constexpr SubtaskEvent kAllSubtaskEvents[] = {
    SubtaskEvent::kLeased,           SubtaskEvent::kCancelRequested,
    SubtaskEvent::kSucceeded,        SubtaskEvent::kFailed,
    SubtaskEvent::kFailedPermanently, SubtaskEvent::kLeaseExpired,
    SubtaskEvent::kLeaseExpiredPermanently, SubtaskEvent::kStopped,
    SubtaskEvent::kRetryRequested,
};

struct SubtaskEdge {
  State from;
  SubtaskEvent event;
  State to;
  Outcome outcome;  // the outcome the subtask has after this edge
};

const std::vector<SubtaskEdge>& SubtaskTable();

std::string_view SubtaskEventName(SubtaskEvent e);
std::optional<SubtaskEvent> ParseSubtaskEvent(std::string_view name);

// The edge `event` takes from `from`; FAILED_PRECONDITION when there is none.
absl::StatusOr<SubtaskEdge> NextSubtask(State from, SubtaskEvent event);

// Which failure event applies after attempt number `attempt` (1-based) failed.
// A permanent failure, or the last allowed attempt, goes to Error.
SubtaskEvent FailureEvent(uint32_t attempt, uint32_t max_attempts, bool permanent);
SubtaskEvent LeaseExpiryEvent(State state, uint32_t attempt, uint32_t max_attempts);

}  // namespace orchard::lifecycle
