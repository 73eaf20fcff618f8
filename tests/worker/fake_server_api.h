// A fake ServerApi for the worker's unit tests: records every call (its name
// and request) and answers from a script the test sets per method; a method
// without a script answers UNIMPLEMENTED. Each call first yields to the loop,
// as a real RPC does, so a reconciler stuck in a loop of calls still lets
// the test's RunUntil() see its deadline.
// Thread-safety: loop thread only, like the daemon's parts.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "worker/server_api.h"

namespace orchard::worker::testing {

class FakeServerApi final : public ServerApi {
 public:
  template <typename Req, typename Resp>
  using Script = std::function<absl::StatusOr<Resp>(const Req&)>;

  // The calls in order, by method name ("TransitionTasks", "GetTask", ...).
  std::vector<std::string> calls;
  int Count(const std::string& method) const {
    int n = 0;
    for (const auto& c : calls) n += c == method;
    return n;
  }

  std::vector<pb::TransitionTaskRequest> transitions;  // from every TransitionTasks call
  std::vector<pb::StopSubtasksRequest> stops;
  std::vector<pb::ReleaseTaskRequest> releases;
  std::vector<pb::ReportRequest> reports;

  Script<pb::TransitionTaskRequest, pb::Task> on_transition;  // each item of TransitionTasks
  Script<pb::GetTaskRequest, pb::Task> on_get_task;
  Script<pb::WaitTaskRequest, pb::WaitTaskResponse> on_wait_task;
  Script<pb::StopSubtasksRequest, pb::StopSubtasksResponse> on_stop_subtasks;
  Script<pb::ListSubtasksRequest, pb::ListSubtasksResponse> on_list_subtasks;
  Script<pb::GetHistoryRequest, pb::GetHistoryResponse> on_get_history;

  Awaitable<absl::StatusOr<pb::RegisterResponse>> Register(const pb::RegisterRequest&) override {
    co_await Yield();
    calls.push_back("Register");
    co_return Unimplemented();
  }
  Awaitable<absl::StatusOr<pb::HeartbeatResponse>> Heartbeat(const pb::HeartbeatRequest&,
                                                             int64_t) override {
    co_await Yield();
    calls.push_back("Heartbeat");
    co_return Unimplemented();
  }
  Awaitable<absl::StatusOr<pb::AcquireResponse>> Acquire(const pb::AcquireRequest&) override {
    co_await Yield();
    calls.push_back("Acquire");
    co_return Unimplemented();
  }
  Awaitable<absl::StatusOr<pb::ReportResponse>> Report(const pb::ReportRequest& req) override {
    co_await Yield();
    calls.push_back("Report");
    reports.push_back(req);
    pb::ReportResponse resp;
    for (int i = 0; i < req.reports_size(); ++i) resp.add_codes(0), resp.add_messages("");
    co_return resp;
  }
  Awaitable<absl::StatusOr<pb::Task>> TransitionTask(const pb::TransitionTaskRequest& req) override {
    co_await Yield();
    calls.push_back("TransitionTask");
    transitions.push_back(req);
    co_return Answer(on_transition, req);
  }
  Awaitable<absl::StatusOr<pb::TransitionTasksResponse>> TransitionTasks(
      const pb::TransitionTasksRequest& req) override {
    co_await Yield();
    calls.push_back("TransitionTasks");
    pb::TransitionTasksResponse resp;
    for (const auto& t : req.transitions()) {
      transitions.push_back(t);
      auto* r = resp.add_results();
      auto answer = Answer(on_transition, t);
      if (answer.ok()) {
        *r->mutable_task() = std::move(*answer);
      } else {
        r->set_code(static_cast<int>(answer.status().code()));
        r->set_message(std::string(answer.status().message()));
      }
    }
    co_return resp;
  }
  Awaitable<absl::StatusOr<pb::StopSubtasksResponse>> StopSubtasks(
      const pb::StopSubtasksRequest& req) override {
    co_await Yield();
    calls.push_back("StopSubtasks");
    stops.push_back(req);
    co_return Answer(on_stop_subtasks, req);
  }
  Awaitable<absl::StatusOr<pb::WaitTaskResponse>> WaitTask(const pb::WaitTaskRequest& req) override {
    co_await Yield();
    calls.push_back("WaitTask");
    co_return Answer(on_wait_task, req);
  }
  Awaitable<absl::StatusOr<pb::ReleaseTaskResponse>> ReleaseTask(
      const pb::ReleaseTaskRequest& req) override {
    co_await Yield();
    calls.push_back("ReleaseTask");
    releases.push_back(req);
    co_return pb::ReleaseTaskResponse();
  }
  Awaitable<absl::StatusOr<pb::DeregisterResponse>> Deregister(const pb::DeregisterRequest&) override {
    co_await Yield();
    calls.push_back("Deregister");
    co_return pb::DeregisterResponse();
  }
  Awaitable<absl::StatusOr<pb::Task>> GetTask(const pb::GetTaskRequest& req) override {
    co_await Yield();
    calls.push_back("GetTask");
    co_return Answer(on_get_task, req);
  }
  Awaitable<absl::StatusOr<pb::ListSubtasksResponse>> ListSubtasks(
      const pb::ListSubtasksRequest& req) override {
    co_await Yield();
    calls.push_back("ListSubtasks");
    co_return Answer(on_list_subtasks, req);
  }
  Awaitable<absl::StatusOr<pb::GetHistoryResponse>> GetHistory(
      const pb::GetHistoryRequest& req) override {
    co_await Yield();
    calls.push_back("GetHistory");
    co_return Answer(on_get_history, req);
  }
  void CancelLongPolls() override { calls.push_back("CancelLongPolls"); }

 private:
  static Awaitable<void> Yield() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
  static absl::Status Unimplemented() { return absl::UnimplementedError("not scripted"); }
  template <typename Req, typename Resp>
  static absl::StatusOr<Resp> Answer(const Script<Req, Resp>& script, const Req& req) {
    if (!script) return Unimplemented();
    return script(req);
  }
};

}  // namespace orchard::worker::testing
