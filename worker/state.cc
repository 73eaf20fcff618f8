// WorkerState's lease bookkeeping. Loop thread only.
#include "worker/state.h"

#include <spdlog/spdlog.h>

namespace orchard::worker {

bool WorkerState::HoldsLeases() const {
  for (const auto& [k, s] : subtasks) {
    if (!s->lost) return true;
  }
  for (const auto& [k, t] : tasks) {
    if (!t->lost) return true;
  }
  return false;
}

void WorkerState::DropAllLeases(const char* why) {
  for (auto& [k, s] : subtasks) {
    if (!s->lost) {
      s->lost = true;
      s->stop.request_stop();
      spdlog::warn("subtask {}/{}: dropping lease epoch {} ({})", k.first, k.second,
                   s->lease.epoch(), why);
    }
  }
  for (auto& [k, t] : tasks) t->lost = true;
  task_signal.Notify();
}

void WorkerState::LoseLease(const pb::LeaseRef& l) {
  if (l.subtask_index() < 0) {
    auto it = tasks.find(l.task_id());
    if (it != tasks.end()) {
      it->second->lost = true;
      spdlog::warn("task {}: reconcile lease lost", l.task_id());
      task_signal.Notify();
    }
    return;
  }
  auto it = subtasks.find({l.task_id(), l.subtask_index()});
  if (it != subtasks.end() && !it->second->lost) {
    it->second->lost = true;
    it->second->stop.request_stop();
    spdlog::warn("subtask {}/{}: lease epoch {} lost; stopping the handler", l.task_id(),
                 l.subtask_index(), l.epoch());
    // A handler still running erases its entry when it ends (RunSubtask).
    if (it->second->handler_done) subtasks.erase(it);
  }
}

}  // namespace orchard::worker
