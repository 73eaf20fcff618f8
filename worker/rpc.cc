#include "worker/rpc.h"

#include <chrono>

#include "common/grpc_status.h"

namespace orchard::worker {

namespace {
constexpr int64_t kDefaultTimeoutMs = 10'000;
constexpr int64_t kLongPollMarginMs = 5'000;
}  // namespace

Api::Api(std::shared_ptr<grpc::Channel> channel)
    : workers_(pb::WorkerService::NewStub(channel)), tasks_(pb::TaskService::NewStub(channel)) {}

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
  int64_t timeout = req.wait_ms() + kLongPollMarginMs;
  return ORCHARD_UNARY(workers_, WaitTask, pb::WaitTaskRequest, pb::WaitTaskResponse, timeout,
                       true);
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
