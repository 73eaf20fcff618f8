// libFuzzer target: params and config text parsing. The input is used as a
// task's params (validated by the server, then parsed as a worker does) and
// as the duration, range and number arguments the command lines and config
// take. Nothing may crash; accepted params are an object no deeper than the
// limit. Single-threaded, as libFuzzer calls it.
// (The handlers' PlanSlices are not fuzzed here: worker/handlers does not
// build with clang 14 yet, see the fuzz script.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "common/util.h"
#include "orchard/v1/orchard.pb.h"
#include "server/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)orchard::ParseDurationMs(text, "--lease-ttl");
  if (auto r = orchard::ParseRange(text); r.ok() && r->end <= r->begin) abort();
  (void)orchard::ParseUint64(text, "n");

  orchard::v1::TaskSpec spec;
  spec.set_kind("sum");
  spec.set_begin(0);
  spec.set_end(1000);
  spec.mutable_split()->set_subtasks(10);
  spec.set_params_json(text);
  if (!orchard::server::ValidateAndDefaultSpec(spec).ok()) return 0;
  const nlohmann::json params = nlohmann::json::parse(spec.params_json(), nullptr, false);
  if (!params.is_object()) abort();
  if (orchard::server::JsonDepth(spec.params_json()) > orchard::server::kMaxJsonDepth) abort();
  return 0;
}
