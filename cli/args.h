// Turning orchardctl's flag values into request fields, with errors that name
// the flag ("range: end (5) must be greater than begin (10)").
//
// Flags arrive as strings (empty = not given) so that each error message can
// name its field instead of CLI11's generic "could not convert". Checks made
// here are a courtesy: the server validates everything again.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace orchard::v1 {
class TaskSpec;
}  // namespace orchard::v1

namespace orchard::cli {

// The flags of `orchardctl submit`, as typed.
struct SubmitArgs {
  std::string kind;
  std::string range;        // BEGIN:END
  std::string subtasks;     // exactly one of subtasks and chunk
  std::string chunk;
  std::string params;       // a JSON object; "" = {}
  std::string max_attempts;
  std::string max_failed_subtasks;  // -1 = no limit
  std::string deadline;     // duration, e.g. 30s
  std::string parallelism;
  std::string priority;
  std::string backoff;      // duration
  std::string backoff_max;  // duration
  std::vector<std::string> labels;  // k=v
  std::string request_id;
};

// Fills `spec` from `args`; INVALID_ARGUMENT naming the field otherwise.
absl::Status BuildTaskSpec(const SubmitArgs& args, orchard::v1::TaskSpec* spec);

// OK when `text` is empty or a JSON object; otherwise "params: ...".
absl::Status CheckParams(const std::string& text);

// "k=v" pairs; the key must not be empty. A repeated key keeps the last value.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels);

// State names (any case, "Running" or "running") as proto State numbers.
absl::StatusOr<std::vector<int>> ParseStates(const std::vector<std::string>& names);

absl::StatusOr<uint32_t> ParseUint32(const std::string& text, const std::string& field);
absl::StatusOr<int32_t> ParseInt32(const std::string& text, const std::string& field);
absl::StatusOr<int64_t> ParseInt64(const std::string& text, const std::string& field);

}  // namespace orchard::cli
