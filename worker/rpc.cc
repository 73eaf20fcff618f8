#include "worker/rpc.h"

#include <chrono>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "proto/rpc_status.h"
#include "common/strcat.h"

namespace orchard::worker {

namespace {
constexpr int64_t kDefaultTimeoutMs = 10'000;
constexpr int64_t kLongPollMarginMs = 5'000;
// The server takes at most this many waits per WaitTasks message.
constexpr int kMaxWaitsPerMessage = 1000;
}  // namespace

// The client side of one WaitTasks stream. Waits queue while a message is in
// flight and leave together in the next; each answer goes to its wait's
// callback. When the stream ends, every wait still on it fails with the
// stream's status. One read is always outstanding, so the stream's end shows
// first in OnReadDone(false): Add() refuses from then on. Lifetime: owned by
// `self_` until OnDone(), and by Api.
// Thread-safety: Add/Drop/Cancel from any thread; gRPC's callbacks on its own.
class Api::WaitStream final
    : public grpc::ClientBidiReactor<pb::WaitTasksRequest, pb::WaitTasksResponse> {
 public:
  using Done = std::function<void(absl::StatusOr<pb::WaitTaskResponse>)>;

  static std::shared_ptr<WaitStream> Open(pb::WorkerService::Stub* stub,
                                          std::shared_ptr<LiveStreams> live) {
    std::shared_ptr<WaitStream> s(new WaitStream(std::move(live)));
    s->self_ = s;
    stub->async()->WaitTasks(&s->ctx_, s.get());
    s->StartRead(&s->in_);
    s->StartCall();
    return s;
  }

  // False once the stream has ended (open another).
  bool Add(uint64_t id, pb::WaitTaskRequest req, Done done) {
    std::lock_guard lock(mu_);
    if (ended_) return false;
    pending_.emplace(id, std::move(done));
    pb::TaskWait* w = queued_.add_waits();
    w->set_wait_id(id);
    *w->mutable_wait() = std::move(req);
    WriteLocked();
    return true;
  }

  // The caller gave up on this wait: its answer, if any, is dropped.
  void Drop(uint64_t id) {
    std::lock_guard lock(mu_);
    pending_.erase(id);
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      ended_ = true;  // the stream is broken: OnDone() follows
      return;
    }
    WriteLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The stream is ending. gRPC may free it as soon as this returns, before
      // OnDone() runs, so no write may start on it from now on; the waits
      // still on it fail in OnDone().
      std::lock_guard lock(mu_);
      ended_ = true;
      return;
    }
    std::vector<std::pair<Done, absl::StatusOr<pb::WaitTaskResponse>>> answered;
    {
      std::lock_guard lock(mu_);
      for (pb::TaskWaitAnswer& a : *in_.mutable_answers()) {
        auto it = pending_.find(a.wait_id());
        if (it == pending_.end()) continue;
        absl::StatusOr<pb::WaitTaskResponse> r = absl::UnknownError("");
        if (a.code() == 0) {
          r = std::move(*a.mutable_response());
        } else {
          r = ItemStatus(a);
        }
        answered.emplace_back(std::move(it->second), std::move(r));
        pending_.erase(it);
      }
    }
    in_.Clear();
    StartRead(&in_);
    for (auto& [done, r] : answered) done(std::move(r));
  }

  void OnDone(const grpc::Status& s) override {
    std::unordered_map<uint64_t, Done> left;
    std::shared_ptr<WaitStream> last;  // may be the last owner: released at the end
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      left.swap(pending_);
      last = std::move(self_);
    }
    absl::Status why =
        s.ok() ? absl::UnavailableError("the server ended the wait stream") : FromGrpc(s);
    for (auto& [id, done] : left) done(why);
  }

 private:
  // Counts this stream among the live ones from construction until every
  // other member (the ClientContext above all) has been destroyed.
  class LiveToken {
   public:
    explicit LiveToken(std::shared_ptr<LiveStreams> live) : live_(std::move(live)) {
      std::lock_guard lock(live_->mu);
      ++live_->count;
    }
    ~LiveToken() {
      std::lock_guard lock(live_->mu);
      --live_->count;
      live_->cv.notify_all();
    }

   private:
    std::shared_ptr<LiveStreams> live_;
  };

  explicit WaitStream(std::shared_ptr<LiveStreams> live) : token_(std::move(live)) {}

  void WriteLocked() {
    if (writing_ || ended_ || queued_.waits_size() == 0) return;
    out_.Clear();
    if (queued_.waits_size() <= kMaxWaitsPerMessage) {
      out_.Swap(&queued_);
    } else {
      auto* from = queued_.mutable_waits();
      for (int i = 0; i < kMaxWaitsPerMessage; ++i) *out_.add_waits() = std::move(from->at(i));
      from->DeleteSubrange(0, kMaxWaitsPerMessage);
    }
    writing_ = true;
    StartWrite(&out_);
  }

  LiveToken token_;  // first: destroyed last
  grpc::ClientContext ctx_;
  pb::WaitTasksResponse in_;  // the read in flight (gRPC's thread only)

  std::mutex mu_;
  pb::WaitTasksRequest queued_;  // waits for the next message
  pb::WaitTasksRequest out_;     // the message in flight
  bool writing_ = false;
  bool ended_ = false;
  std::unordered_map<uint64_t, Done> pending_;
  std::shared_ptr<WaitStream> self_;
};

