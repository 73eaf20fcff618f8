// Which field of two task specs differs first: an idempotent resubmit (the
// same request_id) must carry the same spec, and a different one is refused
// with ALREADY_EXISTS naming that field, so a reused key cannot hide a
// mistake. Fields are compared by their meaning: params_json as JSON values
// (key order and spacing do not count), labels as a map, unset split and
// policy fields as their defaults (the server applied them already).
// Thread-safety: a pure function.
#pragma once

#include <optional>
#include <string>

#include "orchard/v1/orchard.pb.h"

namespace orchard::store {

// The path of the first field (in field-number order, depth first) whose
// value differs, e.g. "policy.max_attempts", "params.ms", "labels.team";
// nullopt when the specs mean the same task.
std::optional<std::string> FirstSpecDifference(const orchard::v1::TaskSpec& a,
                                               const orchard::v1::TaskSpec& b);

}  // namespace orchard::store
