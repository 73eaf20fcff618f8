// The transition batcher (see transition_batcher.h). Loop thread only.
#include "worker/transition_batcher.h"

#include <algorithm>
#include <vector>

#include "proto/rpc_status.h"

namespace orchard::worker {

Awaitable<absl::StatusOr<pb::Task>> TransitionBatcher::Transition(pb::TransitionTaskRequest req) {
  auto p = std::make_shared<Pending>(state_.executor);
  p->req = std::move(req);
  pending_.push_back(p);
  state_.transition_signal.Notify();
  while (!p->result && !state_.stopped) co_await p->done.Wait(1000);
  absl::StatusOr<pb::Task> out = absl::CancelledError("worker stopped");
  if (p->result) out = std::move(*p->result);
  co_return out;
}

Awaitable<void> TransitionBatcher::Loop() {
  while (!state_.stopped) {
    if (pending_.empty()) {
      co_await state_.transition_signal.Wait(1000);
      continue;
    }
    std::vector<std::shared_ptr<Pending>> batch;
    pb::TransitionTasksRequest req;
    // Free slots go to the plans in this call.
    uint32_t room = state_.draining ? 0 : runner_.Room();
    uint32_t asked = 0;
    while (!pending_.empty() && static_cast<int>(batch.size()) < kMaxTransitionsPerCall) {
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
      pb::TransitionTaskRequest* t = req.add_transitions();
      *t = std::move(batch.back()->req);
      const uint32_t want = std::min(room, t->lease_subtasks());
      t->set_lease_subtasks(want);
      room -= want;
      asked += want;
    }
    runner_.PromiseToPlans(asked);
    auto resp = co_await api_.TransitionTasks(req);
    runner_.UnpromiseToPlans(asked);
    if (resp.ok()) {
      for (auto& r : *resp->mutable_results()) {
        for (auto& lease : *r.mutable_subtasks()) runner_.Enqueue(std::move(lease));
      }
      runner_.StartQueued();
    }
    if (asked > 0) state_.slot_signal.Notify();  // what the plans did not take is free again
    for (size_t i = 0; i < batch.size(); ++i) {
      Pending& p = *batch[i];
      if (!resp.ok()) {
        p.result = resp.status();
      } else if (static_cast<int>(i) >= resp->results_size()) {
        p.result = absl::InternalError("TransitionTasks: the answer is missing this result");
      } else if (const auto& r = resp->results(static_cast<int>(i)); r.code() != 0) {
        p.result = ItemStatus(r);
      } else {
        p.result = std::move(*resp->mutable_results(static_cast<int>(i))->mutable_task());
      }
      p.done.Notify();
    }
  }
}

}  // namespace orchard::worker
