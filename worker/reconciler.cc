// The task reconciler (see reconciler.h). Loop thread only.
#include "worker/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/backoff.h"
#include "common/split.h"
#include "common/strcat.h"
#include "worker/decide.h"
#include "worker/reduce.h"
#include "worker/run_on_pool.h"
#include "worker/spawn.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;

// How many slices a plan makes: its bounds, or the task's uniform split.
uint64_t SliceCount(const pb::TaskSpec& spec, const Plan& plan) {
  if (!plan.uniform) return plan.bounds.size() > 1 ? plan.bounds.size() - 1 : 0;
  auto split = spec.split().policy_case() == pb::SplitPolicy::kChunk
                   ? UniformSplit::ByChunk(spec.begin(), spec.end(), spec.split().chunk())
                   : UniformSplit::BySubtasks(spec.begin(), spec.end(), spec.split().subtasks());
  return split.ok() ? split->count() : 0;
}

// The server refused a write because this worker's reconcile lease on the
// task is gone (stale epoch, expired, released, held by another worker):
// nothing this reconciler writes will be accepted again. The store says so
// with FAILED_PRECONDITION and this wording (server/store/rows.cc,
// CheckTaskLease); the wire carries no finer code for it.
bool IsLostTaskLease(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) &&
         s.message().find("reconcile lease epoch") != std::string_view::npos;
}

json ParseParams(const std::string& params_json) {
  return json::parse(params_json.empty() ? "{}" : params_json, nullptr, false);
}

}  // namespace

void Reconciler::Start(pb::TaskLease tl) {
  pb::Task task = std::move(*tl.mutable_task());
  auto entry = std::make_shared<ReconciledTask>(state_.executor);
  entry->lease.set_task_id(task.id());
  entry->lease.set_subtask_index(-1);
  entry->lease.set_epoch(tl.epoch());
  // A newer lease epoch of a task this worker still reconciles (its old
  // lease expired while it was frozen or cut off, and the server handed it
  // the task again): the old loop must stop, as nothing else tells it.
  if (auto old = state_.tasks.find(task.id()); old != state_.tasks.end()) {
    old->second->lost = true;
  }
  state_.tasks[task.id()] = entry;
  spdlog::info("task {}: reconciling (state {}, lease epoch {})", task.id(),
               StateName(static_cast<State>(task.state())), tl.epoch());
  const std::string what = Cat("reconcile of task ", task.id());
  Spawn(state_.executor, Reconcile(entry, std::move(task)), what,
        [this, entry](const std::string& error) { Abandon(entry, error); });
}

void Reconciler::Abandon(const std::shared_ptr<ReconciledTask>& entry, const std::string& error) {
  const std::string& id = entry->lease.task_id();
  auto it = state_.tasks.find(id);
  if (it == state_.tasks.end() || it->second != entry) return;  // superseded or already gone
  state_.tasks.erase(it);
  state_.task_signal.Notify();
  if (entry->lost || state_.worker_id.empty()) return;  // not ours to give back
  spdlog::warn("task {}: reconciler failed ({}); releasing its lease", id, error);
  Spawn(state_.executor, Release(id, entry->lease.epoch()), Cat("release of task ", id));
}

Awaitable<void> Reconciler::Release(std::string task_id, uint64_t epoch) {
  pb::ReleaseTaskRequest req;
  req.set_worker_id(state_.worker_id);
  req.set_task_id(std::move(task_id));
  req.set_epoch(epoch);
  co_await api_.ReleaseTask(req);
}

