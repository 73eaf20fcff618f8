// TaskService and WorkerService on gRPC's callback API.
//
// Every handler: validate on the gRPC thread (cheap, no I/O), then post the
// store work to `pool` and Finish() the reactor from there. Long polls
// (Acquire, WaitTask, WatchTasks) re-check the store each time the Hub says
// something changed, and park on the Hub in between.
#include "server/service.h"

#include <algorithm>
#include <cstdint>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "proto/rpc_status.h"
#include "common/lifecycle/task.h"
#include "common/strcat.h"
#include "server/submit_batch.h"
#include "server/validate.h"
#include "server/waiting.h"
#include "server/worker_names.h"

namespace orchard::server {

namespace pb = ::orchard::v1;
namespace asio = boost::asio;

namespace {

constexpr uint32_t kMaxSubtasksPerAcquire = 1000;
constexpr uint32_t kMaxTasksPerAcquire = 100;
constexpr int kMaxTransitionsPerCall = 1000;
// The most results a WaitTask answer carries (WaitTaskRequest.results_up_to).
constexpr uint32_t kMaxWaitResults = 10000;
constexpr int kMaxSnapshotTasks = 1000;  // per Report
// The most waits one WaitTasks stream holds at once (a worker has one per
// reconciler), and per message.
constexpr int64_t kMaxWaitsPerStream = 10000;
constexpr int kMaxWaitsPerMessage = 1000;
// Each watch polls the store only after a change, at most 50 times a second
// on average, with a burst of 8 so a short task's few quick changes are not
// delayed.
constexpr double kWatchPollIntervalMs = 20;
constexpr double kWatchPollBurst = 8;
// Changed tasks read per poll: 500 x 50 polls/s keeps up with a busy server.
constexpr uint32_t kWatchPageSize = 500;

absl::StatusOr<std::vector<State>> ParseStates(
    const google::protobuf::RepeatedField<int>& states) {
  std::vector<State> out;
  for (int s : states) {
    if (s < static_cast<int>(State::kPreparing) || s > static_cast<int>(State::kTerminated)) {
      return absl::InvalidArgumentError(Cat("states: unknown state ", s));
    }
    out.push_back(static_cast<State>(s));
  }
  return out;
}

// A worker's transition request, checked; fields are named with `prefix`
// ("transitions[3]." in a batch).
absl::StatusOr<store::TaskTransition> ParseTransition(const pb::TransitionTaskRequest& req,
                                                      const std::string& prefix) {
  auto invalid = [&prefix](std::string_view field, std::string_view what) {
    return absl::InvalidArgumentError(Cat(prefix, field, ": ", what));
  };
  if (auto s = ValidateId(req.worker_id(), prefix + "worker_id"); !s.ok()) return s;
  if (auto s = ValidateId(req.task_id(), prefix + "task_id"); !s.ok()) return s;
  auto event = lifecycle::ParseTaskEvent(req.event());
  if (!event) return invalid("event", Cat("unknown task event '", req.event(), "'"));
  if (req.outcome() < pb::OUTCOME_UNSPECIFIED || req.outcome() > pb::FAILED) {
    return invalid("outcome", "unknown value");
  }
  if (req.reason().size() > kMaxMessageBytes) {
    return invalid("reason", Cat("over ", kMaxMessageBytes, " bytes"));
  }
  if (req.then_finalize() && *event != lifecycle::TaskEvent::kAllSucceeded) {
    return invalid("then_finalize", Cat("only with AllSucceeded, not ", req.event()));
  }
  if (req.lease_subtasks() > 0 && *event != lifecycle::TaskEvent::kPlanned) {
    return invalid("lease_subtasks", Cat("only with Planned, not ", req.event()));
  }
  if (req.lease_subtasks() > kMaxSubtasksPerAcquire) {
    return invalid("lease_subtasks", Cat("at most ", kMaxSubtasksPerAcquire));
  }
  store::TaskTransition t;
  t.task_id = req.task_id();
  t.actor = req.worker_id();
  t.expected_version = req.expected_version();
  t.lease_worker = req.worker_id();
  t.lease_epoch = req.epoch();
  t.event = *event;
  t.reason = req.reason();
  t.outcome = static_cast<Outcome>(req.outcome());
  t.result_json = req.result_json();
  t.then_finalize = req.then_finalize();
  t.lease_subtasks = req.lease_subtasks();
  if (*event == lifecycle::TaskEvent::kPlanned &&
      (req.plan().uniform() || req.plan().bounds_size() > 0)) {
    t.plan = req.plan();
  }
  // A reduced result the store cannot keep (over the limit, or not JSON)
  // fails the task, naming the limit and the size, instead of refusing the
  // write: a refused final write is sent again and again, and the task
  // never ends (issue 19). AllSucceeded drops its then_finalize, so the
  // reconciler's Finalize comes here again and ends the task FAILED.
  if (!req.result_json().empty()) {
    std::string why;
    if (req.result_json().size() > kMaxResultBytes) {
      why = Cat("the task's result of ", req.result_json().size(),
                " bytes is over the limit of ", kMaxResultBytes, " bytes");
    } else if (!nlohmann::json::accept(req.result_json())) {
      why = "the task's result is not JSON";
    }
    if (!why.empty()) {
      t.result_json.clear();
      if (*event == lifecycle::TaskEvent::kAllSucceeded) {
        t.then_finalize = false;
      } else if (*event == lifecycle::TaskEvent::kFinalized ||
                 *event == lifecycle::TaskEvent::kFinalizedFailed) {
        t.event = lifecycle::TaskEvent::kFinalizedFailed;
        t.outcome = Outcome::kFailed;
        t.reason = t.reason.empty() ? why : Cat(why, "; ", t.reason);
      }
    }
  }
  return t;
}

// One report of a Report call, checked; fields are named with `prefix`
// ("reports[3]."). A succeeded result the store cannot keep (over
// kMaxResultBytes, or not JSON) becomes a permanent failure of the slice
// naming the limit and the size: retrying would make the same result.
absl::StatusOr<pb::SubtaskReport> CheckReport(const pb::SubtaskReport& r, const std::string& prefix) {
  if (r.outcome_case() == pb::SubtaskReport::OUTCOME_NOT_SET) {
    return absl::InvalidArgumentError(Cat(prefix, "outcome: must be set"));
  }
  if (r.lease().subtask_index() < 0) {
    return absl::InvalidArgumentError(Cat(prefix, "lease.subtask_index: must be >= 0"));
  }
  if (auto s = ValidateId(r.lease().task_id(), prefix + "lease.task_id"); !s.ok()) return s;
  pb::SubtaskReport out = r;
  if (r.failed_error().size() > kMaxMessageBytes) {
    out.set_failed_error(Cat(r.failed_error().substr(0, kMaxMessageBytes - 64), "... (cut at ",
                             kMaxMessageBytes, " bytes)"));
  }
  if (r.failed_permanently_error().size() > kMaxMessageBytes) {
    out.set_failed_permanently_error(Cat(r.failed_permanently_error().substr(0, kMaxMessageBytes - 64),
                                         "... (cut at ", kMaxMessageBytes, " bytes)"));
  }
  if (r.has_succeeded_result_json()) {
    if (r.succeeded_result_json().size() > kMaxResultBytes) {
      out.set_failed_permanently_error(Cat("the slice's result of ", r.succeeded_result_json().size(),
                                           " bytes is over the limit of ", kMaxResultBytes,
                                           " bytes"));
    } else if (!nlohmann::json::accept(r.succeeded_result_json())) {
      out.set_failed_permanently_error("the slice's result is not JSON");
    }
  }
  return out;
}

// A reconciler's wait, checked; fields are named with `prefix`
// ("waits[2].wait." on a stream).
absl::Status ValidateWait(const pb::WaitTaskRequest& req, const std::string& prefix) {
  if (auto s = ValidateId(req.worker_id(), prefix + "worker_id"); !s.ok()) return s;
  if (auto s = ValidateId(req.task_id(), prefix + "task_id"); !s.ok()) return s;
  if (req.results_up_to() > kMaxWaitResults) {
    return absl::InvalidArgumentError(Cat(prefix, "results_up_to: at most ", kMaxWaitResults));
  }
  return absl::OkStatus();
}

}  // namespace

struct Services::Impl {
  Impl(store::Store* s, Hub* h, const Clock* c, ServiceOptions o)
      : store(s), hub(h), clock(c), options(o), pool(o.pool_threads), tasks(this), workers(this) {}

