#include "worker/decide.h"

#include <algorithm>

#include "common/strcat.h"

namespace orchard::worker {

namespace pb = ::orchard::v1;
using lifecycle::TaskEvent;

namespace {

bool DeadlinePassed(const pb::Task& task, int64_t now_ms) {
  const auto& policy = task.spec().policy();
  return policy.deadline_ms() > 0 &&
         now_ms >= task.create_time_ms() + static_cast<int64_t>(policy.deadline_ms());
}

}  // namespace

Decision Decide(const pb::Task& task, int64_t now_ms) {
  const auto& c = task.counts();
  const auto& policy = task.spec().policy();
  Decision d;
  switch (task.state()) {
    case pb::PREPARING:
      if (DeadlinePassed(task, now_ms)) {
        d.kind = Decision::kTransition;
        d.event = TaskEvent::kDeadlineExceeded;
        d.reason = Cat("deadline of ", policy.deadline_ms(), " ms passed before the task was planned");
        return d;
      }
      d.kind = c.total() > 0 ? Decision::kReplan : Decision::kPlan;
      return d;
    case pb::RUNNING: {
      int64_t budget = policy.has_max_failed_subtasks() ? policy.max_failed_subtasks() : 0;
      if (budget >= 0 && static_cast<int64_t>(c.error()) > budget) {
        d.kind = Decision::kTransition;
        d.event = TaskEvent::kBudgetExceeded;
        d.reason = Cat(Count(c.error(), "subtask"), " failed, over the budget of ", budget);
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
  const lifecycle::TaskEnd end = lifecycle::EndAfter(cause);
  return {end.event, static_cast<pb::Outcome>(static_cast<int>(end.outcome))};
}

}  // namespace orchard::worker