Api::Api(std::shared_ptr<grpc::Channel> channel)
    : channel_(channel),
      workers_(pb::WorkerService::NewStub(channel)),
      tasks_(pb::TaskService::NewStub(channel)) {}

Api::~Api() {
  CancelLongPolls();
  {
    std::lock_guard lock(mu_);
    wait_stream_.reset();
  }
  std::unique_lock lock(live_->mu);
  live_->cv.wait_for(lock, std::chrono::seconds(10), [this] { return live_->count == 0; });
}

template <typename Req, typename Resp, typename Start>
Awaitable<absl::StatusOr<Resp>> Api::Unary(Start start, Req req, int64_t timeout_ms,
                                           bool long_poll) {
  struct Call {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
  };
  auto call = std::make_shared<Call>();
  call->req = std::move(req);
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  bool refused = false;
  if (long_poll) {
    std::lock_guard lock(mu_);
    refused = cancelled_;
    if (!refused) long_polls_.insert(&call->ctx);
  }
  grpc::Status status(grpc::StatusCode::CANCELLED, "worker is draining");
  if (!refused) {
    auto initiate = [call, start](auto handler) {
      auto work = asio::make_work_guard(asio::get_associated_executor(handler));
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      start(&call->ctx, &call->req, &call->resp, [h, work](grpc::Status s) mutable {
        auto ex = work.get_executor();
        asio::post(ex, [h, s = std::move(s)]() mutable { std::move (*h)(std::move(s)); });
      });
    };
    status = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(grpc::Status)>(
        initiate, asio::use_awaitable);
  }
  if (long_poll && !refused) {
    std::lock_guard lock(mu_);
    long_polls_.erase(&call->ctx);
  }
  // Named values only: GCC 12 mishandles temporaries around co_await and
  // converting co_return.
  absl::StatusOr<Resp> out = absl::UnknownError("");
  if (status.ok()) {
    out = std::move(call->resp);
  } else {
    out = FromGrpc(status);
  }
  co_return out;
}

void Api::CancelLongPolls() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (auto* ctx : long_polls_) ctx->TryCancel();
  if (wait_stream_) wait_stream_->Cancel();
}

#define ORCHARD_UNARY(stub, Method, Req, Resp, timeout, long_poll)                              \
  Unary<Req, Resp>(                                                                             \
      [this](grpc::ClientContext* ctx, const Req* rq, Resp* rs,                                 \
             std::function<void(grpc::Status)> done) {                                          \
        stub->async()->Method(ctx, rq, rs, std::move(done));                                    \
      },                                                                                        \
      req, timeout, long_poll)