Awaitable<void> Reconciler::Reconcile(std::shared_ptr<ReconciledTask> entry, pb::Task task) {
  Backoff backoff({100, 5000});
  const Handler* handler = registry_.Get(task.spec().kind());
  std::optional<lifecycle::TaskEvent> cause;  // the event that made it Terminating
  bool lease_refused = false;

  while (!entry->lost && !state_.stopped && !state_.draining) {
    Decision d = Decide(task, state_.Now());
    absl::StatusOr<pb::Task> next = task;
    switch (d.kind) {
      case Decision::kPlan:
        next = co_await Plan(*entry, task, handler);
        break;
      case Decision::kReplan: {
        std::string why = "re-running the subtasks that did not succeed";
        next = co_await Transition(*entry, task, lifecycle::TaskEvent::kPlanned, why, {});
        break;
      }
      case Decision::kTransition: {
        std::string reason = d.reason;
        if (d.event == lifecycle::TaskEvent::kBudgetExceeded) {
          std::string failed = co_await FailedSubtasksSummary(task.id());
          if (!failed.empty()) reason = failed + " (" + reason + ")";
        }
        pb::TransitionTaskRequest req;
        if (d.event == lifecycle::TaskEvent::kAllSucceeded && handler != nullptr) {
          // Nothing is active: reduce now and end the task in the same
          // write (a failed reduce takes the long way, via Finalize).
          auto result =
              co_await Reduce(api_, pool_, control_pool_, task, handler, true, *entry);
          if (result.ok()) {
            req.set_then_finalize(true);
            req.set_outcome(pb::SUCCEEDED);
            req.set_result_json(result->dump());
          }
        }
        next = co_await Transition(*entry, task, d.event, reason, req);
        if (next.ok()) cause = d.event;
        break;
      }
      case Decision::kStop:
        next = co_await Stop(*entry, task);
        break;
      case Decision::kWait:
        next = co_await Wait(*entry, task, d.wait_ms, d.errors_above);
        break;
      case Decision::kFinalize: {
        // Why it is Terminating: known when this reconciler moved it there;
        // otherwise (a client's cancel, a lease taken over) from history.
        if (!cause) cause = co_await TerminatingCause(task.id());
        Finish fin = FinishFor(*cause);
        pb::TransitionTaskRequest req;
        req.set_outcome(fin.outcome);
        std::string reason = task.reason();
        if (handler != nullptr) {
          auto result = co_await Reduce(api_, pool_, control_pool_, task, handler,
                                        fin.outcome == pb::SUCCEEDED, *entry);
          if (result.ok()) {
            req.set_result_json(result->dump());
          } else if (fin.outcome == pb::SUCCEEDED) {
            fin = {lifecycle::TaskEvent::kFinalizedFailed, pb::FAILED};
            req.set_outcome(pb::FAILED);
            reason = Cat("reduce failed: ", result.status().message());
          }
        }
        next = co_await Transition(*entry, task, fin.event, reason, req);
        break;
      }
      case Decision::kDone:
        entry->lost = true;  // leave the loop, then release
        break;
    }
    if (d.kind == Decision::kDone) break;
    if (next.ok()) {
      task = std::move(*next);
      backoff.Reset();
      continue;
    }
    const absl::Status& s = next.status();
    if (absl::IsNotFound(s)) break;
    if (absl::IsCancelled(s) && state_.draining) break;
    if (IsLostTaskLease(s)) {
      // Reading the task again would only lead to the same refused write.
      spdlog::warn("task {}: {}; giving the task up", task.id(), s.message());
      entry->lost = true;
      lease_refused = true;
      break;
    }
    if (!absl::IsAborted(s) && !absl::IsFailedPrecondition(s)) {
      int64_t wait = static_cast<int64_t>(backoff.NextMs());
      spdlog::warn("task {}: {}; retrying in {} ms", task.id(), s.message(), wait);
      co_await SleepMs(wait);
    } else {
      spdlog::info("task {}: {}; reading it again", task.id(), s.message());
    }
    // Level-triggered: never trust what we had, read the task again.
    pb::GetTaskRequest get;
    get.set_id(task.id());
    auto fresh = co_await api_.GetTask(get);
    if (fresh.ok()) {
      task = std::move(*fresh);
    } else if (absl::IsNotFound(fresh.status())) {
      break;
    }
  }

  // find(), not operator[]: a superseded loop must not insert an empty
  // entry (a null pointer the heartbeat loop would dereference).
  auto mine = [&] {
    auto it = state_.tasks.find(task.id());
    return it != state_.tasks.end() && it->second == entry;
  };
  // A terminal task's lease ended with its last transition; a refused one
  // is no longer ours.
  bool release = mine() && !lease_refused && !state_.worker_id.empty() &&
                 !IsTerminal(static_cast<State>(task.state()));
  if (release) co_await Release(task.id(), entry->lease.epoch());
  if (mine()) state_.tasks.erase(task.id());
  state_.task_signal.Notify();
}

