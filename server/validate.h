// Validation of everything a client or worker sends, before it reaches the
// store. Each error is INVALID_ARGUMENT with a message that names the field,
// so a bad request changes nothing and says why. Thread-safety: pure.
#pragma once

#include "absl/status/status.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::server {

inline constexpr size_t kMaxParamsBytes = 64 * 1024;
inline constexpr size_t kMaxKindLength = 64;
inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr size_t kMaxLabels = 32;
inline constexpr uint32_t kMaxAttemptsLimit = 100;

// Also fills defaults in: max_attempts 3, backoff 500 ms / 30 s, params "{}".
absl::Status ValidateAndDefaultSpec(orchard::v1::TaskSpec& spec);

// A task or worker id as the server issues them.
absl::Status ValidateId(const std::string& id, std::string_view field);

}  // namespace orchard::server
