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

// One item's status in a batched answer: a message with `code` (a
// google.rpc.Code, 0 = OK) and `message` fields, as TransitionTaskResult and
// TaskWaitAnswer have.
template <typename M>
void SetItemStatus(M* item, const absl::Status& s) {
  item->set_code(static_cast<int>(s.code()));
  item->set_message(std::string(s.message()));
}
template <typename M>
absl::Status ItemStatus(const M& item) {
  return absl::Status(static_cast<absl::StatusCode>(item.code()), item.message());
}

}  // namespace orchard
