// absl::Status <-> grpc::Status, in one place for the service edge and the
// worker's client calls. Header-only, in the orchard_rpc library beside the
// generated code (common/ has no gRPC): link orchard_rpc to use it.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"
#include "orchard/v1/error_details.pb.h"

namespace orchard {

// The field an INVALID_ARGUMENT message names: by convention the message
// starts with it ("policy.max_attempts: at most 100"); "" when it does not.
inline std::string_view FieldOf(std::string_view message) {
  size_t colon = message.find(": ");
  if (colon == 0 || colon == std::string_view::npos) return {};
  for (char c : message.substr(0, colon)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '[' || c == ']';
    if (!ok) return {};
  }
  return message.substr(0, colon);
}

// INVALID_ARGUMENT that names a field also carries a google.rpc.BadRequest
// detail with it (grpc-status-details-bin), so clients need not parse text.
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  auto code = static_cast<grpc::StatusCode>(s.code());
  std::string message(s.message());
  std::string_view field = FieldOf(message);
  if (s.code() != absl::StatusCode::kInvalidArgument || field.empty()) {
    return grpc::Status(code, message);
  }
  v1::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field(std::string(field));
  v->set_description(message.substr(field.size() + 2));
  v1::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  auto* any = details.add_details();
  any->set_type_url("type.googleapis.com/google.rpc.BadRequest");
  any->set_value(bad.SerializeAsString());
  return grpc::Status(code, message, details.SerializeAsString());
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
