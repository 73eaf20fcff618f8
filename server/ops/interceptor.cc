// RPC metrics by interception; see interceptor.h.
#include "server/ops/interceptor.h"

#include <cctype>
#include <chrono>
#include <mutex>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "proto/rpc_status.h"

namespace orchard::server {

namespace {

using grpc::experimental::InterceptionHookPoints;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE: break;
  }
  return "UNKNOWN";
}

// The string field whose invalid UTF-8 made the last parse on this thread
// fail, as protobuf logged it ("orchard.v1.TaskSpec.kind"); empty if none.
thread_local std::string t_bad_utf8_field;

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  static constexpr std::string_view kPrefix = "String field '";
  if (message.rfind(kPrefix, 0) == 0 && message.find("invalid UTF-8") != std::string::npos &&
      message.find("parsing") != std::string::npos) {
    const size_t end = message.find('\'', kPrefix.size());
    if (end != std::string::npos) {
      t_bad_utf8_field = message.substr(kPrefix.size(), end - kPrefix.size());
      return;  // answered to the client, naming the field; not worth a log line
    }
  }
  if (level >= google::protobuf::LOGLEVEL_ERROR) {
    spdlog::error("protobuf {}:{}: {}", file, line, message);
  } else {
    spdlog::warn("protobuf {}:{}: {}", file, line, message);
  }
}

// A map field's entry message is named after the field: "LabelsEntry" -> "labels".
std::string MapFieldName(std::string_view entry) {
  std::string out;
  for (char c : entry.substr(0, entry.size() - std::string_view("Entry").size())) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      if (!out.empty()) out += '_';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out;
}

// "orchard.v1.TaskSpec.LabelsEntry.value" -> "TaskSpec.labels.value".
std::string FieldPath(std::string_view full) {
  constexpr std::string_view kPackage = "orchard.v1.";
  if (full.starts_with(kPackage)) full.remove_prefix(kPackage.size());
  std::string out;
  for (size_t start = 0;;) {
    const size_t dot = full.find('.', start);
    const std::string_view part = full.substr(start, dot - start);
    if (!out.empty()) out += '.';
    out += part.size() > 5 && part.ends_with("Entry") ? MapFieldName(part) : std::string(part);
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(ServerMetrics* metrics, std::string method, bool streams_requests,
                     bool streams_responses)
      : metrics_(metrics),
        method_(std::move(method)),
        streams_requests_(streams_requests),
        streams_responses_(streams_responses),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A request protobuf could not parse never reaches the service, and
    // gRPC would answer UNIMPLEMENTED with no message. When the cause was a
    // string field with invalid UTF-8 (proto3 refuses those), say which.
    // On a request stream, no message is also how the stream ends.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      if (methods->GetRecvMessage() == nullptr) {
        if (!streams_requests_) {
          unparsed_ = true;
          bad_field_ = std::move(t_bad_utf8_field);
        }
        t_bad_utf8_field.clear();
      } else if (streams_requests_) {
        metrics_->stream_messages.With({method_, "received"}).Inc();
      }
    }
    if (streams_responses_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      metrics_->stream_messages.With({method_, "sent"}).Inc();
    }
    if (unparsed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      // Through ToGrpc, so it carries the BadRequest detail as well.
      methods->ModifySendStatus(ToGrpc(absl::InvalidArgumentError(
          bad_field_.empty() ? std::string("request: not a valid protobuf message")
                             : FieldPath(bad_field_) + ": not valid UTF-8")));
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const char* code = CodeName(methods->GetSendStatus().error_code());
      metrics_->rpcs.With({method_, code}).Inc();
      metrics_->rpc_seconds.With({method_, code}).Observe(seconds);
      if (method_ == "WorkerService/Acquire") metrics_->acquire_wait.With({}).Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* metrics_;
  std::string method_;
  const bool streams_requests_;
  const bool streams_responses_;
  std::chrono::steady_clock::time_point start_;
  bool unparsed_ = false;
  std::string bad_field_;
};

}  // namespace

std::string ShortMethodName(const char* method) {
  if (method == nullptr) return "unknown";
  std::string m(method);
  if (!m.empty() && m[0] == '/') m.erase(0, 1);
  const size_t slash = m.find('/');
  const size_t dot = m.rfind('.', slash);
  if (slash != std::string::npos && dot != std::string::npos) m.erase(0, dot + 1);
  return m;
}

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  const Type type = info->type();
  return new MetricsInterceptor(metrics_, ShortMethodName(info->method()),
                                type == Type::CLIENT_STREAMING || type == Type::BIDI_STREAMING,
                                type == Type::SERVER_STREAMING || type == Type::BIDI_STREAMING);
}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(ServerMetrics* metrics) {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(&ProtobufLog); });
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<MetricsInterceptorFactory>(metrics));
  return out;
}

}  // namespace orchard::server
