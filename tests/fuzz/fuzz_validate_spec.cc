// libFuzzer target: request validation. The input is a serialized TaskSpec (as
// a client could send it); ValidateAndDefaultSpec must never crash, and what
// it accepts must be plannable: a non-empty range, a split of at most
// kMaxSubtasks slices, params a JSON object within the size limit.
// Single-threaded, as libFuzzer calls it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/split.h"
#include "orchard/v1/orchard.pb.h"
#include "server/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  orchard::v1::TaskSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (!orchard::server::ValidateAndDefaultSpec(spec).ok()) return 0;
  if (spec.end() <= spec.begin()) abort();
  if (spec.params_json().size() > orchard::server::kMaxParamsBytes) abort();
  if (!nlohmann::json::parse(spec.params_json(), nullptr, false).is_object()) abort();
  auto split = spec.split().has_chunk()
                   ? orchard::UniformSplit::ByChunk(spec.begin(), spec.end(), spec.split().chunk())
                   : orchard::UniformSplit::BySubtasks(spec.begin(), spec.end(),
                                                       spec.split().subtasks());
  if (!split.ok() || split->count() == 0 || split->count() > orchard::kMaxSubtasks) abort();
  if (spec.policy().max_attempts() == 0) abort();  // defaulted
  return 0;
}
