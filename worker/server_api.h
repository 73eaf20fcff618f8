// The server calls the worker daemon makes, as an interface: the daemon's
// parts (registration, subtask runner, transition batcher, reconciler) talk
// to the server only through it. `Api` (worker/rpc.h) implements it over
// gRPC; tests give the parts a fake that records the calls and answers from
// a script, so a reconciler's steps can be checked without a server.
//
// Thread-safety: called from the worker's loop thread only; each call
// resumes the awaiting coroutine on that loop.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>

#include "absl/status/statusor.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::worker {

namespace asio = boost::asio;
namespace pb = ::orchard::v1;

template <typename T>
using Awaitable = asio::awaitable<T>;

class ServerApi {
 public:
  virtual ~ServerApi() = default;

  virtual Awaitable<absl::StatusOr<pb::RegisterResponse>> Register(
      const pb::RegisterRequest& req) = 0;
  // timeout_ms: the heartbeat must come back before the self-fence moment.
  virtual Awaitable<absl::StatusOr<pb::HeartbeatResponse>> Heartbeat(
      const pb::HeartbeatRequest& req, int64_t timeout_ms) = 0;
  // Long poll for subtask and task leases (req.wait_ms).
  virtual Awaitable<absl::StatusOr<pb::AcquireResponse>> Acquire(const pb::AcquireRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::ReportResponse>> Report(const pb::ReportRequest& req) = 0;
  // One task transition alone (a plan too big to share a batched call).
  virtual Awaitable<absl::StatusOr<pb::Task>> TransitionTask(
      const pb::TransitionTaskRequest& req) = 0;
  // Many tasks' transitions in one call; each result has its own code.
  virtual Awaitable<absl::StatusOr<pb::TransitionTasksResponse>> TransitionTasks(
      const pb::TransitionTasksRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::StopSubtasksResponse>> StopSubtasks(
      const pb::StopSubtasksRequest& req) = 0;
  // A reconciler's long poll on its task (req.wait_ms).
  virtual Awaitable<absl::StatusOr<pb::WaitTaskResponse>> WaitTask(
      const pb::WaitTaskRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::ReleaseTaskResponse>> ReleaseTask(
      const pb::ReleaseTaskRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::DeregisterResponse>> Deregister(
      const pb::DeregisterRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::Task>> GetTask(const pb::GetTaskRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::ListSubtasksResponse>> ListSubtasks(
      const pb::ListSubtasksRequest& req) = 0;
  virtual Awaitable<absl::StatusOr<pb::GetHistoryResponse>> GetHistory(
      const pb::GetHistoryRequest& req) = 0;

  // Ends every Acquire and WaitTask in flight (they return CANCELLED) and
  // refuses later ones: the drain's first step.
  virtual void CancelLongPolls() = 0;
};

}  // namespace orchard::worker
