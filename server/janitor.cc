#include "server/janitor.h"

#include <spdlog/spdlog.h>

#include "common/strcat.h"

namespace orchard::server {

namespace pb = ::orchard::v1;
using lifecycle::TaskEvent;

namespace {

constexpr const char* kActor = "server";

bool DeadlinePassed(const pb::Task& task, int64_t now_ms) {
  const uint64_t deadline_ms = task.spec().policy().deadline_ms();
  return deadline_ms > 0 && now_ms >= task.create_time_ms() + static_cast<int64_t>(deadline_ms);
}

std::string NoWorker(const pb::Task& task) {
  return Cat("ended by the server: no live worker runs kind '", task.spec().kind(), "'");
}

}  // namespace

int TaskJanitor::RunOnce(uint32_t max_tasks) {
  const int64_t now = clock_->NowMs();
  auto tasks = store_->UnreconciledTasks(now, alive_window_ms_, after_id_, max_tasks);
  if (!tasks.ok()) {
    spdlog::warn("janitor: reading unreconciled tasks failed: {}", tasks.status().message());
    return 0;
  }
  // A short page is the end of the walk: the next pass starts over.
  after_id_ = tasks->size() < max_tasks ? std::string() : tasks->back().id();
  int ended = 0;
  for (const pb::Task& t : *tasks) {
    if (EndIfDue(t, now)) ++ended;
  }
  return ended;
}

lifecycle::TaskEvent TaskJanitor::TerminatingCause(const std::string& task_id) {
  // The newest of the task's own history rows that ends in Terminating.
  store::HistoryFilter f{.task_id = task_id, .subtask_index = -1, .page_size = 1000};
  TaskEvent cause = TaskEvent::kCancelRequested;
  while (true) {
    auto page = store_->GetHistory(f);
    if (!page.ok()) break;
    for (const auto& e : page->entries) {
      if (e.to() != pb::TERMINATING) continue;
      if (auto ev = lifecycle::ParseTaskEvent(e.event())) cause = *ev;
    }
    if (page->next_page_token.empty()) break;
    f.page_token = page->next_page_token;
  }
  return cause;
}

bool TaskJanitor::EndIfDue(const pb::Task& task, int64_t now_ms) {
  uint64_t version = task.version();
  TaskEvent cause;
  std::string reason;
  if (task.state() == pb::TERMINATING) {
    cause = TerminatingCause(task.id());
    reason = task.reason();
  } else if (DeadlinePassed(task, now_ms)) {
    cause = TaskEvent::kDeadlineExceeded;
    reason = Cat("deadline of ", task.spec().policy().deadline_ms(), " ms passed; ",
                 NoWorker(task));
    store::TaskTransition t{.task_id = task.id(),
                            .actor = kActor,
                            .expected_version = version,
                            .event = cause,
                            .reason = reason};
    auto r = store_->TransitionTask(t, now_ms);
    if (!r.ok()) {
      spdlog::info("janitor: task {}: {} refused: {}", task.id(), TaskEventName(cause),
                   r.status().message());
      return false;
    }
    version = r->version();
    hub_->NotifyTask(task.id(), NewWork::kNone);
  } else {
    return false;  // it waits for a worker, as it may
  }
  // Terminating: what never started ends CANCELLED; nothing runs (the store
  // read that), so the task can end at once.
  if (task.counts().preparing() > 0 || task.state() != pb::TERMINATING) {
    auto s = store_->StopSubtasks(task.id(), "", 0, reason, now_ms, kActor);
    if (!s.ok()) {
      spdlog::info("janitor: task {}: stopping its subtasks failed: {}", task.id(),
                   s.status().message());
      return false;
    }
  }
  const lifecycle::TaskEnd end = lifecycle::EndAfter(cause);
  std::string end_reason = reason.empty() ? NoWorker(task) : reason;
  if (end_reason.find("ended by the server") == std::string::npos) {
    end_reason = Cat(end_reason, "; ", NoWorker(task));
  }
  if (task.counts().succeeded() > 0) end_reason += " (results not reduced)";
  store::TaskTransition fin{.task_id = task.id(),
                            .actor = kActor,
                            .expected_version = 0,
                            .event = end.event,
                            .reason = end_reason,
                            .outcome = end.outcome};
  // StopSubtasks does not move the task's version, but a reconciler that
  // took the task meanwhile does: refuse then rather than finish under it.
  fin.expected_version = version;
  auto r = store_->TransitionTask(fin, now_ms);
  if (!r.ok()) {
    spdlog::info("janitor: task {}: {} refused: {}", task.id(), TaskEventName(end.event),
                 r.status().message());
    return false;
  }
  spdlog::info("janitor: task {} ended {}/{}: {}", task.id(), StateName(r->state() == pb::ERROR
                                                                            ? State::kError
                                                                            : State::kTerminated),
               OutcomeName(end.outcome), end_reason);
  hub_->NotifyTask(task.id(), NewWork::kNone);
  return true;
}

}  // namespace orchard::server
