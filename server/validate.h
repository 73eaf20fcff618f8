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
// JSON nesting deeper than this is refused: params are parsed again by every
// worker, and a deep document costs stack and time for nothing.
inline constexpr size_t kMaxJsonDepth = 64;
// Worker-sent text stored as it is: a subtask's result, an error, a reason.
inline constexpr size_t kMaxResultBytes = 1 << 20;
inline constexpr size_t kMaxMessageBytes = 64 * 1024;

// Also fills defaults in: max_attempts 3, backoff 500 ms / 30 s, params "{}".
absl::Status ValidateAndDefaultSpec(orchard::v1::TaskSpec& spec);

// A task or worker id as the server issues them.
absl::Status ValidateId(const std::string& id, std::string_view field);

// The deepest nesting of arrays and objects in a JSON text (strings skipped);
// does not check that the text is JSON.
size_t JsonDepth(std::string_view text);

}  // namespace orchard::server
