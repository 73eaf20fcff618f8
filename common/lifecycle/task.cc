#include "common/lifecycle/task.h"

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard::lifecycle {

const std::vector<TaskEdge>& TaskTable() {
  using S = State;
  using E = TaskEvent;
  static const std::vector<TaskEdge> kTable = {
      {S::kPreparing, E::kPlanned, S::kRunning},
      {S::kPreparing, E::kInvalid, S::kError},
      {S::kPreparing, E::kCancelRequested, S::kTerminating},
      {S::kPreparing, E::kDeadlineExceeded, S::kTerminating},
      {S::kRunning, E::kAllSucceeded, S::kTerminating},
      {S::kRunning, E::kBudgetExceeded, S::kTerminating},
      {S::kRunning, E::kDeadlineExceeded, S::kTerminating},
      {S::kRunning, E::kCancelRequested, S::kTerminating},
      {S::kTerminating, E::kFinalized, S::kTerminated},
      {S::kTerminating, E::kFinalizedFailed, S::kError},
      {S::kError, E::kRetryRequested, S::kPreparing},
  };
  return kTable;
}

std::string_view TaskEventName(TaskEvent e) {
  switch (e) {
    case TaskEvent::kPlanned: return "Planned";
    case TaskEvent::kInvalid: return "Invalid";
    case TaskEvent::kCancelRequested: return "CancelRequested";
    case TaskEvent::kAllSucceeded: return "AllSucceeded";
    case TaskEvent::kBudgetExceeded: return "BudgetExceeded";
    case TaskEvent::kDeadlineExceeded: return "DeadlineExceeded";
    case TaskEvent::kFinalized: return "Finalized";
    case TaskEvent::kFinalizedFailed: return "FinalizedFailed";
    case TaskEvent::kRetryRequested: return "RetryRequested";
  }
  return "Unknown";
}

std::optional<TaskEvent> ParseTaskEvent(std::string_view name) {
  for (TaskEvent e : kAllTaskEvents) {
    if (TaskEventName(e) == name) return e;
  }
  return std::nullopt;
}

TaskEnd EndAfter(TaskEvent cause) {
  switch (cause) {
    case TaskEvent::kAllSucceeded:
      return {TaskEvent::kFinalized, Outcome::kSucceeded};
    case TaskEvent::kCancelRequested:
      return {TaskEvent::kFinalized, Outcome::kCancelled};
    case TaskEvent::kBudgetExceeded:
    case TaskEvent::kDeadlineExceeded:
    case TaskEvent::kInvalid:
    case TaskEvent::kPlanned:
    case TaskEvent::kFinalized:
    case TaskEvent::kFinalizedFailed:
    case TaskEvent::kRetryRequested:
      return {TaskEvent::kFinalizedFailed, Outcome::kFailed};
  }
  return {TaskEvent::kFinalizedFailed, Outcome::kFailed};
}

absl::StatusOr<State> NextTaskState(State from, TaskEvent event) {
  for (const TaskEdge& edge : TaskTable()) {
    if (edge.from == from && edge.event == event) return edge.to;
  }
  return absl::FailedPreconditionError(Cat("task in state ", StateName(from),
                                                    " cannot take event ", TaskEventName(event)));
}

}  // namespace orchard::lifecycle
