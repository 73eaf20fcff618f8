// The task lifecycle: its events and transition table, as data.
//
// Every writer of a task's state goes through Next(): the worker's reconciler
// to choose the next state, and the store to refuse an illegal write in the
// same transaction that performs it.
//
//                      (1) Planned
//        +-----------+ ---------------> +---------+
//   ---> | Preparing |                  | Running |
//        +-----------+                  +---------+
//          |   ^   | (2) Invalid          | (4) AllSucceeded / BudgetExceeded /
//          |   |   v                      |     DeadlineExceeded / CancelRequested
//          | (8)  +-------+               v
//          |   +- | Error | <------- +-------------+
//          |      +-------+   (7)    | Terminating |
//          +------------------------>+-------------+
//            (3) CancelRequested            | (6) Finalized
//                                           v
//                                     +------------+
//                                     | Terminated |
//                                     +------------+
//
// (1) Planned: the handler split the range; all subtasks were written in the
//     same transaction.
// (2) Invalid: the handler refused the params or range; the reason says why.
// (3) CancelRequested or DeadlineExceeded while Preparing: nothing runs yet;
//     Terminating finalises (a deadline can pass before any worker planned
//     the task, e.g. when no live worker runs its kind).
// (4) From Running, any of four events: every subtask succeeded; more subtasks
//     ended in Error than the failure budget allows; the deadline passed; or a
//     client asked to cancel. Terminating then stops what still runs.
// (5) (unused number, kept so edges match the README's table)
// (6) Finalized: nothing runs any more and the results were reduced; outcome
//     SUCCEEDED or CANCELLED.
// (7) FinalizedFailed: as (6), but the task failed (budget, deadline); outcome
//     FAILED with the reason.
// (8) RetryRequested: a client retries a failed task; Preparing then re-runs
//     only the subtasks that did not succeed.
#pragma once

#include <string_view>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/lifecycle/state.h"

namespace orchard::lifecycle {

enum class TaskEvent : uint8_t {
  kPlanned,           // Preparing -> Running
  kInvalid,           // Preparing -> Error
  kCancelRequested,   // Preparing | Running -> Terminating
  kAllSucceeded,      // Running -> Terminating
  kBudgetExceeded,    // Running -> Terminating
  kDeadlineExceeded,  // Preparing | Running -> Terminating
  kFinalized,         // Terminating -> Terminated
  kFinalizedFailed,   // Terminating -> Error
  kRetryRequested,    // Error -> Preparing
};

inline constexpr TaskEvent kAllTaskEvents[] = {
    TaskEvent::kPlanned,        TaskEvent::kInvalid,          TaskEvent::kCancelRequested,
    TaskEvent::kAllSucceeded,   TaskEvent::kBudgetExceeded,   TaskEvent::kDeadlineExceeded,
    TaskEvent::kFinalized,      TaskEvent::kFinalizedFailed,  TaskEvent::kRetryRequested,
};

struct TaskEdge {
  State from;
  TaskEvent event;
  State to;
};

// The table itself: every legal (state, event) pair and where it leads.
const std::vector<TaskEdge>& TaskTable();

std::string_view TaskEventName(TaskEvent e);
std::optional<TaskEvent> ParseTaskEvent(std::string_view name);

// How a Terminating task ends, given the event that made it Terminating:
// Finalized with SUCCEEDED (every subtask succeeded) or CANCELLED (a
// cancel), else FinalizedFailed with FAILED (budget, deadline). Both the
// worker's reconciler and the server (a task no reconciler can end) use it.
struct TaskEnd {
  TaskEvent event;
  Outcome outcome;
};
TaskEnd EndAfter(TaskEvent cause);

// Where `event` takes a task in `from`; FAILED_PRECONDITION when the table has
// no such edge (the message names both).
absl::StatusOr<State> NextTaskState(State from, TaskEvent event);

}  // namespace orchard::lifecycle
