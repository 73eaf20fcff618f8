// orchardctl's connection to the API server: one gRPC channel and the
// synchronous TaskService stub, with a deadline on every unary call.
//
// Unary calls wait for the channel to become ready (wait_for_ready) up to the
// deadline, so a server that is restarting is waited for; one that stays
// unreachable for the whole timeout gives UNAVAILABLE "cannot reach server
// ADDR ...". Errors come back as absl::Status with the gRPC code and the
// server's message unchanged (its codes and absl's share their numbers).
//
// Thread-safety: one Client per thread (orchardctl is single-threaded).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::cli {

class Client {
 public:
  Client(std::string address, std::chrono::milliseconds timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& address() const { return address_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& req);
  absl::StatusOr<v1::Task> GetTask(const std::string& id);
  absl::StatusOr<v1::ListTasksResponse> ListTasks(const v1::ListTasksRequest& req);
  absl::StatusOr<v1::Task> CancelTask(const v1::CancelTaskRequest& req);
  absl::StatusOr<v1::Task> RetryTask(const std::string& id);
  absl::StatusOr<v1::ListSubtasksResponse> ListSubtasks(const v1::ListSubtasksRequest& req);
  absl::StatusOr<v1::GetHistoryResponse> GetHistory(const v1::GetHistoryRequest& req);
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers();
  absl::StatusOr<v1::ServerInfo> GetServerInfo();

  // GetTask without waiting for the channel: fails at once (UNAVAILABLE)
  // when there is no connection, so watch's own backoff paces reconnects.
  absl::StatusOr<v1::Task> GetTaskFailFast(const std::string& id);

  // Opens WatchTasks(task_id, after_revision) and calls `on_task` for each
  // message until it returns false (the stream is then cancelled and OK is
  // returned) or the stream ends (its final status is returned; a stream the
  // server closed cleanly gives UNAVAILABLE, since a watch never ends on its
  // own). The stream has no deadline; it does not wait for the channel.
  absl::Status Watch(const std::string& task_id, uint64_t after_revision,
                     const std::function<bool(const v1::Task&)>& on_task);

 private:
  struct Impl;
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::cli
