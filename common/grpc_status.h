// absl::Status <-> grpc::Status, in one place for the service edge and the
// worker's client calls. Header-only; users link gRPC themselves.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace orchard {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace orchard
