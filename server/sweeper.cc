#include "server/sweeper.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/strcat.h"

namespace orchard::server {

namespace {
// A cancel or a deadline of a task no worker can reconcile takes effect
// within about this long (plus one sweep).
constexpr int64_t kJanitorPeriodMs = 1000;
}  // namespace

void Sweeper::Start() {
  thread_ = std::thread([this] {
    // Expiry is late by at most one period; a quarter of the TTL, at most 250 ms.
    auto period = std::chrono::milliseconds(std::clamp<int64_t>(ttl_ms_ / 4, 20, 250));
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      SweepOnce();
      lock.lock();
      cv_.wait_for(lock, period, [this] { return stop_; });
    }
  });
}

void Sweeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sweeper::SweepOnce() {
  const int64_t now = clock_->NowMs();
  if (now - janitor_at_ms_ >= kJanitorPeriodMs) {
    janitor_at_ms_ = now;
    janitor_.RunOnce();
  }
  auto r = store_->ExpireLeases(now, ttl_ms_);
  if (!r.ok()) {
    spdlog::warn("lease sweep failed: {}", r.status().message());
    return;
  }
  if (r->subtasks_expired + r->task_leases_expired + r->workers_expired > 0) {
    spdlog::info("lease sweep: {} expired, {} freed, {} lost",
                 Count(r->subtasks_expired, "subtask lease"), Count(r->task_leases_expired, "task lease"),
                 Count(r->workers_expired, "worker"));
    hub_->Notify();
  }
}

}  // namespace orchard::server