Awaitable<absl::StatusOr<pb::RegisterResponse>> Api::Register(const pb::RegisterRequest& req) {
  return ORCHARD_UNARY(workers_, Register, pb::RegisterRequest, pb::RegisterResponse,
                       kDefaultTimeoutMs, false);
}
Awaitable<absl::StatusOr<pb::HeartbeatResponse>> Api::Heartbeat(const pb::HeartbeatRequest& req,
                                                                int64_t timeout_ms) {
  return ORCHARD_UNARY(workers_, Heartbeat, pb::HeartbeatRequest, pb::HeartbeatResponse,
                       timeout_ms, false);
}
Awaitable<absl::StatusOr<pb::AcquireResponse>> Api::Acquire(const pb::AcquireRequest& req) {
  int64_t timeout = req.wait_ms() + kLongPollMarginMs;
  return ORCHARD_UNARY(workers_, Acquire, pb::AcquireRequest, pb::AcquireResponse, timeout, true);
}
Awaitable<absl::StatusOr<pb::ReportResponse>> Api::Report(const pb::ReportRequest& req) {
  return ORCHARD_UNARY(workers_, Report, pb::ReportRequest, pb::ReportResponse, kDefaultTimeoutMs,
                       false);
}
Awaitable<absl::StatusOr<pb::Task>> Api::TransitionTask(const pb::TransitionTaskRequest& req) {
  // Planning a million subtasks is one transaction: allow it time.
  return ORCHARD_UNARY(workers_, TransitionTask, pb::TransitionTaskRequest, pb::Task, 60'000,
                       false);
}
Awaitable<absl::StatusOr<pb::StopSubtasksResponse>> Api::StopSubtasks(const pb::StopSubtasksRequest& req) {
  return ORCHARD_UNARY(workers_, StopSubtasks, pb::StopSubtasksRequest, pb::StopSubtasksResponse,
                       60'000, false);
}
Awaitable<absl::StatusOr<pb::TransitionTasksResponse>> Api::TransitionTasks(
    const pb::TransitionTasksRequest& req) {
  return ORCHARD_UNARY(workers_, TransitionTasks, pb::TransitionTasksRequest,
                       pb::TransitionTasksResponse, 60'000, false);
}
Awaitable<absl::StatusOr<pb::WaitTaskResponse>> Api::WaitTask(const pb::WaitTaskRequest& req) {
  struct State {
    explicit State(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    std::optional<absl::StatusOr<pb::WaitTaskResponse>> result;
  };
  // Named values only around co_await (GCC 12; see Unary).
  asio::any_io_executor ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<State>(ex);
  st->timer.expires_after(std::chrono::milliseconds(req.wait_ms() + kLongPollMarginMs));
  // Runs on a gRPC thread: hands the answer to the loop, which ends the wait.
  // Its reference to `st` moves into the posted handler, so that the timer is
  // only ever destroyed by the loop (or its io_context), not by gRPC's thread.
  WaitStream::Done done = [st](absl::StatusOr<pb::WaitTaskResponse> r) mutable {
    if (!st) return;  // answered already
    asio::any_io_executor loop = st->timer.get_executor();
    asio::post(loop, [st = std::move(st), r = std::move(r)]() mutable {
      if (st->result) return;
      st->result = std::move(r);
      st->timer.cancel();
    });
  };
  std::shared_ptr<WaitStream> stream;
  uint64_t id = 0;
  bool sent = false;
  {
    std::lock_guard lock(mu_);
    if (!cancelled_) {
      id = ++next_wait_id_;
      sent = wait_stream_ && wait_stream_->Add(id, req, done);
      if (!sent) {
        wait_stream_ = WaitStream::Open(workers_.get(), live_);
        // A new stream can end before this (the server is down): then the
        // wait fails now, like a call to an unreachable server.
        sent = wait_stream_->Add(id, req, done);
      }
      stream = wait_stream_;
    }
  }
  absl::StatusOr<pb::WaitTaskResponse> out = absl::CancelledError("worker is draining");
  if (stream && !sent) {
    out = absl::UnavailableError("the wait stream to the server ended as it opened");
  } else if (stream) {
    boost::system::error_code ec;
    co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (st->result) {
      out = std::move(*st->result);
    } else {
      // No answer in time: the server is not answering on this stream. The
      // next wait opens another, even before this one has ended.
      {
        std::lock_guard lock(mu_);
        if (wait_stream_ == stream) wait_stream_.reset();
      }
      stream->Drop(id);
      stream->Cancel();
      out = absl::DeadlineExceededError(Cat("no answer to the wait on task ", req.task_id(),
                                            " within ", req.wait_ms() + kLongPollMarginMs, " ms"));
    }
  }
  co_return out;
}
Awaitable<absl::StatusOr<pb::ReleaseTaskResponse>> Api::ReleaseTask(const pb::ReleaseTaskRequest& req) {
  return ORCHARD_UNARY(workers_, ReleaseTask, pb::ReleaseTaskRequest, pb::ReleaseTaskResponse,
                       kDefaultTimeoutMs, false);
}
Awaitable<absl::StatusOr<pb::DeregisterResponse>> Api::Deregister(const pb::DeregisterRequest& req) {
  return ORCHARD_UNARY(workers_, Deregister, pb::DeregisterRequest, pb::DeregisterResponse,
                       kDefaultTimeoutMs, false);
}
Awaitable<absl::StatusOr<pb::Task>> Api::GetTask(const pb::GetTaskRequest& req) {
  return ORCHARD_UNARY(tasks_, GetTask, pb::GetTaskRequest, pb::Task, kDefaultTimeoutMs, false);
}
Awaitable<absl::StatusOr<pb::ListSubtasksResponse>> Api::ListSubtasks(const pb::ListSubtasksRequest& req) {
  return ORCHARD_UNARY(tasks_, ListSubtasks, pb::ListSubtasksRequest, pb::ListSubtasksResponse,
                       30'000, false);
}
Awaitable<absl::StatusOr<pb::GetHistoryResponse>> Api::GetHistory(const pb::GetHistoryRequest& req) {
  return ORCHARD_UNARY(tasks_, GetHistory, pb::GetHistoryRequest, pb::GetHistoryResponse,
                       kDefaultTimeoutMs, false);
}

}  // namespace orchard::worker
