// The subtask runner (see subtask_runner.h). Loop thread only, except the
// handler calls it sends to the pool.
#include "worker/subtask_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/backoff.h"
#include "common/strcat.h"
#include "worker/run_on_pool.h"
#include "worker/spawn.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;

bool IsPermanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

}  // namespace

uint32_t SubtaskRunner::Room() const {
  const uint32_t slots = state_.options.slots;
  double slices_per_slot = kPrefetchMs / std::max(avg_run_ms_, 0.01);
  double target = std::clamp<double>(slots * slices_per_slot, slots, slots + kMaxPrefetch);
  int64_t room = static_cast<int64_t>(target) - state_.busy -
                 static_cast<int64_t>(queue_.size()) - static_cast<int64_t>(plan_asks_);
  return static_cast<uint32_t>(std::clamp<int64_t>(room, 0, 1000));
}

void SubtaskRunner::Enqueue(pb::SubtaskLease lease) {
  SubtaskKey key{lease.lease().task_id(), lease.lease().subtask_index()};
  auto rs = std::make_shared<RunningSubtask>();
  rs->lease = lease.lease();
  state_.subtasks[key] = rs;
  queue_.push_back(std::move(lease));
}

void SubtaskRunner::StartQueued() {
  while (state_.busy < state_.options.slots && !queue_.empty()) {
    pb::SubtaskLease lease = std::move(queue_.front());
    queue_.pop_front();
    SubtaskKey key{lease.lease().task_id(), lease.lease().subtask_index()};
    auto it = state_.subtasks.find(key);
    if (it == state_.subtasks.end()) continue;
    if (it->second->lost) {  // lost while it waited: never started, nothing to report
      state_.subtasks.erase(it);
      continue;
    }
    ++state_.busy;
    std::shared_ptr<RunningSubtask> rs = it->second;
    Spawn(state_.executor, RunSubtask(std::move(lease), rs),
          Cat("subtask ", key.first, "/", key.second),
          [this, key, rs](const std::string& error) { ReportCrashed(key, rs, error); });
  }
}

void SubtaskRunner::HandlerEnded(RunningSubtask& rs) {
  --state_.busy;
  rs.handler_done = true;
  StartQueued();
  state_.slot_signal.Notify();
}

void SubtaskRunner::ReportCrashed(const SubtaskKey& key, const std::shared_ptr<RunningSubtask>& rs,
                                  const std::string& error) {
  if (!rs->handler_done) HandlerEnded(*rs);
  auto it = state_.subtasks.find(key);
  if (it == state_.subtasks.end() || it->second != rs) return;  // already reported or replaced
  if (rs->lost) {
    state_.subtasks.erase(it);
    return;
  }
  pb::SubtaskReport report;
  *report.mutable_lease() = rs->lease;
  report.set_failed_error(Cat("worker: ", error));
  pending_reports_.push_back(std::move(report));
  state_.report_signal.Notify();
}

