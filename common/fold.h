// The reduce rules of the built-in kinds whose task result is exactly the
// fold of their slices' results: noop, sum, flaky and sleep. The worker's
// handlers (worker/handlers/builtin.cc) fold with them, and the invariant
// checker (server/store/invariants.cc) folds a finished task's committed
// results again with the same rules to check the stored result, without
// linking the handlers (their CSV reader, fork and exec).
//
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace orchard {

struct FoldRule {
  // The accumulator before the first result.
  nlohmann::json (*init)();
  // Folds one slice's result into acc. An error (a result without the
  // field, an overflow) means the task's results do not reduce.
  absl::Status (*fold)(nlohmann::json& acc, const nlohmann::json& result);
};

// The rule of a kind whose result is its fold; nullptr for any other kind
// (csv.aggregate and exec finish with more than the fold).
const FoldRule* BuiltinFold(std::string_view kind);

}  // namespace orchard