  store::Store* store;
  Hub* hub;
  const Clock* clock;
  ServiceOptions options;
  asio::thread_pool pool;
  std::atomic<bool> stopping{false};

  // Why a task waits (the reason `get` and `watch` show).
  WaitExplainer waiting{store, clock, options.lease_ttl_ms};
  // Worker names beside their ids, for people (history, reconciler, worker).
  WorkerNames names{store, clock};

  // When each worker was last heard from (register, heartbeat, acquire,
  // report), in this process's memory only. A long poll parked before its
  // worker froze must not hand that worker leases: by the time work frees up
  // (its own leases expiring, say) it has been silent for longer than two
  // heartbeat intervals, and the poll returns empty instead.
  std::mutex contact_mu;
  std::unordered_map<std::string, int64_t> last_contact;
  // Subtasks each worker's own plans leased to it (lease_subtasks), ever. An
  // Acquire parked before such a plan asks for that many fewer: the free
  // slots it asked for are taken (guarded by contact_mu).
  std::unordered_map<std::string, uint64_t> leased_at_plan;

  int64_t HeartbeatIntervalMs() const { return std::max<int64_t>(options.lease_ttl_ms / 3, 50); }

  void Heard(const std::string& worker_id) {
    int64_t now = clock->NowMs();
    std::lock_guard lock(contact_mu);
    last_contact[worker_id] = now;
  }
  void Forget(const std::string& worker_id) {
    std::lock_guard lock(contact_mu);
    last_contact.erase(worker_id);
    leased_at_plan.erase(worker_id);
  }
  uint64_t LeasedAtPlan(const std::string& worker_id, uint64_t add = 0) {
    std::lock_guard lock(contact_mu);
    if (add == 0) {
      auto it = leased_at_plan.find(worker_id);
      return it == leased_at_plan.end() ? 0 : it->second;
    }
    return leased_at_plan[worker_id] += add;
  }
  // True when the worker was heard from neither since `since_ms` nor within
  // two heartbeat intervals of now.
  bool Silent(const std::string& worker_id, int64_t since_ms, int64_t now_ms) {
    int64_t heard = since_ms;
    {
      std::lock_guard lock(contact_mu);
      auto it = last_contact.find(worker_id);
      if (it != last_contact.end()) heard = std::max(heard, it->second);
    }
    return now_ms - heard > 2 * HeartbeatIntervalMs();
  }

  template <typename Fn>
  void Post(Fn fn) {
    asio::post(pool, std::move(fn));
  }

  // Runs `fn` (returning absl::Status, filling the response) on the pool and
  // finishes the unary call with its status.
  template <typename Fn>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, Fn fn) {
    auto* reactor = ctx->DefaultReactor();
    Post([reactor, fn = std::move(fn)]() mutable { reactor->Finish(ToGrpc(fn())); });
    return reactor;
  }

