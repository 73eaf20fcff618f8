#include "worker/decide.h"

#include <algorithm>

#include "common/strcat.h"

namespace orchard::worker {

namespace pb = ::orchard::v1;
using lifecycle::TaskEvent;

Decision Decide(const pb::Task& task, int64_t now_ms) {
  const auto& c = task.counts();
  const auto& policy = task.spec().policy();
  Decision d;
  switch (task.state()) {
    case pb::PREPARING:
      d.kind = c.total() > 0 ? Decision::kReplan : Decision::kPlan;
      return d;
    case pb::RUNNING: {
      int64_t budget = policy.has_max_failed_subtasks() ? policy.max_failed_subtasks() : 0;
      if (budget >= 0 && static_cast<int64_t>(c.error()) > budget) {
        d.kind = Decision::kTransition;
        d.event = TaskEvent::kBudgetExceeded;
        d.reason = Cat(c.error(), " subtasks failed, over the budget of ", budget);
        return d;
      }
      int64_t deadline = policy.deadline_ms() > 0
                             ? task.create_time_ms() + static_cast<int64_t>(policy.deadline_ms())
                             : 0;
      if (deadline > 0 && now_ms >= deadline) {
        d.kind = Decision::kTransition;
        d.event = TaskEvent::kDeadlineExceeded;
        d.reason = Cat("deadline of ", policy.deadline_ms(), " ms passed");
        return d;
      }
      if (c.preparing() + c.running() + c.terminating() == 0) {
        d.kind = Decision::kTransition;
        d.event = TaskEvent::kAllSucceeded;
        d.reason = c.error() > 0 ? Cat("all subtasks done; ", c.error(),
                                       " failed within the budget of ", budget)
                                 : "all subtasks succeeded";
        return d;
      }
      d.kind = Decision::kWait;
      d.wait_ms = kResyncMs;
      if (deadline > 0) d.wait_ms = std::clamp<int64_t>(deadline - now_ms, 1, kResyncMs);
      d.errors_above = budget;
      return d;
    }
    case pb::TERMINATING:
      if (c.preparing() + c.running() > 0) {
        d.kind = Decision::kStop;
        return d;
      }
      if (c.terminating() > 0) {
        d.kind = Decision::kWait;
        d.wait_ms = kResyncMs;
        return d;
      }
      d.kind = Decision::kFinalize;
      return d;
    case pb::ERROR:
    case pb::TERMINATED:
      d.kind = Decision::kDone;
      return d;
    default:
      d.kind = Decision::kDone;
      return d;
  }
}

Finish FinishFor(TaskEvent cause) {
  switch (cause) {
    case TaskEvent::kAllSucceeded:
      return {TaskEvent::kFinalized, pb::SUCCEEDED};
    case TaskEvent::kCancelRequested:
      return {TaskEvent::kFinalized, pb::CANCELLED};
    case TaskEvent::kBudgetExceeded:
    case TaskEvent::kDeadlineExceeded:
    case TaskEvent::kInvalid:
    case TaskEvent::kPlanned:
    case TaskEvent::kFinalized:
    case TaskEvent::kFinalizedFailed:
    case TaskEvent::kRetryRequested:
      return {TaskEvent::kFinalizedFailed, pb::FAILED};
  }
  return {TaskEvent::kFinalizedFailed, pb::FAILED};
}

}  // namespace orchard::worker
