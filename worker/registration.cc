// Registration and heartbeats (see registration.h). Loop thread only.
#include "worker/registration.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/backoff.h"
#include "common/strcat.h"  // fmt formatter for absl::string_view

namespace orchard::worker {

Awaitable<void> Registration::EnsureRegistered() {
  while (registering_) co_await SleepMs(20);
  if (!state_.worker_id.empty()) co_return;
  registering_ = true;
  Backoff backoff({100, 5000});
  const DaemonOptions& options = state_.options;
  while (!state_.stopped) {
    pb::RegisterRequest req;
    req.set_name(options.name);
    for (auto& k : registry_.Kinds()) req.add_kinds(k);
    req.set_slots(options.slots);
    auto r = co_await api_.Register(req);
    if (r.ok()) {
      state_.worker_id = r->worker_id();
      state_.lease_ttl_ms = static_cast<int64_t>(r->lease_ttl_ms());
      state_.heartbeat_ms = static_cast<int64_t>(r->heartbeat_interval_ms());
      state_.last_ok_heartbeat_sent = state_.Now();
      spdlog::info("registered as {} with {} (lease ttl {} ms, {} slots)", state_.worker_id,
                   options.server, state_.lease_ttl_ms, options.slots);
      break;
    }
    int64_t wait = static_cast<int64_t>(backoff.NextMs());
    spdlog::warn("register with {} failed: {}; retrying in {} ms", options.server,
                 r.status().message(), wait);
    co_await SleepMs(wait);
  }
  registering_ = false;
}

int64_t Registration::FenceAtMs() const {
  return state_.last_ok_heartbeat_sent +
         static_cast<int64_t>(state_.lease_ttl_ms * state_.options.fence_fraction);
}

Awaitable<void> Registration::HeartbeatLoop() {
  Backoff backoff({100, 2000});
  WorkerState& s = state_;
  while (!s.stopped) {
    if (s.worker_id.empty()) {
      co_await EnsureRegistered();
      continue;
    }
    pb::HeartbeatRequest req;
    req.set_worker_id(s.worker_id);
    for (auto& [k, sub] : s.subtasks) {
      if (sub->lost) continue;
      auto* p = req.add_subtasks();
      *p->mutable_lease() = sub->lease;
      p->set_progress(sub->progress.load());
    }
    for (auto& [k, t] : s.tasks) {
      if (!t->lost) *req.add_tasks() = t->lease;
    }
    req.set_slots_in_use(s.busy);
    req.set_draining(s.draining);
    int64_t sent = s.Now();
    // While leases are held, no call outlives the fence moment: a call
    // into a silent network must come back in time for the fence below.
    // (Leases taken after a silent spell with none held find the moment
    // passed; their call gets its full time, and fences if it fails.)
    const int64_t fence_at = FenceAtMs();
    const int64_t call_ms = s.HoldsLeases() && fence_at > sent
                                ? std::min<int64_t>(fence_at - sent, s.heartbeat_ms)
                                : s.heartbeat_ms;
    auto r = co_await api_.Heartbeat(req, call_ms);
    if (r.ok() && r->unknown_worker()) {
      spdlog::warn("server does not know worker {}: registering again", s.worker_id);
      s.DropAllLeases("worker unknown to the server");
      s.worker_id.clear();
      continue;
    }
    if (r.ok()) {
      s.last_ok_heartbeat_sent = sent;
      backoff.Reset();
      for (const auto& l : r->lost()) s.LoseLease(l);
      for (const auto& l : r->stop()) {
        auto it = s.subtasks.find({l.task_id(), l.subtask_index()});
        if (it != s.subtasks.end() && !it->second->stop_requested) {
          it->second->stop_requested = true;
          it->second->stop.request_stop();
          spdlog::info("subtask {}/{}: stop requested, stopping the handler", l.task_id(),
                       l.subtask_index());
        }
      }
      co_await SleepMs(s.heartbeat_ms);
      continue;
    }
    // Cut off from the server: keep trying with capped backoff and full
    // jitter, and stop handlers before the server's clock expires them.
    // The fence is timed from when the last accepted heartbeat was sent,
    // which is before the server stamped the lease's expiry.
    const int64_t now = s.Now();
    if (now >= FenceAtMs() && s.HoldsLeases()) {
      spdlog::warn("no heartbeat accepted for {} ms (lease ttl {} ms): self-fencing",
                   now - s.last_ok_heartbeat_sent, s.lease_ttl_ms);
      s.DropAllLeases("self-fenced: server unreachable");
    }
    int64_t wait = std::min<int64_t>(static_cast<int64_t>(backoff.NextMs()), s.heartbeat_ms);
    if (s.HoldsLeases()) wait = std::clamp<int64_t>(FenceAtMs() - now, 0, wait);
    spdlog::warn("heartbeat failed: {}; retrying in {} ms", r.status().message(), wait);
    co_await SleepMs(wait);
  }
}

}  // namespace orchard::worker