  // Starts a call whose store work is asynchronous: `start(finish)` runs on
  // the gRPC thread and must arrange for `finish(status)` to be called
  // exactly once (from a store callback, typically on the store's completion thread).
  template <typename Start>
  grpc::ServerUnaryReactor* Async(grpc::CallbackServerContext* ctx, Start start) {
    auto* reactor = ctx->DefaultReactor();
    start([reactor](const absl::Status& s) { reactor->Finish(ToGrpc(s)); });
    return reactor;
  }

  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* ctx, const absl::Status& s) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpc(s));
    return reactor;
  }

  void Annotate(pb::Task& task) {
    waiting.Annotate(task);
    names.Fill(task);
  }

  // One look at the task a reconciler waits on (WaitTask, WaitTasks). True
  // when the wait is over: `resp` or `status` is its answer. Otherwise
  // `seen` is the hub generation to park on until the next look.
  bool LookAtWait(const pb::WaitTaskRequest& req, int64_t deadline, bool cancelled,
                  pb::WaitTaskResponse* resp, absl::Status* status, uint64_t* seen) {
    *seen = hub->generation(Interest::Task(req.task_id()));
    int64_t now = clock->NowMs();
    // The results come in the same read only when nothing is active, and a
    // task in Running or Terminating with nothing active wakes the wait:
    // a look that parks has read no results (but those of a finished task).
    auto snap = store->TaskSnapshot(req.task_id(), req.results_up_to());
    if (!snap.ok()) {
      *status = snap.status();
      return true;
    }
    const pb::Task& t = snap->task();
    const auto& c = t.counts();
    bool active = c.preparing() + c.running() + c.terminating() > 0;
    bool wake = t.version() != req.known_version() ||
                ((t.state() == pb::RUNNING || t.state() == pb::TERMINATING) && !active) ||
                (req.errors_above() >= 0 && static_cast<int64_t>(c.error()) > req.errors_above());
    if (!wake && now < deadline && !stopping && !cancelled) return false;
    *resp = std::move(*snap);
    *status = absl::OkStatus();
    return true;
  }

  // Deadline of a long poll of wait_ms (capped by the server) from now.
  int64_t LongPollDeadline(uint32_t wait_ms) const {
    return clock->NowMs() + std::min(wait_ms, options.max_acquire_wait_ms);
  }

  // ------------------------------------------------------------ TaskService
  class TaskSvc final : public pb::TaskService::CallbackService {
   public:
    explicit TaskSvc(Impl* impl) : impl_(impl) {}

    grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx,
                                     const pb::SubmitRequest* req,
                                     pb::SubmitResponse* resp) override {
      auto spec = std::make_shared<pb::TaskSpec>(req->spec());
      if (auto s = ValidateAndDefaultSpec(*spec); !s.ok()) return impl_->Refuse(ctx, s);
      // No hop to the pool: the write is queued from here, and the writer
      // answers right after its commit.
      return impl_->Async(ctx, [this, spec, resp](auto finish) {
        impl_->store->CreateTaskAsync(
            *spec, impl_->clock->NowMs(),
            [this, spec, resp, finish](absl::StatusOr<store::SubmitResult> r) {
              if (!r.ok()) return finish(r.status());
              if (r->created) {
                impl_->hub->NotifyTask(r->task.id(), NewWork::kTasks);
                spdlog::info("task {} submitted: kind={} range=[{},{}) request_id='{}'",
                             r->task.id(), spec->kind(), spec->begin(), spec->end(),
                             spec->request_id());
              }
              *resp->mutable_task() = std::move(r->task);
              resp->set_created(r->created);
              impl_->Annotate(*resp->mutable_task());
              finish(absl::OkStatus());
            });
      });
    }

    grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* ctx,
                                      const pb::GetTaskRequest* req, pb::Task* resp) override {
      if (auto s = ValidateId(req->id(), "id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        auto t = impl_->store->GetTask(req->id());
        if (!t.ok()) return t.status();
        *resp = std::move(*t);
        impl_->Annotate(*resp);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* ctx,
                                        const pb::ListTasksRequest* req,
                                        pb::ListTasksResponse* resp) override {
      auto states = ParseStates(req->states());
      if (!states.ok()) return impl_->Refuse(ctx, states.status());
      if (req->page_size() > 1000) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("page_size: at most 1000"));
      }
      if (!req->kind().empty()) {
        if (auto s = ValidateId(req->kind(), "kind"); !s.ok()) return impl_->Refuse(ctx, s);
      }
      store::TaskFilter f;
      f.states = std::move(*states);
      f.labels.insert(req->labels().begin(), req->labels().end());
      f.kind = req->kind();
      f.page_size = req->page_size() == 0 ? 100 : req->page_size();
      f.page_token = req->page_token();
      return impl_->Unary(ctx, [this, f = std::move(f), resp]() -> absl::Status {
        auto page = impl_->store->ListTasks(f);
        if (!page.ok()) return page.status();
        for (auto& t : page->tasks) {
          impl_->Annotate(t);
          *resp->add_tasks() = std::move(t);
        }
        resp->set_next_page_token(page->next_page_token);
        return absl::OkStatus();
      });
    }

    grpc::ServerWriteReactor<pb::WatchTasksResponse>* WatchTasks(
        grpc::CallbackServerContext* ctx, const pb::WatchTasksRequest* req) override;

    grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* ctx,
                                         const pb::CancelTaskRequest* req,
                                         pb::Task* resp) override {
      if (auto s = ValidateId(req->id(), "id"); !s.ok()) return impl_->Refuse(ctx, s);
      if (req->reason().size() > 1024) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("reason: longer than 1024"));
      }
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        auto task = impl_->store->GetTask(req->id());
        if (!task.ok()) return task.status();
        // Idempotent: a second cancel of a task already stopping is a no-op.
        if (task->state() == pb::TERMINATING || task->state() == pb::TERMINATED) {
          *resp = std::move(*task);
          return absl::OkStatus();
        }
        store::TaskTransition t;
        t.task_id = req->id();
        t.actor = "client";
        t.event = lifecycle::TaskEvent::kCancelRequested;
        t.reason = req->reason().empty() ? "cancelled by client" : req->reason();
        auto r = impl_->store->TransitionTask(t, impl_->clock->NowMs());
        if (!r.ok()) return r.status();
        impl_->hub->NotifyTask(req->id(), NewWork::kTasks);  // the commit observer logs it
        *resp = std::move(*r);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* RetryTask(grpc::CallbackServerContext* ctx,
                                        const pb::RetryTaskRequest* req, pb::Task* resp) override {
      if (auto s = ValidateId(req->id(), "id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        store::TaskTransition t;
        t.task_id = req->id();
        t.actor = "client";
        t.event = lifecycle::TaskEvent::kRetryRequested;
        t.reason = "retry requested by client";
        auto r = impl_->store->TransitionTask(t, impl_->clock->NowMs());
        if (!r.ok()) return r.status();
        impl_->hub->NotifyTask(req->id(), NewWork::kBoth);
        *resp = std::move(*r);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* ListSubtasks(grpc::CallbackServerContext* ctx,
                                           const pb::ListSubtasksRequest* req,
                                           pb::ListSubtasksResponse* resp) override {
      if (auto s = ValidateId(req->task_id(), "task_id"); !s.ok()) return impl_->Refuse(ctx, s);
      auto states = ParseStates(req->states());
      if (!states.ok()) return impl_->Refuse(ctx, states.status());
      if (req->page_size() > 10000) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("page_size: at most 10000"));
      }
      store::SubtaskFilter f;
      f.task_id = req->task_id();
      f.states = std::move(*states);
      f.page_size = req->page_size() == 0 ? 1000 : req->page_size();
      f.page_token = req->page_token();
      return impl_->Unary(ctx, [this, f = std::move(f), resp]() -> absl::Status {
        auto page = impl_->store->ListSubtasks(f);
        if (!page.ok()) return page.status();
        for (auto& s : page->subtasks) {
          impl_->names.Fill(s);
          *resp->add_subtasks() = std::move(s);
        }
        resp->set_next_page_token(page->next_page_token);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* ctx,
                                         const pb::GetHistoryRequest* req,
                                         pb::GetHistoryResponse* resp) override {
      if (auto s = ValidateId(req->task_id(), "task_id"); !s.ok()) return impl_->Refuse(ctx, s);
      if (req->has_subtask_index() && req->subtask_index() < -1) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(
                                      "subtask_index: must be -1 (the task) or an index"));
      }
      if (req->page_size() > 10000) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("page_size: at most 10000"));
      }
      store::HistoryFilter f;
      f.task_id = req->task_id();
      if (req->has_subtask_index()) f.subtask_index = req->subtask_index();
      f.page_size = req->page_size() == 0 ? 1000 : req->page_size();
      f.page_token = req->page_token();
      return impl_->Unary(ctx, [this, f = std::move(f), resp]() -> absl::Status {
        // A history of an unknown task is NOT_FOUND, not an empty list.
        if (auto t = impl_->store->GetTask(f.task_id); !t.ok()) return t.status();
        auto page = impl_->store->GetHistory(f);
        if (!page.ok()) return page.status();
        for (auto& e : page->entries) {
          impl_->names.Fill(e);
          *resp->add_entries() = std::move(e);
        }
        resp->set_next_page_token(page->next_page_token);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                          const pb::ListWorkersRequest* req,
                                          pb::ListWorkersResponse* resp) override {
      return impl_->Unary(ctx, [this, resp]() -> absl::Status {
        auto w = impl_->store->ListWorkers(impl_->clock->NowMs(), impl_->options.lease_ttl_ms);
        if (!w.ok()) return w.status();
        for (auto& x : *w) *resp->add_workers() = std::move(x);
        return absl::OkStatus();
      });
    }

    // GetServerInfo and SubmitTasks live in submit_batch.cc.
    grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* ctx,
                                            const pb::GetServerInfoRequest*,
                                            pb::ServerInfo* resp) override {
      FillServerInfo("sqlite", resp);
      return impl_->Refuse(ctx, absl::OkStatus());
    }

    grpc::ServerUnaryReactor* SubmitTasks(grpc::CallbackServerContext* ctx,
                                          const pb::SubmitTasksRequest* req,
                                          pb::SubmitTasksResponse* resp) override {
      if (req->specs_size() > kMaxSubmitBatch) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(Cat(
                                      "specs: at most ", kMaxSubmitBatch, " per call, got ",
                                      req->specs_size())));
      }
      return impl_->Async(ctx, [this, req, resp](auto finish) {
        SubmitBatch(
            impl_->store, impl_->clock->NowMs(), *req, resp,
            [this](pb::SubmitTaskResult& r) {
              if (r.created()) impl_->hub->NotifyTask(r.task().id(), NewWork::kTasks);
              impl_->Annotate(*r.mutable_task());
            },
            finish);
      });
    }

   private:
    Impl* impl_;
  };

  // ---------------------------------------------------------- WorkerService
  // WaitTasks: one worker's waits on one stream. Each wait is looked at and
  // parked on the hub as WaitTask's would be; answers that queue while a
  // message is in flight leave together in the next one. Lifetime: owned by
  // `self_` until OnDone(), and by every wait being looked at or parked.
  class WaitStream final
      : public grpc::ServerBidiReactor<pb::WaitTasksRequest, pb::WaitTasksResponse> {
   public:
    explicit WaitStream(Impl* impl) : impl_(impl) {}

    void Start(std::shared_ptr<WaitStream> self) {
      self_ = std::move(self);
      StartRead(&in_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) {
        // The worker closed its side or went away: parked waits are dropped.
        Close(grpc::Status::OK);
        return;
      }
      auto self = Self();
      if (!self) return;
      auto batch = std::make_shared<std::vector<Wait>>();
      const int n = in_.waits_size();
      for (int i = 0; i < n; ++i) {
        pb::TaskWait& w = *in_.mutable_waits(i);
        absl::Status s = i < kMaxWaitsPerMessage
                             ? ValidateWait(w.wait(), Cat("waits[", i, "].wait."))
                             : absl::InvalidArgumentError(
                                   Cat("waits: at most ", kMaxWaitsPerMessage, " per message"));
        if (s.ok() && waits_.fetch_add(1) >= kMaxWaitsPerStream) {
          waits_.fetch_sub(1);
          s = absl::ResourceExhaustedError(
              Cat("waits[", i, "]: at most ", kMaxWaitsPerStream, " waits per stream"));
        }
        if (!s.ok()) {
          pb::TaskWaitAnswer a;
          a.set_wait_id(w.wait_id());
          SetItemStatus(&a, s);
          Send(std::move(a), /*counted=*/false);
          continue;
        }
        Wait& p = batch->emplace_back();
        p.id = w.wait_id();
        p.deadline = impl_->LongPollDeadline(w.wait().wait_ms());
        p.req = std::make_shared<pb::WaitTaskRequest>(std::move(*w.mutable_wait()));
      }
      in_.Clear();
      {
        std::lock_guard lock(mu_);
        if (finished_) return;  // a stopping server ended the stream
        StartRead(&in_);
      }
      if (batch->empty()) return;
      impl_->Post([self, batch] { self->LookAll(*batch); });
    }

    void OnWriteDone(bool ok) override {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "worker went away"));
        return;
      }
      WriteLocked();
    }

    void OnCancel() override { Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

    void OnDone() override {
      std::shared_ptr<WaitStream> last;  // may be the last owner: released after the lock
      std::lock_guard lock(mu_);
      last = std::move(self_);
    }

   private:
    struct Wait {
      uint64_t id = 0;
      int64_t deadline = 0;
      std::shared_ptr<pb::WaitTaskRequest> req;
    };

    std::shared_ptr<WaitStream> Self() {
      std::lock_guard lock(mu_);
      return self_;
    }

    // On the pool: answers each wait whose task is ready (in one message),
    // and parks the others until their task changes.
    void LookAll(const std::vector<Wait>& waits) {
      auto self = Self();
      if (!self || closing_) return;
      std::vector<pb::TaskWaitAnswer> answers;
      for (const Wait& p : waits) {
        pb::TaskWaitAnswer a;
        absl::Status status;
        uint64_t seen = 0;
        if (!impl_->LookAtWait(*p.req, p.deadline, false, a.mutable_response(), &status, &seen)) {
          impl_->hub->Wait(Interest::Task(p.req->task_id()), seen, p.deadline,
                           [self, p](bool) { self->Woken(p); });
          continue;
        }
        a.set_wait_id(p.id);
        if (!status.ok()) {
          a.clear_response();
          SetItemStatus(&a, status);
        }
        answers.push_back(std::move(a));
      }
      if (!answers.empty()) Send(std::move(answers), /*counted=*/true);
    }

    // A parked wait's task changed (or its time is up): the waits woken
    // until the pool gets to them share one look and one message, instead
    // of a thread wake-up each.
    void Woken(const Wait& p) {
      bool post = false;
      {
        std::lock_guard lock(mu_);
        woken_.push_back(p);
        post = !look_posted_;
        look_posted_ = true;
      }
      if (!post) return;
      auto self = Self();
      if (!self) return;
      impl_->Post([self] {
        std::vector<Wait> batch;
        {
          std::lock_guard lock(self->mu_);
          batch.swap(self->woken_);
          self->look_posted_ = false;
        }
        self->LookAll(batch);
      });
    }

    void Send(pb::TaskWaitAnswer a, bool counted) {
      std::vector<pb::TaskWaitAnswer> one;
      one.push_back(std::move(a));
      Send(std::move(one), counted);
    }
    void Send(std::vector<pb::TaskWaitAnswer> answers, bool counted) {
      if (counted) waits_.fetch_sub(static_cast<int64_t>(answers.size()));
      std::lock_guard lock(mu_);
      if (finished_) return;
      for (auto& a : answers) *queued_.add_answers() = std::move(a);
      // A stopping server answers what it has, then ends the stream.
      if (impl_->stopping)
        closing_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
      WriteLocked();
    }

    // Sends what queued, if no message is in flight; ends the stream once
    // it is closing and nothing is in flight.
    void WriteLocked() {
      if (writing_ || finished_) return;
      if (queued_.answers_size() > 0 && !closing_) {
        out_.Clear();
        out_.Swap(&queued_);
        writing_ = true;
        StartWrite(&out_);
        return;
      }
      if (closing_ || closing_status_) {
        FinishLocked(closing_status_ ? *closing_status_ : grpc::Status::OK);
      }
    }

    void Close(const grpc::Status& status) {
      closing_ = true;
      std::lock_guard lock(mu_);
      if (!closing_status_) closing_status_ = status;
      WriteLocked();
    }

    void FinishLocked(const grpc::Status& status) {
      if (finished_) return;
      finished_ = true;
      closing_ = true;
      Finish(status);
    }

    Impl* impl_;
    pb::WaitTasksRequest in_;  // the read in flight (gRPC's thread only)
    std::atomic<int64_t> waits_{0};
    std::atomic<bool> closing_{false};

    std::mutex mu_;
    pb::WaitTasksResponse queued_;  // answers for the next message
    pb::WaitTasksResponse out_;     // the message in flight
    bool writing_ = false;
    bool finished_ = false;
    std::optional<grpc::Status> closing_status_;
    std::shared_ptr<WaitStream> self_;
    std::vector<Wait> woken_;   // parked waits woken, for the next look
    bool look_posted_ = false;  // a look at woken_ is queued on the pool
  };

  class WorkerSvc final : public pb::WorkerService::CallbackService {
   public:
    explicit WorkerSvc(Impl* impl) : impl_(impl) {}

    grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                       const pb::RegisterRequest* req,
                                       pb::RegisterResponse* resp) override {
      if (!req->name().empty()) {
        if (auto s = ValidateId(req->name(), "name"); !s.ok()) return impl_->Refuse(ctx, s);
      }
      if (req->kinds().empty()) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("kinds: must list at least one"));
      }
      if (req->kinds_size() > 256) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("kinds: at most 256"));
      }
      for (const auto& k : req->kinds()) {
        if (auto s = ValidateId(k, "kinds"); !s.ok()) return impl_->Refuse(ctx, s);
      }
      if (req->slots() == 0 || req->slots() > 1024) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError("slots: must be 1 to 1024"));
      }
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        std::vector<std::string> kinds(req->kinds().begin(), req->kinds().end());
        auto id = impl_->store->RegisterWorker(req->name().empty() ? "worker" : req->name(), kinds,
                                               req->slots(), impl_->clock->NowMs());
        if (!id.ok()) return id.status();
        spdlog::info("worker {} registered: name={} slots={} kinds={}", *id, req->name(),
                     req->slots(), fmt::join(kinds, ","));
        resp->set_worker_id(*id);
        resp->set_lease_ttl_ms(impl_->options.lease_ttl_ms);
        resp->set_heartbeat_interval_ms(impl_->HeartbeatIntervalMs());
        impl_->Heard(*id);
        impl_->waiting.Invalidate();  // a new worker may run kinds that were waiting
        impl_->hub->Notify();
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                        const pb::HeartbeatRequest* req,
                                        pb::HeartbeatResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        auto r = impl_->store->Heartbeat(*req, impl_->clock->NowMs(), impl_->options.lease_ttl_ms);
        if (absl::IsNotFound(r.status())) {
          resp->set_unknown_worker(true);
          return absl::OkStatus();
        }
        if (!r.ok()) return r.status();
        impl_->Heard(req->worker_id());
        for (auto& l : r->lost) *resp->add_lost() = std::move(l);
        for (auto& l : r->stop) *resp->add_stop() = std::move(l);
        resp->set_lease_expire_ms(r->lease_expire_ms);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* Acquire(grpc::CallbackServerContext* ctx,
                                      const pb::AcquireRequest* req,
                                      pb::AcquireResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      if (req->max_subtasks() > kMaxSubtasksPerAcquire) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(
                                      Cat("max_subtasks: at most ", kMaxSubtasksPerAcquire)));
      }
      if (req->max_tasks() > kMaxTasksPerAcquire) {
        return impl_->Refuse(
            ctx, absl::InvalidArgumentError(Cat("max_tasks: at most ", kMaxTasksPerAcquire)));
      }
      auto call = NewLongPoll(ctx, req->wait_ms());
      call->leased_at_plan = impl_->LeasedAtPlan(req->worker_id());
      AcquireOnce(call, req, resp);
      return call->reactor;
    }

    grpc::ServerUnaryReactor* Report(grpc::CallbackServerContext* ctx,
                                     const pb::ReportRequest* req,
                                     pb::ReportResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      // Each report on its own: a malformed one gets its own status, and a
      // result the store cannot keep fails its slice for good (below), so
      // one bad item never refuses the others (issue 19).
      auto reports = std::make_shared<std::vector<pb::SubtaskReport>>();
      auto refused = std::make_shared<std::vector<absl::Status>>(req->reports_size());
      reports->reserve(req->reports_size());
      for (int i = 0; i < req->reports_size(); ++i) {
        auto r = CheckReport(req->reports(i), Cat("reports[", i, "]."));
        if (!r.ok()) {
          (*refused)[i] = r.status();
        } else {
          reports->push_back(std::move(*r));
        }
      }
      if (req->snapshot_tasks_size() > kMaxSnapshotTasks) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(
                                      Cat("snapshot_tasks: at most ", kMaxSnapshotTasks)));
      }
      for (int i = 0; i < req->snapshot_tasks_size(); ++i) {
        if (auto s = ValidateId(req->snapshot_tasks(i), Cat("snapshot_tasks[", i, "]"));
            !s.ok()) {
          return impl_->Refuse(ctx, s);
        }
      }
      if (req->snapshot_results_up_to() > kMaxWaitResults) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(Cat(
                                      "snapshot_results_up_to: at most ", kMaxWaitResults)));
      }
      return impl_->Async(ctx, [this, req, resp, reports, refused](auto finish) {
        store::SnapshotAsk ask{
            .task_ids = {req->snapshot_tasks().begin(), req->snapshot_tasks().end()},
            .results_up_to = req->snapshot_results_up_to()};
        impl_->store->ReportAsync(
            req->worker_id(), std::move(*reports), impl_->clock->NowMs(), std::move(ask),
            [this, req, resp, refused, finish](absl::StatusOr<store::ReportResult> r) {
              if (!r.ok()) return finish(r.status());
              impl_->Heard(req->worker_id());
              size_t next = 0;
              for (const absl::Status& own : *refused) {
                absl::Status s = own;
                if (own.ok()) {
                  s = next < r->statuses.size() ? r->statuses[next]
                                                : absl::InternalError("store: missing answer");
                  ++next;
                }
                resp->add_codes(static_cast<int>(s.code()));
                resp->add_messages(std::string(s.message()));
              }
              // A finished slice may free a parallelism slot, a failed one
              // comes back for a retry: new work either way.
              std::set<std::string_view> changed;
              for (const auto& r : req->reports()) changed.insert(r.lease().task_id());
              for (auto id : changed) impl_->hub->NotifyTask(std::string(id), NewWork::kSubtasks);
              // The store read the snapshots it could in the reports' write;
              // the rest (many results, or many tasks) go to the pool, as the
              // writer has the next batch to commit.
              bool rest = false;
              for (auto& s : r->snapshots) {
                pb::WaitTaskResponse* snapshot = resp->add_snapshots();
                if (s) {
                  *snapshot = std::move(*s);
                } else {
                  rest = true;
                }
              }
              if (!rest) return finish(absl::OkStatus());
              // `left` keeps which were read (a moved-from optional stays engaged).
              impl_->Post([this, req, resp, finish, left = std::move(r->snapshots)] {
                for (int i = 0; i < req->snapshot_tasks_size(); ++i) {
                  if (left[i]) continue;
                  auto snap = impl_->store->TaskSnapshot(req->snapshot_tasks(i),
                                                         req->snapshot_results_up_to());
                  if (snap.ok()) *resp->mutable_snapshots(i) = std::move(*snap);
                }
                finish(absl::OkStatus());
              });
            });
      });
    }

    grpc::ServerUnaryReactor* TransitionTask(grpc::CallbackServerContext* ctx,
                                             const pb::TransitionTaskRequest* req,
                                             pb::Task* resp) override {
      auto t = ParseTransition(*req, "");
      if (!t.ok()) return impl_->Refuse(ctx, t.status());
      if (t->lease_subtasks > 0) {
        // The answer is a Task: it has no room for the leases.
        return impl_->Refuse(ctx,
                             absl::InvalidArgumentError("lease_subtasks: only in TransitionTasks"));
      }
      return impl_->Unary(ctx, [this, t = std::move(*t), resp]() -> absl::Status {
        auto r = impl_->store->TransitionTask(t, impl_->clock->NowMs());
        if (!r.ok()) return r.status();
        impl_->hub->NotifyTask(t.task_id, t.event == lifecycle::TaskEvent::kPlanned
                                              ? NewWork::kSubtasks
                                              : NewWork::kNone);
        *resp = std::move(*r);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* TransitionTasks(grpc::CallbackServerContext* ctx,
                                              const pb::TransitionTasksRequest* req,
                                              pb::TransitionTasksResponse* resp) override {
      if (req->transitions_size() > kMaxTransitionsPerCall) {
        return impl_->Refuse(ctx, absl::InvalidArgumentError(
                                      Cat("transitions: at most ", kMaxTransitionsPerCall)));
      }
      // Each item on its own: one that does not parse gets its own status
      // and the others are written (issue 19: one bad item refused a batch).
      std::vector<store::TaskTransition> ts;
      ts.reserve(req->transitions_size());
      std::vector<absl::Status> refused(req->transitions_size());
      for (int i = 0; i < req->transitions_size(); ++i) {
        auto t = ParseTransition(req->transitions(i), Cat("transitions[", i, "]."));
        if (!t.ok()) {
          refused[i] = t.status();
          continue;
        }
        t->lease_ttl_ms = impl_->options.lease_ttl_ms;
        ts.push_back(std::move(*t));
      }
      // What the hub is told after each write, kept apart from the moved batch.
      std::vector<std::pair<std::string, bool>> notify;
      notify.reserve(ts.size());
      for (const auto& t : ts) {
        notify.emplace_back(t.task_id, t.event == lifecycle::TaskEvent::kPlanned);
      }
      return impl_->Async(ctx, [this, &ts, &notify, &refused, req, resp](auto finish) {
        impl_->store->TransitionTasksAsync(
            std::move(ts), impl_->clock->NowMs(),
            [this, notify = std::move(notify), refused = std::move(refused), req, resp,
             finish](std::vector<absl::StatusOr<store::TransitionResult>> written) {
              // Back in request order: the refused items in their places.
              std::vector<absl::StatusOr<store::TransitionResult>> results;
              std::vector<size_t> written_at;  // results index -> notify index
              results.reserve(refused.size());
              size_t next = 0;
              for (size_t i = 0; i < refused.size(); ++i) {
                if (!refused[i].ok()) {
                  results.emplace_back(refused[i]);
                  written_at.push_back(SIZE_MAX);
                } else if (next < written.size()) {
                  written_at.push_back(next);
                  results.push_back(std::move(written[next++]));
                } else {
                  results.emplace_back(absl::InternalError("store: missing answer"));
                  written_at.push_back(SIZE_MAX);
                }
              }
              for (size_t i = 0; i < results.size(); ++i) {
                pb::TransitionTaskResult* out = resp->add_results();
                if (!results[i].ok()) {
                  SetItemStatus(out, results[i].status());
                  continue;
                }
                const auto& nt = notify[written_at[i]];
                store::TransitionResult& r = *results[i];
                if (!r.subtasks.empty()) {
                  impl_->LeasedAtPlan(req->transitions(static_cast<int>(i)).worker_id(),
                                      r.subtasks.size());
                }
                // Acquirers are woken only for subtasks the planner left.
                impl_->hub->NotifyTask(nt.first,
                                       nt.second && r.task.counts().preparing() > 0
                                           ? NewWork::kSubtasks
                                           : NewWork::kNone);
                *out->mutable_task() = std::move(r.task);
                for (auto& l : r.subtasks) *out->add_subtasks() = std::move(l);
              }
              finish(absl::OkStatus());
            });
      });
    }

    grpc::ServerUnaryReactor* StopSubtasks(grpc::CallbackServerContext* ctx,
                                           const pb::StopSubtasksRequest* req,
                                           pb::StopSubtasksResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      if (auto s = ValidateId(req->task_id(), "task_id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req, resp]() -> absl::Status {
        auto r = impl_->store->StopSubtasks(req->task_id(), req->worker_id(), req->epoch(),
                                            req->reason(), impl_->clock->NowMs());
        if (!r.ok()) return r.status();
        resp->set_stopped(r->stopped);
        resp->set_terminating(r->terminating);
        impl_->hub->NotifyTask(req->task_id(), NewWork::kNone);
        return absl::OkStatus();
      });
    }

    grpc::ServerUnaryReactor* WaitTask(grpc::CallbackServerContext* ctx,
                                       const pb::WaitTaskRequest* req,
                                       pb::WaitTaskResponse* resp) override {
      if (auto s = ValidateWait(*req, ""); !s.ok()) return impl_->Refuse(ctx, s);
      auto call = NewLongPoll(ctx, req->wait_ms());
      impl_->Post([this, call, req, resp] { WaitTaskOnce(call, req, resp); });
      return call->reactor;
    }

    grpc::ServerBidiReactor<pb::WaitTasksRequest, pb::WaitTasksResponse>* WaitTasks(
        grpc::CallbackServerContext* ctx) override {
      auto stream = std::make_shared<WaitStream>(impl_);
      stream->Start(stream);
      return stream.get();
    }

    grpc::ServerUnaryReactor* ReleaseTask(grpc::CallbackServerContext* ctx,
                                          const pb::ReleaseTaskRequest* req,
                                          pb::ReleaseTaskResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      if (auto s = ValidateId(req->task_id(), "task_id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req]() -> absl::Status {
        auto s = impl_->store->ReleaseTask(req->worker_id(), req->task_id(), req->epoch());
        if (s.ok()) impl_->hub->NotifyTask(req->task_id(), NewWork::kTasks);
        return s;
      });
    }

    grpc::ServerUnaryReactor* Deregister(grpc::CallbackServerContext* ctx,
                                         const pb::DeregisterRequest* req,
                                         pb::DeregisterResponse* resp) override {
      if (auto s = ValidateId(req->worker_id(), "worker_id"); !s.ok()) return impl_->Refuse(ctx, s);
      return impl_->Unary(ctx, [this, req]() -> absl::Status {
        auto s = impl_->store->DeregisterWorker(req->worker_id(), impl_->clock->NowMs());
        impl_->Forget(req->worker_id());
        if (s.ok()) {
          spdlog::info("worker {} deregistered", req->worker_id());
          impl_->hub->Notify();
        }
        return s;
      });
    }

   private:
    struct LongPoll {
      grpc::ServerUnaryReactor* reactor = nullptr;
      grpc::CallbackServerContext* ctx = nullptr;
      int64_t started = 0;
      int64_t deadline = 0;
      uint64_t leased_at_plan = 0;  // the worker's count when the call came
    };

    // A long poll held at most wait_ms (capped by the server), from now.
    std::shared_ptr<LongPoll> NewLongPoll(grpc::CallbackServerContext* ctx, uint32_t wait_ms) {
      auto call = std::make_shared<LongPoll>();
      call->reactor = ctx->DefaultReactor();
      call->ctx = ctx;
      call->started = impl_->clock->NowMs();
      call->deadline = call->started + std::min(wait_ms, impl_->options.max_acquire_wait_ms);
      return call;
    }

    // One look at the store for work; parks on the hub when there is none.
    void AcquireOnce(std::shared_ptr<LongPoll> call, const pb::AcquireRequest* req,
                     pb::AcquireResponse* resp) {
      // Parked on the kind of work it asked for.
      const Interest interest = req->max_tasks() == 0      ? Interest::SubtaskWork()
                                : req->max_subtasks() == 0 ? Interest::TaskWork()
                                                           : Interest::Work();
      uint64_t seen = impl_->hub->generation(interest);
      int64_t now = impl_->clock->NowMs();
      if (impl_->Silent(req->worker_id(), call->started, now)) {
        spdlog::info("worker {} silent for over {} ms: its parked acquire returns empty",
                     req->worker_id(), 2 * impl_->HeartbeatIntervalMs());
        call->reactor->Finish(grpc::Status::OK);
        return;
      }
      // The worker's own plans may have filled the slots this call asked
      // for since it came: it asks again, with the room it has now.
      const uint64_t taken = impl_->LeasedAtPlan(req->worker_id()) - call->leased_at_plan;
      const uint32_t max_subtasks =
          req->max_subtasks() > taken ? req->max_subtasks() - static_cast<uint32_t>(taken) : 0;
      if (req->max_subtasks() > 0 && max_subtasks == 0 && req->max_tasks() == 0) {
        call->reactor->Finish(grpc::Status::OK);
        return;
      }
      // Nothing here blocks: the write is queued, and its callback (on the
      // writer) answers or parks the call; a wake-up looks again from the
      // hub's calling thread.
      impl_->store->AcquireAsync(
          req->worker_id(), max_subtasks, req->max_tasks(), now, impl_->options.lease_ttl_ms,
          [this, call, req, resp, interest, seen, now](absl::StatusOr<store::AcquireResult> r) {
            if (!r.ok()) {
              call->reactor->Finish(ToGrpc(r.status()));
              return;
            }
            if (!r->subtasks.empty() || !r->tasks.empty() || now >= call->deadline ||
                impl_->stopping || call->ctx->IsCancelled()) {
              for (auto& s : r->subtasks) *resp->add_subtasks() = std::move(s);
              for (auto& t : r->tasks) *resp->add_tasks() = std::move(t);
              call->reactor->Finish(grpc::Status::OK);
              return;
            }
            int64_t wake_at = call->deadline;
            if (r->next_ready_ms > 0) wake_at = std::min(wake_at, r->next_ready_ms);
            impl_->hub->Wait(interest, seen, wake_at,
                             [this, call, req, resp](bool) { AcquireOnce(call, req, resp); });
          });
    }

    void WaitTaskOnce(std::shared_ptr<LongPoll> call, const pb::WaitTaskRequest* req,
                      pb::WaitTaskResponse* resp) {
      uint64_t seen = 0;
      absl::Status status;
      if (impl_->LookAtWait(*req, call->deadline, call->ctx->IsCancelled(), resp, &status, &seen)) {
        call->reactor->Finish(ToGrpc(status));
        return;
      }
      impl_->hub->Wait(Interest::Task(req->task_id()), seen, call->deadline,
                       [this, call, req, resp](bool) {
                         impl_->Post([this, call, req, resp] { WaitTaskOnce(call, req, resp); });
                       });
    }

    Impl* impl_;
  };

  TaskSvc tasks;
  WorkerSvc workers;
};

// ---------------------------------------------------------------- WatchTasks

namespace {

// Streams tasks as they change: level-triggered snapshots, store polls paced
// by a token bucket (kWatchPollIntervalMs, kWatchPollBurst), resumable from a
// revision. Lifetime: owned by `self` until OnDone(), and by every pending
// callback.
class WatchReactor final : public grpc::ServerWriteReactor<pb::WatchTasksResponse> {
 public:
  WatchReactor(store::Store* store, Hub* hub, const Clock* clock,
               std::function<void(std::function<void()>)> post,
               std::function<void(pb::Task&)> annotate, std::atomic<bool>* stopping,
               const pb::WatchTasksRequest& req)
      : store_(store),
        hub_(hub),
        clock_(clock),
        post_(std::move(post)),
        annotate_(std::move(annotate)),
        stopping_(stopping),
        task_id_(req.task_id()),
        interest_(task_id_.empty() ? Interest::Any() : Interest::Task(task_id_)),
        after_(req.after_revision()) {}

  void Start(std::shared_ptr<WatchReactor> self) {
    self_ = self;
    post_([self] { self->Poll(true); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    // The next queued change goes out from here (no store call, no hop to
    // the pool); a poll of the store goes to the pool.
    if (!queue_.empty()) {
      WriteNextOrPoll();
      return;
    }
    auto self = Self();
    if (!self) return;
    post_([self] { self->WriteNextOrPoll(); });
  }

  void OnCancel() override {
    cancelled_ = true;
    // Wakes the parked poll so it can finish (and the kAny waiters, and
    // this task's: a spurious look at the store for them).
    hub_->NotifyTask(task_id_, NewWork::kNone);
  }

  void OnDone() override {
    std::lock_guard lock(mu_);
    self_.reset();
  }

 private:
  void Poll(bool first) {
    if (cancelled_ || *stopping_) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      return;
    }
    seen_ = hub_->generation(interest_);
    Refill();
    tokens_ = std::max(0.0, tokens_ - 1);
    if (first && !task_id_.empty()) {
      auto t = store_->GetTask(task_id_);
      if (!t.ok()) {
        FinishOnce(ToGrpc(t.status()));
        return;
      }
    }
    auto tasks = store_->TasksChangedAfter(after_, task_id_, kWatchPageSize);
    if (!tasks.ok()) {
      FinishOnce(ToGrpc(tasks.status()));
      return;
    }
    more_ = tasks->size() >= kWatchPageSize;
    if (tasks->empty()) {
      Park();
      return;
    }
    for (auto& t : *tasks) {
      after_ = std::max<uint64_t>(after_, t.revision());
      queue_.push_back(std::move(t));
    }
    WriteNextOrPoll();
  }

  void Refill() {
    int64_t now = clock_->NowMs();
    if (refilled_ms_ > 0) {
      tokens_ = std::min(kWatchPollBurst,
                         tokens_ + static_cast<double>(now - refilled_ms_) / kWatchPollIntervalMs);
    }
    refilled_ms_ = now;
  }

  // The owning pointer for a callback; null once the call is done.
  std::shared_ptr<WatchReactor> Self() {
    std::lock_guard lock(mu_);
    return self_;
  }

  // Waits for the next change past the last poll (at once if one came since).
  void Park() {
    std::shared_ptr<WatchReactor> self = Self();
    if (!self) return;
    hub_->Wait(interest_, seen_, clock_->NowMs() + 30'000, [self](bool) {
      self->post_([self] { self->PollThrottled(); });
    });
  }

  void PollThrottled() {
    Refill();
    if (tokens_ >= 1 || cancelled_) {
      Poll(false);
      return;
    }
    std::shared_ptr<WatchReactor> self = Self();
    if (!self) return;
    int64_t wait = static_cast<int64_t>((1 - tokens_) * kWatchPollIntervalMs + 0.999);
    hub_->After(wait, [self] { self->post_([self] { self->Poll(false); }); });
  }

  void WriteNextOrPoll() {
    if (queue_.empty()) {
      if (!task_id_.empty() && last_terminal_) {
        FinishOnce(grpc::Status::OK);
        return;
      }
      // A full page may have more behind it; otherwise only a change can.
      if (more_) {
        PollThrottled();
      } else {
        Park();
      }
      return;
    }
    response_.Clear();
    *response_.mutable_task() = std::move(queue_.front());
    queue_.pop_front();
    annotate_(*response_.mutable_task());
    last_terminal_ = IsTerminal(static_cast<State>(response_.task().state()));
    std::lock_guard lock(mu_);
    if (finished_) return;
    // No buffer_hint, though more may be queued: a hinted write is held by
    // the transport, and its OnWriteDone (which starts the next write) does
    // not come until something flushes it, so a watch of all tasks with
    // several changes queued sent nothing at all.
    StartWrite(&response_);
  }

  void FinishOnce(const grpc::Status& s) {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  store::Store* store_;
  Hub* hub_;
  const Clock* clock_;
  std::function<void(std::function<void()>)> post_;
  std::function<void(pb::Task&)> annotate_;
  std::atomic<bool>* stopping_;
  const std::string task_id_;
  const Interest interest_;
  uint64_t after_;
  std::atomic<bool> cancelled_{false};

  // The poll/write chain is sequential: only one of Poll/Write runs at a time.
  std::deque<pb::Task> queue_;
  pb::WatchTasksResponse response_;
  bool last_terminal_ = false;
  uint64_t seen_ = 0;   // the hub's generation read before the last poll
  bool more_ = false;   // the last poll filled its page
  double tokens_ = kWatchPollBurst;
  int64_t refilled_ms_ = 0;

  std::mutex mu_;
  bool finished_ = false;
  std::shared_ptr<WatchReactor> self_;
};

}  // namespace

grpc::ServerWriteReactor<pb::WatchTasksResponse>* Services::Impl::TaskSvc::WatchTasks(
    grpc::CallbackServerContext* ctx, const pb::WatchTasksRequest* req) {
  if (!req->task_id().empty()) {
    if (auto s = ValidateId(req->task_id(), "task_id"); !s.ok()) {
      class Refused : public grpc::ServerWriteReactor<pb::WatchTasksResponse> {
       public:
        explicit Refused(const absl::Status& s) { Finish(ToGrpc(s)); }
        void OnDone() override { delete this; }
      };
      return new Refused(s);
    }
  }
  Impl* impl = impl_;
  auto reactor = std::make_shared<WatchReactor>(
      impl->store, impl->hub, impl->clock,
      [impl](std::function<void()> fn) { impl->Post(std::move(fn)); },
      [impl](pb::Task& t) { impl->Annotate(t); }, &impl->stopping, *req);
  reactor->Start(reactor);
  return reactor.get();
}

// ------------------------------------------------------------------ Services

Services::Services(store::Store* store, Hub* hub, const Clock* clock, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, hub, clock, options)) {}

Services::~Services() { Shutdown(); }

grpc::Service* Services::task_service() { return &impl_->tasks; }
grpc::Service* Services::worker_service() { return &impl_->workers; }

void Services::BeginShutdown() {
  impl_->stopping = true;
  impl_->hub->Notify();
}

void Services::Shutdown() {
  BeginShutdown();
  impl_->pool.join();
}

}  // namespace orchard::server
