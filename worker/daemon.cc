// The worker daemon's coroutines. Every member of Impl is touched only on the
// loop thread, except RunningSubtask::progress and ::stop, which the handler
// reads and writes from the pool.
#include "worker/daemon.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <stop_token>
#include <thread>

#include "common/backoff.h"
#include "common/clock.h"
#include "proto/rpc_status.h"
#include "common/split.h"
#include "common/strcat.h"
#include "worker/decide.h"
#include "worker/rpc.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;
using Key = std::pair<std::string, int64_t>;

int64_t Now() { return SystemClock::Get()->NowMs(); }

// A one-waiter wake-up: Notify() before Wait() is remembered.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : timer_(ex) {}
  Awaitable<void> Wait(int64_t timeout_ms) {
    if (pending_) {
      pending_ = false;
      co_return;
    }
    timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    pending_ = false;
  }
  void Notify() {
    pending_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool pending_ = false;
};

Awaitable<void> SleepMs(int64_t ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

bool IsPermanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

}  // namespace

struct Daemon::Impl {
  Impl(DaemonOptions o, const Registry* r)
      : options(std::move(o)),
        registry(r),
        pool(options.slots),
        slot_signal(io.get_executor()),
        report_signal(io.get_executor()),
        task_signal(io.get_executor()),
        transition_signal(io.get_executor()) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    // Reconnect quickly after a server restart: the acquire loop's own
    // backoff already spaces the attempts.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    api = std::make_unique<Api>(
        grpc::CreateCustomChannel(options.server, grpc::InsecureChannelCredentials(), args));
  }

  struct RunningSubtask {
    pb::LeaseRef lease;
    std::stop_source stop;
    std::atomic<uint64_t> progress{0};
    bool lost = false;            // the lease is gone: never report
    bool stop_requested = false;  // the subtask is Terminating: report Stopped
    bool handler_done = false;
  };
  using Subtasks = google::protobuf::RepeatedPtrField<pb::Subtask>;
  struct ReconciledTask {
    explicit ReconciledTask(asio::any_io_executor ex) : snapshot_signal(ex) {}
    pb::LeaseRef lease;
    bool lost = false;
    // The task as the newest answer to this worker's own Report saw it, for
    // a reconciler whose active slices all run here (LocalWait).
    std::optional<pb::WaitTaskResponse> snapshot;
    Signal snapshot_signal;
    // Every committed result, from the last WaitTask answer, valid while
    // the task is at results_version (a small task's reduce needs no
    // further call).
    std::optional<Subtasks> results;
    uint64_t results_version = 0;
  };
  // A reconciler's transition waiting for the transition loop.
  struct PendingTransition {
    explicit PendingTransition(asio::any_io_executor ex) : done(ex) {}
    pb::TransitionTaskRequest req;
    std::optional<absl::StatusOr<pb::Task>> result;
    Signal done;
  };

  DaemonOptions options;
  const Registry* registry;
  asio::io_context io;
  asio::thread_pool pool;
  // Plans and finishes (they may read files or run a reduce program) wait
  // here, never behind the slots' long slices.
  asio::thread_pool control_pool{1};
  std::unique_ptr<Api> api;
  Signal slot_signal, report_signal, task_signal, transition_signal;
  // Transitions queued while the loop's previous call was out go together
  // in the next TransitionTasks call; plans with many explicit bounds go
  // alone (TransitionTask). The server must have TransitionTasks and the
  // WaitTask that answers with results: server and worker upgrade together.
  static constexpr int kMaxTransitionsPerCall = 1000;
  static constexpr int kMaxBatchedBounds = 1000;
  static constexpr uint64_t kMaxLeasedAtPlan = 1000;  // the server's limit

  // How many slices a plan makes: its bounds, or the task's uniform split.
  static uint64_t SliceCount(const pb::TaskSpec& spec, const Plan& plan) {
    if (!plan.uniform) return plan.bounds.size() > 1 ? plan.bounds.size() - 1 : 0;
    auto split = spec.split().policy_case() == pb::SplitPolicy::kChunk
                     ? UniformSplit::ByChunk(spec.begin(), spec.end(), spec.split().chunk())
                     : UniformSplit::BySubtasks(spec.begin(), spec.end(), spec.split().subtasks());
    return split.ok() ? split->count() : 0;
  }
  // A WaitTask answer carries the results of a task this small.
  static constexpr uint32_t kWaitResultsUpTo = 1000;
  // How long a reconciler whose active slices all run here waits for its own
  // reports' answer before it parks a wait on the server (LocalWait).
  static constexpr int64_t kLocalWaitMs = 50;
  std::deque<std::shared_ptr<PendingTransition>> pending_transitions;

  std::string worker_id;
  int64_t lease_ttl_ms = 10'000;
  int64_t heartbeat_ms = 3'000;
  int64_t last_ok_heartbeat_sent = 0;
  bool registering = false;
  bool draining = false;
  bool stopped = false;
  uint32_t busy = 0;  // handlers running now (at most options.slots)

  // Leases taken ahead of free slots, so quick handlers do not pay a round
  // trip per slice. How many: enough for about kPrefetchMs of work per slot,
  // by the running average of handler times; slow handlers get none.
  static constexpr double kPrefetchMs = 100;
  static constexpr uint32_t kMaxPrefetch = 2000;
  std::deque<pb::SubtaskLease> queue;
  double avg_run_ms = kPrefetchMs;
  // Slices asked for by plans in the TransitionTasks call in flight: room
  // already promised, which an Acquire must not ask for again.
  uint32_t plan_asks = 0;

  std::map<Key, std::shared_ptr<RunningSubtask>> subtasks;
  std::map<std::string, std::shared_ptr<ReconciledTask>> tasks;
  std::vector<pb::SubtaskReport> pending_reports;

  // ---------------------------------------------------------- registration

  Awaitable<void> EnsureRegistered() {
    while (registering) co_await SleepMs(20);
    if (!worker_id.empty()) co_return;
    registering = true;
    Backoff backoff({100, 5000});
    while (!stopped) {
      pb::RegisterRequest req;
      req.set_name(options.name);
      for (auto& k : registry->Kinds()) req.add_kinds(k);
      req.set_slots(options.slots);
      auto r = co_await api->Register(req);
      if (r.ok()) {
        worker_id = r->worker_id();
        lease_ttl_ms = static_cast<int64_t>(r->lease_ttl_ms());
        heartbeat_ms = static_cast<int64_t>(r->heartbeat_interval_ms());
        last_ok_heartbeat_sent = Now();
        spdlog::info("registered as {} with {} (lease ttl {} ms, {} slots)", worker_id,
                     options.server, lease_ttl_ms, options.slots);
        break;
      }
      int64_t wait = static_cast<int64_t>(backoff.NextMs());
      spdlog::warn("register with {} failed: {}; retrying in {} ms", options.server,
                   r.status().message(), wait);
      co_await SleepMs(wait);
    }
    registering = false;
  }

  // When the worker stops its handlers if no heartbeat has been accepted
  // since: a fraction of the TTL after the last accepted one was sent.
  int64_t FenceAtMs() const {
    return last_ok_heartbeat_sent + static_cast<int64_t>(lease_ttl_ms * options.fence_fraction);
  }

  bool HoldsLeases() const {
    for (const auto& [k, s] : subtasks) {
      if (!s->lost) return true;
    }
    for (const auto& [k, t] : tasks) {
      if (!t->lost) return true;
    }
    return false;
  }

  // The server forgot us (or we fenced ourselves): every lease is void.
  void DropAllLeases(const char* why) {
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

  // -------------------------------------------------------------- heartbeat

  Awaitable<void> HeartbeatLoop() {
    Backoff backoff({100, 2000});
    while (!stopped) {
      if (worker_id.empty()) {
        co_await EnsureRegistered();
        continue;
      }
      pb::HeartbeatRequest req;
      req.set_worker_id(worker_id);
      for (auto& [k, s] : subtasks) {
        if (s->lost) continue;
        auto* p = req.add_subtasks();
        *p->mutable_lease() = s->lease;
        p->set_progress(s->progress.load());
      }
      for (auto& [k, t] : tasks) {
        if (!t->lost) *req.add_tasks() = t->lease;
      }
      req.set_slots_in_use(busy);
      req.set_draining(draining);
      int64_t sent = Now();
      // While leases are held, no call outlives the fence moment: a call
      // into a silent network must come back in time for the fence below.
      // (Leases taken after a silent spell with none held find the moment
      // passed; their call gets its full time, and fences if it fails.)
      const int64_t fence_at = FenceAtMs();
      const int64_t call_ms = HoldsLeases() && fence_at > sent
                                  ? std::min<int64_t>(fence_at - sent, heartbeat_ms)
                                  : heartbeat_ms;
      auto r = co_await api->Heartbeat(req, call_ms);
      if (r.ok() && r->unknown_worker()) {
        spdlog::warn("server does not know worker {}: registering again", worker_id);
        DropAllLeases("worker unknown to the server");
        worker_id.clear();
        continue;
      }
      if (r.ok()) {
        last_ok_heartbeat_sent = sent;
        backoff.Reset();
        for (const auto& l : r->lost()) LoseLease(l);
        for (const auto& l : r->stop()) {
          auto it = subtasks.find({l.task_id(), l.subtask_index()});
          if (it != subtasks.end() && !it->second->stop_requested) {
            it->second->stop_requested = true;
            it->second->stop.request_stop();
            spdlog::info("subtask {}/{}: stop requested, stopping the handler", l.task_id(),
                         l.subtask_index());
          }
        }
        co_await SleepMs(heartbeat_ms);
        continue;
      }
      // Cut off from the server: keep trying with capped backoff and full
      // jitter, and stop handlers before the server's clock expires them.
      // The fence is timed from when the last accepted heartbeat was sent,
      // which is before the server stamped the lease's expiry.
      const int64_t now = Now();
      if (now >= FenceAtMs() && HoldsLeases()) {
        spdlog::warn("no heartbeat accepted for {} ms (lease ttl {} ms): self-fencing",
                     now - last_ok_heartbeat_sent, lease_ttl_ms);
        DropAllLeases("self-fenced: server unreachable");
      }
      int64_t wait = std::min<int64_t>(static_cast<int64_t>(backoff.NextMs()), heartbeat_ms);
      if (HoldsLeases()) wait = std::clamp<int64_t>(FenceAtMs() - now, 0, wait);
      spdlog::warn("heartbeat failed: {}; retrying in {} ms", r.status().message(), wait);
      co_await SleepMs(wait);
    }
  }

  void LoseLease(const pb::LeaseRef& l) {
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
      if (it->second->handler_done) subtasks.erase(it);
    }
  }

  // ------------------------------------------------------ subtask acquiring

  // One long-poll loop per kind of work: subtask slots (for_tasks = false)
  // and task reconcile leases (true), so a full set of slots never holds back
  // reconciliation, nor the other way round.
  Awaitable<void> AcquireLoop(bool for_tasks) {
    Backoff backoff({100, 5000});
    const char* what = for_tasks ? "tasks" : "subtasks";
    while (!draining && !stopped) {
      if (worker_id.empty()) {
        co_await EnsureRegistered();
        continue;
      }
      uint32_t room = for_tasks ? options.max_reconcilers - static_cast<uint32_t>(tasks.size())
                                : SubtaskRoom();
      if (static_cast<int32_t>(room) <= 0) {
        Signal& freed = for_tasks ? task_signal : slot_signal;
        co_await freed.Wait(1000);
        continue;
      }
      pb::AcquireRequest req;
      req.set_worker_id(worker_id);
      req.set_max_subtasks(for_tasks ? 0 : room);
      req.set_max_tasks(for_tasks ? room : 0);
      req.set_wait_ms(options.acquire_wait_ms);
      auto r = co_await api->Acquire(req);
      if (!r.ok()) {
        if (draining) break;
        if (absl::IsNotFound(r.status())) {
          DropAllLeases("worker unknown to the server");
          worker_id.clear();
          continue;
        }
        int64_t wait = static_cast<int64_t>(backoff.NextMs());
        spdlog::warn("acquire ({}) failed: {}; retrying in {} ms", what, r.status().message(),
                     wait);
        co_await SleepMs(wait);
        continue;
      }
      backoff.Reset();
      for (auto& lease : *r->mutable_subtasks()) Enqueue(std::move(lease));
      StartQueued();
      for (auto& tl : *r->mutable_tasks()) {
        asio::co_spawn(io, Reconcile(std::move(tl)), asio::detached);
      }
    }
  }

  // Leases to ask for: the slots, plus enough queued slices for about
  // kPrefetchMs of work per slot, less what runs or waits already.
  uint32_t SubtaskRoom() const {
    double slices_per_slot = kPrefetchMs / std::max(avg_run_ms, 0.01);
    double target = std::clamp<double>(options.slots * slices_per_slot, options.slots,
                                       options.slots + kMaxPrefetch);
    int64_t room = static_cast<int64_t>(target) - busy - static_cast<int64_t>(queue.size()) -
                   static_cast<int64_t>(plan_asks);
    return static_cast<uint32_t>(std::clamp<int64_t>(room, 0, 1000));
  }

  // A new lease: known to heartbeats at once, run when a slot is free.
  void Enqueue(pb::SubtaskLease lease) {
    Key key{lease.lease().task_id(), lease.lease().subtask_index()};
    auto rs = std::make_shared<RunningSubtask>();
    rs->lease = lease.lease();
    subtasks[key] = rs;
    queue.push_back(std::move(lease));
  }

  void StartQueued() {
    while (busy < options.slots && !queue.empty()) {
      pb::SubtaskLease lease = std::move(queue.front());
      queue.pop_front();
      auto it = subtasks.find({lease.lease().task_id(), lease.lease().subtask_index()});
      if (it == subtasks.end()) continue;
      if (it->second->lost) {  // lost while it waited: never started, nothing to report
        subtasks.erase(it);
        continue;
      }
      ++busy;
      asio::co_spawn(io, RunSubtask(std::move(lease), it->second), asio::detached);
    }
  }

  // REQUIRES: busy was incremented for this slice by StartQueued().
  Awaitable<void> RunSubtask(pb::SubtaskLease lease, std::shared_ptr<RunningSubtask> rs) {
    Key key{lease.lease().task_id(), lease.lease().subtask_index()};
    spdlog::debug("subtask {}/{}: leased, attempt {}, epoch {}", key.first, key.second,
                  lease.attempt(), lease.lease().epoch());

    absl::StatusOr<json> result = absl::InternalError("not run");
    const Handler* handler = registry->Get(lease.kind());
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
      auto started = std::chrono::steady_clock::now();
      if (handler->QuickRun()) {
        result = run();  // microseconds: a hop to the pool and back costs more
      } else {
        result = co_await RunOnPool<absl::StatusOr<json>>(pool, std::move(run));
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            started).count();
      avg_run_ms = 0.8 * avg_run_ms + 0.2 * ms;
    }
    --busy;
    rs->handler_done = true;
    StartQueued();
    slot_signal.Notify();

    if (rs->lost) {
      spdlog::info("subtask {}/{}: handler ended after its lease was lost; result dropped",
                   key.first, key.second);
      subtasks.erase(key);
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
    pending_reports.push_back(std::move(report));
    report_signal.Notify();
  }

  // Sends finished subtasks' reports in batches; a lease stays in `subtasks`
  // (and so in heartbeats) until its report was answered.
  Awaitable<void> ReporterLoop() {
    Backoff backoff({50, 2000});
    while (!stopped) {
      if (pending_reports.empty()) {
        co_await report_signal.Wait(1000);
        continue;
      }
      pb::ReportRequest req;
      req.set_worker_id(worker_id);
      std::vector<pb::SubtaskReport> batch;
      batch.swap(pending_reports);
      for (auto& r : batch) {
        auto it = subtasks.find({r.lease().task_id(), r.lease().subtask_index()});
        if (it != subtasks.end() && it->second->lost) continue;  // fenced meanwhile
        *req.add_reports() = r;
      }
      if (req.reports_size() == 0) {
        for (auto& r : batch) subtasks.erase({r.lease().task_id(), r.lease().subtask_index()});
        continue;
      }
      // Tasks reconciled here get their state back with the answer.
      std::set<std::string> reconciled_here;
      for (const auto& r : req.reports()) {
        auto t = tasks.find(r.lease().task_id());
        if (t != tasks.end() && !t->second->lost) reconciled_here.insert(t->first);
      }
      for (const auto& id : reconciled_here) req.add_snapshot_tasks(id);
      req.set_snapshot_results_up_to(kWaitResultsUpTo);
      auto resp = co_await api->Report(req);
      if (!resp.ok()) {
        // Keep them and retry; if this lasts, the heartbeat loop fences them.
        for (auto& r : batch) pending_reports.push_back(std::move(r));
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
      for (auto& r : batch) subtasks.erase({r.lease().task_id(), r.lease().subtask_index()});
      for (auto& snapshot : *resp->mutable_snapshots()) {
        if (!snapshot.has_task()) continue;
        auto t = tasks.find(snapshot.task().id());
        if (t == tasks.end() || t->second->lost) continue;
        ReconciledTask& entry = *t->second;
        if (entry.snapshot && entry.snapshot->task().revision() >= snapshot.task().revision()) {
          continue;
        }
        entry.snapshot = std::move(snapshot);
        entry.snapshot_signal.Notify();
      }
    }
  }

  // --------------------------------------------------------- reconciliation

  // A handler's control function: on the loop when `quick` (see
  // Handler::QuickControl), else on `on` and back.
  template <typename R, typename Fn>
  Awaitable<R> Control(asio::thread_pool& on, bool quick, Fn fn) {
    if (quick) {
      R r = fn();
      co_return r;
    }
    R r = co_await RunOnPool<R>(on, std::move(fn));
    co_return r;
  }
  static constexpr size_t kQuickFoldMax = 64;

  Awaitable<absl::StatusOr<pb::Task>> Transition(std::shared_ptr<ReconciledTask> entry,
                                                 pb::Task task, lifecycle::TaskEvent event,
                                                 std::string reason, pb::TransitionTaskRequest req) {
    req.set_worker_id(worker_id);
    req.set_task_id(task.id());
    req.set_epoch(entry->lease.epoch());
    req.set_expected_version(task.version());
    req.set_event(std::string(lifecycle::TaskEventName(event)));
    req.set_reason(std::move(reason));
    absl::StatusOr<pb::Task> r = absl::UnknownError("");
    if (req.plan().bounds_size() <= kMaxBatchedBounds) {
      r = co_await QueueTransition(std::move(req));
    } else {
      req.set_lease_subtasks(0);  // a unary answer has no room for leases
      r = co_await api->TransitionTask(req);
    }
    if (r.ok()) {
      spdlog::debug("task {} {} -> {} ({}){}{}", task.id(),
                   StateName(static_cast<State>(task.state())),
                   StateName(static_cast<State>(r->state())), lifecycle::TaskEventName(event),
                   r->reason().empty() ? "" : ": ", r->reason());
    }
    co_return r;
  }

  Awaitable<absl::StatusOr<pb::Task>> QueueTransition(pb::TransitionTaskRequest req) {
    auto p = std::make_shared<PendingTransition>(io.get_executor());
    p->req = std::move(req);
    pending_transitions.push_back(p);
    transition_signal.Notify();
    while (!p->result && !stopped) co_await p->done.Wait(1000);
    absl::StatusOr<pb::Task> out = absl::CancelledError("worker stopped");
    if (p->result) out = std::move(*p->result);
    co_return out;
  }

  // Sends the queued transitions, all that came while the previous call was
  // out in one call: no wait is added when the worker is quiet, and a busy
  // one shares calls and commits among its reconcilers.
  Awaitable<void> TransitionLoop() {
    while (!stopped) {
      if (pending_transitions.empty()) {
        co_await transition_signal.Wait(1000);
        continue;
      }
      std::vector<std::shared_ptr<PendingTransition>> batch;
      pb::TransitionTasksRequest req;
      // Free slots go to the plans in this call: each leases its first
      // slices in its own write instead of waiting for the next Acquire.
      uint32_t room = draining ? 0 : SubtaskRoom();
      uint32_t asked = 0;
      while (!pending_transitions.empty() &&
             static_cast<int>(batch.size()) < kMaxTransitionsPerCall) {
        batch.push_back(std::move(pending_transitions.front()));
        pending_transitions.pop_front();
        pb::TransitionTaskRequest* t = req.add_transitions();
        *t = std::move(batch.back()->req);
        const uint32_t want = std::min(room, t->lease_subtasks());
        t->set_lease_subtasks(want);
        room -= want;
        asked += want;
      }
      plan_asks += asked;
      auto resp = co_await api->TransitionTasks(req);
      plan_asks -= asked;
      if (resp.ok()) {
        for (auto& r : *resp->mutable_results()) {
          for (auto& lease : *r.mutable_subtasks()) Enqueue(std::move(lease));
        }
        StartQueued();
      }
      if (asked > 0) slot_signal.Notify();  // what the plans did not take is free again
      for (size_t i = 0; i < batch.size(); ++i) {
        PendingTransition& p = *batch[i];
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

  // Why a subtask failed, for the task's reason: "subtask 3 failed after 2
  // attempts: <error>".
  Awaitable<std::string> FailedSubtasksSummary(const std::string& task_id) {
    pb::ListSubtasksRequest req;
    req.set_task_id(task_id);
    req.add_states(pb::ERROR);
    req.set_page_size(3);
    auto r = co_await api->ListSubtasks(req);
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
  Awaitable<lifecycle::TaskEvent> TerminatingCause(const std::string& task_id) {
    pb::GetHistoryRequest req;
    req.set_task_id(task_id);
    req.set_subtask_index(-1);
    req.set_page_size(10000);
    auto r = co_await api->GetHistory(req);
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

  // Folds every committed (SUCCEEDED) subtask result: those the last
  // WaitTask brought, when they are of this task version, else page by page.
  Awaitable<absl::StatusOr<json>> Reduce(const pb::Task& task, const Handler* handler,
                                         bool succeeded, ReconciledTask& entry) {
    json acc = handler->Init();
    std::optional<Subtasks> held;
    if (entry.results && entry.results_version == task.version()) held.swap(entry.results);
    entry.results.reset();
    std::string token;
    bool more = true;
    while (more) {
      auto page = std::make_shared<Subtasks>();
      if (held) {
        page->Swap(&*held);
        held.reset();
        more = false;
      } else {
        pb::ListSubtasksRequest req;
        req.set_task_id(task.id());
        req.add_states(pb::TERMINATED);
        req.set_page_size(10000);
        req.set_page_token(token);
        auto listed = co_await api->ListSubtasks(req);
        if (!listed.ok()) {
          absl::StatusOr<json> failed = listed.status();
          co_return failed;
        }
        page->Swap(listed->mutable_subtasks());
        token = listed->next_page_token();
        more = !token.empty();
      }
      auto fold = [&acc, page, handler]() {
        for (const auto& s : *page) {
          if (s.outcome() != pb::SUCCEEDED) continue;
          json r = json::parse(s.result_json(), nullptr, false);
          if (r.is_discarded()) {
            return absl::DataLossError(Cat("subtask ", s.index(), ": result is not JSON"));
          }
          if (auto st = handler->Fold(acc, r); !st.ok()) return st;
        }
        return absl::OkStatus();
      };
      const bool quick = handler->QuickControl() && page->size() <= kQuickFoldMax;
      auto folded = co_await Control<absl::Status>(pool, quick, std::move(fold));
      if (!folded.ok()) {
        absl::StatusOr<json> failed = folded;
        co_return failed;
      }
    }
    auto params = std::make_shared<json>(json::parse(
        task.spec().params_json().empty() ? "{}" : task.spec().params_json(), nullptr, false));
    auto finish = [handler, params, succeeded, id = task.id(), acc = std::move(acc)]() mutable {
      return handler->Finish({id, params.get(), succeeded}, std::move(acc));
    };
    absl::StatusOr<json> out =
        co_await Control<absl::StatusOr<json>>(control_pool, handler->QuickControl(),
                                               std::move(finish));
    co_return out;
  }

  // True when the task's active slices are all leased to this worker: then
  // only this worker's reports can move it (or a client, or a lost lease).
  bool AllActiveHeldHere(const pb::Task& task) const {
    const auto& c = task.counts();
    if (c.running() == 0 || c.preparing() > 0 || c.terminating() > 0) return false;
    uint64_t here = 0;
    for (auto it = subtasks.lower_bound({task.id(), 0});
         it != subtasks.end() && it->first.first == task.id(); ++it) {
      if (!it->second->lost) ++here;
    }
    return here == c.running();
  }

  // Waits up to kLocalWaitMs for the answer to this worker's Report of the
  // task's slices to bring a snapshot newer than `task` (task.revision moves
  // on every write to the task); nothing when it does not come. The server
  // wait comes after: a cancel, or a lease lost meanwhile, is seen at most
  // kLocalWaitMs later than it would be.
  Awaitable<std::optional<pb::WaitTaskResponse>> LocalWait(ReconciledTask& entry,
                                                          const pb::Task& task) {
    const int64_t until = Now() + kLocalWaitMs;
    auto fresh = [&] {
      return entry.snapshot && entry.snapshot->task().revision() > task.revision();
    };
    while (!fresh() && !entry.lost && !stopped && Now() < until) {
      co_await entry.snapshot_signal.Wait(until - Now());
    }
    std::optional<pb::WaitTaskResponse> out;
    if (fresh()) out.swap(entry.snapshot);
    entry.snapshot.reset();
    co_return out;
  }

  Awaitable<void> Reconcile(pb::TaskLease tl) {
    pb::Task task = std::move(*tl.mutable_task());
    auto entry = std::make_shared<ReconciledTask>(io.get_executor());
    entry->lease.set_task_id(task.id());
    entry->lease.set_subtask_index(-1);
    entry->lease.set_epoch(tl.epoch());
    // A newer lease epoch of a task this worker still reconciles (its old
    // lease expired while it was frozen or cut off, and the server handed it
    // the task again): the old loop must stop, as nothing else tells it.
    if (auto old = tasks.find(task.id()); old != tasks.end()) old->second->lost = true;
    tasks[task.id()] = entry;
    spdlog::info("task {}: reconciling (state {}, lease epoch {})", task.id(),
                 StateName(static_cast<State>(task.state())), tl.epoch());
    Backoff backoff({100, 5000});
    const Handler* handler = registry->Get(task.spec().kind());
    std::optional<lifecycle::TaskEvent> cause;  // the event that made it Terminating

    while (!entry->lost && !stopped && !draining) {
      Decision d = Decide(task, Now());
      absl::StatusOr<pb::Task> next = task;
      switch (d.kind) {
        case Decision::kPlan: {
          json params = json::parse(
              task.spec().params_json().empty() ? "{}" : task.spec().params_json(), nullptr, false);
          absl::StatusOr<Plan> plan = absl::InvalidArgumentError("params: not valid JSON");
          if (handler == nullptr) {
            plan = absl::InvalidArgumentError(Cat("kind: no handler '", task.spec().kind(), "'"));
          } else if (!params.is_discarded()) {
            PlanInput in{task.spec().begin(), task.spec().end(), &params};
            // Off the loop: a plan may read its input (csv.aggregate scans the file).
            auto plan_fn = [handler, in]() { return handler->PlanSlices(in); };
            plan = co_await Control<absl::StatusOr<Plan>>(control_pool, handler->QuickControl(),
                                                          std::move(plan_fn));
          }
          pb::TransitionTaskRequest req;
          if (!plan.ok()) {
            req.set_outcome(pb::FAILED);
            std::string why(plan.status().message());
            next = co_await Transition(entry, task, lifecycle::TaskEvent::kInvalid, why, req);
          } else {
            req.mutable_plan()->set_uniform(plan->uniform);
            for (uint64_t b : plan->bounds) req.mutable_plan()->add_bounds(b);
            // The most slices this plan could lease at once; the call that
            // carries it cuts this to the free slots (TransitionLoop).
            req.set_lease_subtasks(static_cast<uint32_t>(
                std::min<uint64_t>(SliceCount(task.spec(), *plan), kMaxLeasedAtPlan)));
            std::string none;
            next = co_await Transition(entry, task, lifecycle::TaskEvent::kPlanned, none, req);
          }
          break;
        }
        case Decision::kReplan: {
          std::string why = "re-running the subtasks that did not succeed";
          pb::TransitionTaskRequest req;
          next = co_await Transition(entry, task, lifecycle::TaskEvent::kPlanned, why, req);
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
            auto result = co_await Reduce(task, handler, /*succeeded=*/true, *entry);
            if (result.ok()) {
              req.set_then_finalize(true);
              req.set_outcome(pb::SUCCEEDED);
              req.set_result_json(result->dump());
            }
          }
          next = co_await Transition(entry, task, d.event, reason, req);
          if (next.ok()) cause = d.event;
          break;
        }
        case Decision::kStop: {
          pb::StopSubtasksRequest req;
          req.set_worker_id(worker_id);
          req.set_task_id(task.id());
          req.set_epoch(entry->lease.epoch());
          req.set_reason(task.reason());
          auto r = co_await api->StopSubtasks(req);
          if (!r.ok()) {
            next = r.status();
          } else {
            spdlog::info("task {}: stopping subtasks ({} never started, {} running told to stop)",
                         task.id(), r->stopped(), r->terminating());
            pb::GetTaskRequest get;
            get.set_id(task.id());
            next = co_await api->GetTask(get);
          }
          break;
        }
        case Decision::kWait: {
          std::optional<pb::WaitTaskResponse> local;
          if (AllActiveHeldHere(task)) local = co_await LocalWait(*entry, task);
          absl::StatusOr<pb::WaitTaskResponse> w = absl::UnknownError("");
          if (local) {
            w = std::move(*local);
          } else {
            pb::WaitTaskRequest req;
            req.set_worker_id(worker_id);
            req.set_task_id(task.id());
            req.set_known_version(task.version());
            req.set_errors_above(d.errors_above);
            req.set_wait_ms(static_cast<uint32_t>(d.wait_ms));
            req.set_results_up_to(kWaitResultsUpTo);
            w = co_await api->WaitTask(req);
          }
          entry->results.reset();
          if (!w.ok()) {
            next = w.status();
          } else {
            if (w->results_complete()) {
              entry->results_version = w->task().version();
              entry->results.emplace().Swap(w->mutable_results());
            }
            next = std::move(*w->mutable_task());
          }
          break;
        }
        case Decision::kFinalize: {
          // Why it is Terminating: known when this reconciler moved it there;
          // otherwise (a client's cancel, a lease taken over) from history.
          if (!cause) cause = co_await TerminatingCause(task.id());
          Finish fin = FinishFor(*cause);
          pb::TransitionTaskRequest req;
          req.set_outcome(fin.outcome);
          std::string reason = task.reason();
          if (handler != nullptr) {
            auto result = co_await Reduce(task, handler, fin.outcome == pb::SUCCEEDED, *entry);
            if (result.ok()) {
              req.set_result_json(result->dump());
            } else if (fin.outcome == pb::SUCCEEDED) {
              fin = {lifecycle::TaskEvent::kFinalizedFailed, pb::FAILED};
              req.set_outcome(pb::FAILED);
              reason = Cat("reduce failed: ", result.status().message());
            }
          }
          next = co_await Transition(entry, task, fin.event, reason, req);
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
      if (absl::IsCancelled(s) && draining) break;
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
      auto fresh = co_await api->GetTask(get);
      if (fresh.ok()) {
        task = std::move(*fresh);
      } else if (absl::IsNotFound(fresh.status())) {
        break;
      }
    }

    // find(), not operator[]: a superseded loop must not insert an empty
    // entry (a null pointer the heartbeat loop would dereference).
    auto mine = [&] {
      auto it = tasks.find(task.id());
      return it != tasks.end() && it->second == entry;
    };
    // A terminal task's lease ended with its last transition.
    bool release = mine() && !worker_id.empty() && !IsTerminal(static_cast<State>(task.state()));
    if (release) {
      pb::ReleaseTaskRequest req;
      req.set_worker_id(worker_id);
      req.set_task_id(task.id());
      req.set_epoch(entry->lease.epoch());
      co_await api->ReleaseTask(req);
    }
    if (mine()) tasks.erase(task.id());
    task_signal.Notify();
  }

  // ------------------------------------------------------------------ drain

  Awaitable<void> Drain(int sig) {
    spdlog::info("signal {}: draining (no new work; finishing {} running subtasks)", sig, busy);
    draining = true;
    api->CancelLongPolls();
    int64_t until = Now() + options.drain_timeout_ms;
    while ((busy > 0 || !queue.empty() || !pending_reports.empty()) && Now() < until) {
      co_await SleepMs(20);
    }
    // Let the reporter's last batch land.
    while (!subtasks.empty() && Now() < until) co_await SleepMs(20);
    while (!tasks.empty() && Now() < until) co_await SleepMs(20);
    if (!worker_id.empty()) {
      pb::DeregisterRequest req;
      req.set_worker_id(worker_id);
      co_await api->Deregister(req);
    }
    spdlog::info("drained; exiting");
    stopped = true;
    io.stop();
  }
};

Daemon::Daemon(DaemonOptions options, const Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

Daemon::~Daemon() { impl_->pool.join(); }

int Daemon::Run() {
  Impl& d = *impl_;
  asio::signal_set signals(d.io, SIGINT, SIGTERM);
  signals.async_wait([&d](const boost::system::error_code& ec, int sig) {
    if (!ec) asio::co_spawn(d.io, d.Drain(sig), asio::detached);
  });
  asio::co_spawn(d.io, [&d]() -> Awaitable<void> {
    co_await d.EnsureRegistered();
    asio::co_spawn(d.io, d.HeartbeatLoop(), asio::detached);
    asio::co_spawn(d.io, d.ReporterLoop(), asio::detached);
    asio::co_spawn(d.io, d.TransitionLoop(), asio::detached);
    asio::co_spawn(d.io, d.AcquireLoop(false), asio::detached);
    asio::co_spawn(d.io, d.AcquireLoop(true), asio::detached);
  }, asio::detached);
  d.io.run();
  // Handlers that ignore their stop token must not keep us: the pool's
  // threads are joined in the destructor only after their slices end.
  d.pool.stop();
  return 0;
}

}  // namespace orchard::worker