Awaitable<void> SubtaskRunner::RunSubtask(pb::SubtaskLease lease,
                                          std::shared_ptr<RunningSubtask> rs) {
  SubtaskKey key{lease.lease().task_id(), lease.lease().subtask_index()};
  spdlog::debug("subtask {}/{}: leased, attempt {}, epoch {}", key.first, key.second,
                lease.attempt(), lease.lease().epoch());

  absl::StatusOr<json> result = absl::InternalError("not run");
  const Handler* handler = registry_.Get(lease.kind());
  json params = json::parse(lease.params_json().empty() ? "{}" : lease.params_json(), nullptr,
                            false);
  if (handler == nullptr) {
    result = absl::FailedPreconditionError(Cat("no handler for kind '", lease.kind(), "'"));
  } else if (params.is_discarded()) {
    result = absl::InvalidArgumentError("params: not valid JSON");
  } else if (rs->stop_requested) {
    result = absl::CancelledError("stopped before it started");
  } else {
    auto shared_params = std::make_shared<json>(std::move(params));
    SliceContext ctx;
    ctx.task_id = key.first;
    ctx.index = key.second;
    ctx.begin = lease.begin();
    ctx.end = lease.end();
    ctx.attempt = lease.attempt();
    ctx.params = shared_params.get();
    ctx.progress = &rs->progress;
    ctx.stop = rs->stop.get_token();
    // A named function object: GCC 12 destroys a lambda temporary inside a
    // co_await expression twice (see rpc.h).
    auto run = [handler, ctx, shared_params, rs]() { return handler->Run(ctx); };
    // The steady clock, not the injected one: quick handlers take
    // microseconds, and the prefetch needs their time below a millisecond.
    auto started = std::chrono::steady_clock::now();
    if (handler->QuickRun()) {
      result = run();  // microseconds: a hop to the pool and back costs more
    } else {
      result = co_await RunOnPool<absl::StatusOr<json>>(pool_, std::move(run));
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                          started).count();
    avg_run_ms_ = 0.8 * avg_run_ms_ + 0.2 * ms;
  }
  HandlerEnded(*rs);

  if (rs->lost) {
    spdlog::info("subtask {}/{}: handler ended after its lease was lost; result dropped",
                 key.first, key.second);
    state_.subtasks.erase(key);
    co_return;
  }
  pb::SubtaskReport report;
  *report.mutable_lease() = rs->lease;
  if (result.ok()) {
    report.set_succeeded_result_json(result->dump());
  } else if (rs->stop_requested || absl::IsCancelled(result.status())) {
    report.set_stopped(true);
  } else if (IsPermanent(result.status())) {
    report.set_failed_permanently_error(std::string(result.status().message()));
  } else {
    report.set_failed_error(std::string(result.status().message()));
  }
  pending_reports_.push_back(std::move(report));
  state_.report_signal.Notify();
}

Awaitable<void> SubtaskRunner::ReporterLoop() {
  Backoff backoff({50, 2000});
  WorkerState& s = state_;
  while (!s.stopped) {
    if (pending_reports_.empty()) {
      co_await s.report_signal.Wait(1000);
      continue;
    }
    pb::ReportRequest req;
    req.set_worker_id(s.worker_id);
    std::vector<pb::SubtaskReport> batch;
    batch.swap(pending_reports_);
    for (auto& r : batch) {
      auto it = s.subtasks.find({r.lease().task_id(), r.lease().subtask_index()});
      if (it != s.subtasks.end() && it->second->lost) continue;  // fenced meanwhile
      *req.add_reports() = r;
    }
    if (req.reports_size() == 0) {
      for (auto& r : batch) s.subtasks.erase({r.lease().task_id(), r.lease().subtask_index()});
      continue;
    }
    // Tasks reconciled here get their state back with the answer.
    std::set<std::string> reconciled_here;
    for (const auto& r : req.reports()) {
      auto t = s.tasks.find(r.lease().task_id());
      if (t != s.tasks.end() && !t->second->lost) reconciled_here.insert(t->first);
    }
    for (const auto& id : reconciled_here) req.add_snapshot_tasks(id);
    req.set_snapshot_results_up_to(kWaitResultsUpTo);
    auto resp = co_await api_.Report(req);
    if (!resp.ok()) {
      // Keep them and retry; if this lasts, the heartbeat loop fences them.
      for (auto& r : batch) pending_reports_.push_back(std::move(r));
      int64_t wait = static_cast<int64_t>(backoff.NextMs());
      spdlog::warn("report failed: {}; retrying in {} ms", resp.status().message(), wait);
      co_await SleepMs(wait);
      continue;
    }
    backoff.Reset();
    for (int i = 0; i < req.reports_size(); ++i) {
      const auto& r = req.reports(i);
      if (i < resp->codes_size() && resp->codes(i) != 0) {
        spdlog::warn("subtask {}/{}: report refused: {}", r.lease().task_id(),
                     r.lease().subtask_index(), resp->messages(i));
      }
    }
    for (auto& r : batch) s.subtasks.erase({r.lease().task_id(), r.lease().subtask_index()});
    for (auto& snapshot : *resp->mutable_snapshots()) {
      if (!snapshot.has_task()) continue;
      auto t = s.tasks.find(snapshot.task().id());
      if (t == s.tasks.end() || t->second->lost) continue;
      ReconciledTask& entry = *t->second;
      if (entry.snapshot && entry.snapshot->task().revision() >= snapshot.task().revision()) {
        continue;
      }
      entry.snapshot = std::move(snapshot);
      entry.snapshot_signal.Notify();
    }
  }
}

}  // namespace orchard::worker
