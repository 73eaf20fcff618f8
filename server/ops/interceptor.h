// The gRPC server interceptor that counts every call and its latency by
// method and status code (orchard_rpcs_total, orchard_rpc_duration_seconds),
// and the time a worker's Acquire long poll was held (the Acquire call's own
// latency: the server answers it when work is found or the wait ends), so the
// service code stays free of metrics. Registered on the ServerBuilder in
// server/main.cc.
//
// It also names the field when a request is refused because protobuf could
// not parse it: proto3 string fields must hold UTF-8, and gRPC would answer
// UNIMPLEMENTED with no message; this answers INVALID_ARGUMENT
// "TaskSpec.kind: not valid UTF-8". The field comes from protobuf's own log
// line, caught on the parsing thread by the log handler installed here.
//
// Thread-safety: gRPC creates one interceptor per call and drives it from
// its threads; ServerMetrics is thread-safe.
#pragma once

#include <memory>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

#include "server/ops/metrics.h"

namespace orchard::server {

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* metrics_;
};

// The factories to pass to ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(ServerMetrics* metrics);

// "/orchard.v1.WorkerService/Acquire" -> "WorkerService/Acquire".
std::string ShortMethodName(const char* method);

}  // namespace orchard::server
