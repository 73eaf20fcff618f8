#include "server/worker_names.h"

namespace orchard::server {

namespace {
constexpr int64_t kRefreshMs = 1000;
}  // namespace

std::string WorkerNames::Name(const std::string& id) {
  if (id.rfind("w-", 0) != 0) return "";
  std::lock_guard lock(mu_);
  const int64_t now = clock_->NowMs();
  auto it = names_.find(id);
  if (it != names_.end()) return it->second;
  // Not seen: read again, at most once a second (an unknown or deleted id
  // asked for often costs one read a second, not one per answer).
  if (read_at_ >= 0 && now - read_at_ < kRefreshMs) return "";
  read_at_ = now;
  auto workers = store_->ListWorkers(now, /*alive_window_ms=*/0);
  if (!workers.ok()) return "";
  names_.clear();
  for (const auto& w : *workers) names_[w.id()] = w.name();
  it = names_.find(id);
  return it == names_.end() ? "" : it->second;
}

void WorkerNames::Fill(orchard::v1::Task& task) {
  if (!task.reconciler().empty()) task.set_reconciler_name(Name(task.reconciler()));
}

void WorkerNames::Fill(orchard::v1::Subtask& subtask) {
  if (!subtask.worker().empty()) subtask.set_worker_name(Name(subtask.worker()));
}

void WorkerNames::Fill(orchard::v1::HistoryEntry& entry) {
  if (!entry.actor().empty()) entry.set_actor_name(Name(entry.actor()));
}

}  // namespace orchard::server
