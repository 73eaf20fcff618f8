// The acquire loops (see acquirer.h). Loop thread only.
#include "worker/acquirer.h"

#include <spdlog/spdlog.h>

#include "common/backoff.h"
#include "common/strcat.h"  // fmt formatter for absl::string_view

namespace orchard::worker {

Awaitable<void> AcquireLoop(AcquireFor what, WorkerState& state, ServerApi& api,
                            Registration& registration, SubtaskRunner& runner,
                            Reconciler& reconciler) {
  const bool for_tasks = what == AcquireFor::kTasks;
  Backoff backoff({100, 5000});
  const char* name = for_tasks ? "tasks" : "subtasks";
  while (!state.draining && !state.stopped) {
    if (state.worker_id.empty()) {
      co_await registration.EnsureRegistered();
      continue;
    }
    uint32_t room = for_tasks ? state.options.max_reconcilers -
                                    static_cast<uint32_t>(state.tasks.size())
                              : runner.Room();
    if (static_cast<int32_t>(room) <= 0) {
      Signal& freed = for_tasks ? state.task_signal : state.slot_signal;
      co_await freed.Wait(1000);
      continue;
    }
    pb::AcquireRequest req;
    req.set_worker_id(state.worker_id);
    req.set_max_subtasks(for_tasks ? 0 : room);
    req.set_max_tasks(for_tasks ? room : 0);
    req.set_wait_ms(state.options.acquire_wait_ms);
    auto r = co_await api.Acquire(req);
    if (!r.ok()) {
      if (state.draining) break;
      if (absl::IsNotFound(r.status())) {
        state.DropAllLeases("worker unknown to the server");
        state.worker_id.clear();
        continue;
      }
      int64_t wait = static_cast<int64_t>(backoff.NextMs());
      spdlog::warn("acquire ({}) failed: {}; retrying in {} ms", name, r.status().message(),
                   wait);
      co_await SleepMs(wait);
      continue;
    }
    backoff.Reset();
    for (auto& lease : *r->mutable_subtasks()) runner.Enqueue(std::move(lease));
    runner.StartQueued();
    for (auto& tl : *r->mutable_tasks()) reconciler.Start(std::move(tl));
  }
}

}  // namespace orchard::worker