Awaitable<absl::StatusOr<pb::Task>> Reconciler::Plan(ReconciledTask& entry, const pb::Task& task,
                                                     const Handler* handler) {
  json params = ParseParams(task.spec().params_json());
  absl::StatusOr<worker::Plan> plan = absl::InvalidArgumentError("params: not valid JSON");
  if (handler == nullptr) {
    plan = absl::InvalidArgumentError(Cat("kind: no handler '", task.spec().kind(), "'"));
  } else if (!params.is_discarded()) {
    PlanInput in{task.spec().begin(), task.spec().end(), &params};
    // Off the loop: a plan may read its input (csv.aggregate scans the file).
    auto plan_fn = [handler, in]() { return handler->PlanSlices(in); };
    plan = co_await RunControl<absl::StatusOr<worker::Plan>>(
        control_pool_, handler->QuickControl(), std::move(plan_fn));
  }
  pb::TransitionTaskRequest req;
  if (!plan.ok()) {
    req.set_outcome(pb::FAILED);
    std::string why(plan.status().message());
    co_return co_await Transition(entry, task, lifecycle::TaskEvent::kInvalid, why, req);
  }
  req.mutable_plan()->set_uniform(plan->uniform);
  for (uint64_t b : plan->bounds) req.mutable_plan()->add_bounds(b);
  // The most slices this plan could lease at once; the call that carries it
  // cuts this to the free slots (TransitionBatcher).
  req.set_lease_subtasks(static_cast<uint32_t>(
      std::min<uint64_t>(SliceCount(task.spec(), *plan), kMaxLeasedAtPlan)));
  co_return co_await Transition(entry, task, lifecycle::TaskEvent::kPlanned, "", req);
}

Awaitable<absl::StatusOr<pb::Task>> Reconciler::Transition(const ReconciledTask& entry,
                                                           const pb::Task& task,
                                                           lifecycle::TaskEvent event,
                                                           std::string reason,
                                                           pb::TransitionTaskRequest req) {
  req.set_worker_id(state_.worker_id);
  req.set_task_id(task.id());
  req.set_epoch(entry.lease.epoch());
  req.set_expected_version(task.version());
  req.set_event(std::string(lifecycle::TaskEventName(event)));
  req.set_reason(std::move(reason));
  absl::StatusOr<pb::Task> r = absl::UnknownError("");
  if (req.plan().bounds_size() <= kMaxBatchedBounds) {
    r = co_await batcher_.Transition(std::move(req));
  } else {
    req.set_lease_subtasks(0);  // a unary answer has no room for leases
    r = co_await api_.TransitionTask(req);
  }
  if (r.ok()) {
    spdlog::debug("task {} {} -> {} ({}){}{}", task.id(),
                  StateName(static_cast<State>(task.state())),
                  StateName(static_cast<State>(r->state())), lifecycle::TaskEventName(event),
                  r->reason().empty() ? "" : ": ", r->reason());
  }
  co_return r;
}

Awaitable<absl::StatusOr<pb::Task>> Reconciler::Stop(const ReconciledTask& entry,
                                                     const pb::Task& task) {
  pb::StopSubtasksRequest req;
  req.set_worker_id(state_.worker_id);
  req.set_task_id(task.id());
  req.set_epoch(entry.lease.epoch());
  req.set_reason(task.reason());
  auto r = co_await api_.StopSubtasks(req);
  if (!r.ok()) co_return r.status();
  spdlog::info("task {}: stopping subtasks ({} never started, {} running told to stop)",
               task.id(), r->stopped(), r->terminating());
  pb::GetTaskRequest get;
  get.set_id(task.id());
  co_return co_await api_.GetTask(get);
}

