// The worker's gRPC calls as Asio awaitables, in one place (the ServerApi
// the daemon's parts use, worker/server_api.h): each call keeps
// its context, request and response alive in heap state, carries a deadline,
// and resumes the awaiting coroutine on its own executor (the loop thread).
//
// Thread-safety: Api may be used from any coroutine of the loop; gRPC
// callbacks only post back to the loop.
#pragma once

#include <grpcpp/grpcpp.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

#include "absl/status/statusor.h"
#include "orchard/v1/orchard.grpc.pb.h"
#include "worker/server_api.h"

namespace orchard::worker {

class Api final : public ServerApi {
 public:
  explicit Api(std::shared_ptr<grpc::Channel> channel);
  // Ends the wait stream and waits (up to 10 s) until gRPC is done with it,
  // so that the channel is freed here, never on gRPC's callback thread.
  ~Api() override;

  Awaitable<absl::StatusOr<pb::RegisterResponse>> Register(const pb::RegisterRequest& req) override;
  Awaitable<absl::StatusOr<pb::HeartbeatResponse>> Heartbeat(const pb::HeartbeatRequest& req,
                                                             int64_t timeout_ms) override;
  // Long poll: the deadline is wait_ms plus a margin. CancelLongPolls() ends it early.
  Awaitable<absl::StatusOr<pb::AcquireResponse>> Acquire(const pb::AcquireRequest& req) override;
  Awaitable<absl::StatusOr<pb::ReportResponse>> Report(const pb::ReportRequest& req) override;
  Awaitable<absl::StatusOr<pb::Task>> TransitionTask(const pb::TransitionTaskRequest& req) override;
  Awaitable<absl::StatusOr<pb::StopSubtasksResponse>> StopSubtasks(const pb::StopSubtasksRequest& req) override;
  Awaitable<absl::StatusOr<pb::TransitionTasksResponse>> TransitionTasks(
      const pb::TransitionTasksRequest& req) override;
  // A reconciler's long poll on its task. It goes on the worker's one
  // WaitTasks stream, opened on first use and again after it ends; waits that
  // queue while a message is in flight share the next one. Without an answer
  // by wait_ms plus a margin it fails with DEADLINE_EXCEEDED, and the stream
  // is dropped (the server is not answering on it).
  Awaitable<absl::StatusOr<pb::WaitTaskResponse>> WaitTask(const pb::WaitTaskRequest& req) override;
  Awaitable<absl::StatusOr<pb::ReleaseTaskResponse>> ReleaseTask(const pb::ReleaseTaskRequest& req) override;
  Awaitable<absl::StatusOr<pb::DeregisterResponse>> Deregister(const pb::DeregisterRequest& req) override;
  Awaitable<absl::StatusOr<pb::Task>> GetTask(const pb::GetTaskRequest& req) override;
  Awaitable<absl::StatusOr<pb::ListSubtasksResponse>> ListSubtasks(const pb::ListSubtasksRequest& req) override;
  Awaitable<absl::StatusOr<pb::GetHistoryResponse>> GetHistory(const pb::GetHistoryRequest& req) override;

  // Ends every Acquire and WaitTask in flight (they return CANCELLED), and
  // refuses later ones.
  void CancelLongPolls() override;

 private:
  template <typename Req, typename Resp, typename Start>
  Awaitable<absl::StatusOr<Resp>> Unary(Start start, Req req, int64_t timeout_ms, bool long_poll);

  // WaitStreams not yet destroyed. Each one's ClientContext holds the
  // channel, and a channel must not be freed on its own callback thread
  // (gRPC aborts): ~Api waits for them while `channel_` still holds it.
  struct LiveStreams {
    std::mutex mu;
    std::condition_variable cv;
    int count = 0;
  };

  std::shared_ptr<grpc::Channel> channel_;  // first: destroyed last
  std::shared_ptr<LiveStreams> live_ = std::make_shared<LiveStreams>();
  std::unique_ptr<pb::WorkerService::Stub> workers_;
  std::unique_ptr<pb::TaskService::Stub> tasks_;
  class WaitStream;

  std::mutex mu_;
  std::set<grpc::ClientContext*> long_polls_;
  bool cancelled_ = false;
  std::shared_ptr<WaitStream> wait_stream_;  // null until the first wait
  uint64_t next_wait_id_ = 0;
};

}  // namespace orchard::worker
