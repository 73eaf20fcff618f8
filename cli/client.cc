// The gRPC channel and calls of orchardctl; see client.h.
#include "cli/client.h"

#include <grpcpp/grpcpp.h>

#include "common/strcat.h"
#include "common/util.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::cli {

struct Client::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TaskService::Stub> stub;
};

namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff starts at 1 s and grows to 120 s; a CLI
  // that waits for a restarting server wants to notice it back quickly.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetUserAgentPrefix("orchardctl/0.1");
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

Client::Client(std::string address, std::chrono::milliseconds timeout)
    : address_(std::move(address)), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  impl_->channel = MakeChannel(address_);
  impl_->stub = v1::TaskService::NewStub(impl_->channel);
}

Client::~Client() = default;

namespace {

// The gRPC status as an absl::Status, with "cannot reach server" when the
// channel never got a connection (the server's own message otherwise).
absl::Status Convert(const grpc::Status& s, grpc::Channel& channel, const std::string& address,
                     std::chrono::milliseconds timeout) {
  bool connected = channel.GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
  std::string waited = FormatDurationMs(timeout.count());
  if (!connected && (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
    std::string detail = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                             ? Cat("no connection within ", waited)
                             : s.error_message();
    return absl::UnavailableError(Cat("cannot reach server ", address, " (", detail, ")"));
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        Cat("no answer from server ", address, " within ", waited, " (raise --timeout?)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

// One unary call: a fresh context with the deadline, then the conversion.
#define ORCHARD_UNARY(Resp, wait, invoke)                                          \
  do {                                                                             \
    grpc::ClientContext ctx;                                                       \
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);                 \
    ctx.set_wait_for_ready(wait);                                                  \
    Resp resp;                                                                     \
    grpc::Status s = impl_->stub->invoke;                                          \
    if (!s.ok()) return Convert(s, *impl_->channel, address_, timeout_);           \
    return resp;                                                                   \
  } while (0)

absl::StatusOr<v1::SubmitResponse> Client::Submit(const v1::SubmitRequest& req) {
  ORCHARD_UNARY(v1::SubmitResponse, true, Submit(&ctx, req, &resp));
}

absl::StatusOr<v1::Task> Client::GetTask(const std::string& id) {
  v1::GetTaskRequest req;
  req.set_id(id);
  ORCHARD_UNARY(v1::Task, true, GetTask(&ctx, req, &resp));
}

absl::StatusOr<v1::Task> Client::GetTaskFailFast(const std::string& id) {
  v1::GetTaskRequest req;
  req.set_id(id);
  ORCHARD_UNARY(v1::Task, false, GetTask(&ctx, req, &resp));
}

absl::StatusOr<v1::ListTasksResponse> Client::ListTasks(const v1::ListTasksRequest& req) {
  ORCHARD_UNARY(v1::ListTasksResponse, true, ListTasks(&ctx, req, &resp));
}

absl::StatusOr<v1::Task> Client::CancelTask(const v1::CancelTaskRequest& req) {
  ORCHARD_UNARY(v1::Task, true, CancelTask(&ctx, req, &resp));
}

absl::StatusOr<v1::Task> Client::RetryTask(const std::string& id) {
  v1::RetryTaskRequest req;
  req.set_id(id);
  ORCHARD_UNARY(v1::Task, true, RetryTask(&ctx, req, &resp));
}

absl::StatusOr<v1::ListSubtasksResponse> Client::ListSubtasks(
    const v1::ListSubtasksRequest& req) {
  ORCHARD_UNARY(v1::ListSubtasksResponse, true, ListSubtasks(&ctx, req, &resp));
}

absl::StatusOr<v1::GetHistoryResponse> Client::GetHistory(const v1::GetHistoryRequest& req) {
  ORCHARD_UNARY(v1::GetHistoryResponse, true, GetHistory(&ctx, req, &resp));
}

absl::StatusOr<v1::ListWorkersResponse> Client::ListWorkers() {
  v1::ListWorkersRequest req;
  ORCHARD_UNARY(v1::ListWorkersResponse, true, ListWorkers(&ctx, req, &resp));
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  v1::GetServerInfoRequest req;
  ORCHARD_UNARY(v1::ServerInfo, true, GetServerInfo(&ctx, req, &resp));
}

#undef ORCHARD_UNARY

absl::Status Client::Watch(const std::string& task_id, uint64_t after_revision,
                           const std::function<bool(const v1::Task&)>& on_task) {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(false);
  v1::WatchTasksRequest req;
  req.set_task_id(task_id);
  req.set_after_revision(after_revision);
  std::unique_ptr<grpc::ClientReader<v1::WatchTasksResponse>> reader =
      impl_->stub->WatchTasks(&ctx, req);
  v1::WatchTasksResponse msg;
  while (reader->Read(&msg)) {
    if (!on_task(msg.task())) {
      ctx.TryCancel();
      while (reader->Read(&msg)) {
      }
      reader->Finish();  // CANCELLED, by us
      return absl::OkStatus();
    }
  }
  grpc::Status s = reader->Finish();
  if (s.ok()) return absl::UnavailableError("the server closed the watch stream");
  return Convert(s, *impl_->channel, address_, timeout_);
}

}  // namespace orchard::cli