Awaitable<absl::StatusOr<pb::Task>> Reconciler::Wait(ReconciledTask& entry, const pb::Task& task,
                                                     int64_t wait_ms, int64_t errors_above) {
  std::optional<pb::WaitTaskResponse> local;
  if (AllActiveHeldHere(task)) local = co_await LocalWait(entry, task);
  absl::StatusOr<pb::WaitTaskResponse> w = absl::UnknownError("");
  if (local) {
    w = std::move(*local);
  } else {
    pb::WaitTaskRequest req;
    req.set_worker_id(state_.worker_id);
    req.set_task_id(task.id());
    req.set_known_version(task.version());
    req.set_errors_above(errors_above);
    req.set_wait_ms(static_cast<uint32_t>(wait_ms));
    req.set_results_up_to(kWaitResultsUpTo);
    w = co_await api_.WaitTask(req);
  }
  entry.results.reset();
  if (!w.ok()) co_return w.status();
  if (w->results_complete()) {
    entry.results_version = w->task().version();
    entry.results.emplace().Swap(w->mutable_results());
  }
  co_return std::move(*w->mutable_task());
}

// Why a subtask failed, for the task's reason: "subtask 3 failed after 2
// attempts: <error>".
Awaitable<std::string> Reconciler::FailedSubtasksSummary(const std::string& task_id) {
  pb::ListSubtasksRequest req;
  req.set_task_id(task_id);
  req.add_states(pb::ERROR);
  req.set_page_size(3);
  auto r = co_await api_.ListSubtasks(req);
  if (!r.ok() || r->subtasks_size() == 0) co_return std::string();
  std::string out;
  for (const auto& s : r->subtasks()) {
    if (!out.empty()) out += "; ";
    out += Cat("subtask ", s.index(), " failed after ", s.attempt(), " attempt",
               s.attempt() == 1 ? "" : "s", ": ", s.error());
  }
  co_return out;
}

// The event that moved the task to Terminating: the newest task row of its
// history that ends in Terminating.
Awaitable<lifecycle::TaskEvent> Reconciler::TerminatingCause(const std::string& task_id) {
  pb::GetHistoryRequest req;
  req.set_task_id(task_id);
  req.set_subtask_index(-1);
  req.set_page_size(10000);
  auto r = co_await api_.GetHistory(req);
  lifecycle::TaskEvent cause = lifecycle::TaskEvent::kAllSucceeded;
  if (r.ok()) {
    for (const auto& e : r->entries()) {
      if (e.to() == pb::TERMINATING) {
        if (auto ev = lifecycle::ParseTaskEvent(e.event())) cause = *ev;
      }
    }
  }
  co_return cause;
}

// True when the task's active slices are all leased to this worker: then
// only this worker's reports can move it (or a client, or a lost lease).
bool Reconciler::AllActiveHeldHere(const pb::Task& task) const {
  const auto& c = task.counts();
  if (c.running() == 0 || c.preparing() > 0 || c.terminating() > 0) return false;
  uint64_t here = 0;
  for (auto it = state_.subtasks.lower_bound({task.id(), 0});
       it != state_.subtasks.end() && it->first.first == task.id(); ++it) {
    if (!it->second->lost) ++here;
  }
  return here == c.running();
}

// Waits up to kLocalWaitMs for the answer to this worker's Report of the
// task's slices to bring a snapshot newer than `task` (task.revision moves
// on every write to the task); nothing when it does not come. The server
// wait comes after: a cancel, or a lease lost meanwhile, is seen at most
// kLocalWaitMs later than it would be.
Awaitable<std::optional<pb::WaitTaskResponse>> Reconciler::LocalWait(ReconciledTask& entry,
                                                                    const pb::Task& task) {
  const int64_t until = state_.Now() + kLocalWaitMs;
  auto fresh = [&] {
    return entry.snapshot && entry.snapshot->task().revision() > task.revision();
  };
  while (!fresh() && !entry.lost && !state_.stopped && state_.Now() < until) {
    co_await entry.snapshot_signal.Wait(until - state_.Now());
  }
  std::optional<pb::WaitTaskResponse> out;
  if (fresh()) out.swap(entry.snapshot);
  entry.snapshot.reset();
  co_return out;
}

}  // namespace orchard::worker
