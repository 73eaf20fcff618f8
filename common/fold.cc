#include "common/fold.h"

#include <cstdint>

namespace orchard {
namespace {

using nlohmann::json;

// noop: {"count": items}.
json CountInit() { return json{{"count", 0}}; }
absl::Status CountFold(json& acc, const json& r) {
  if (!r.contains("count") || !r["count"].is_number_unsigned()) {
    return absl::InvalidArgumentError("noop: result without count");
  }
  acc["count"] = acc["count"].get<uint64_t>() + r["count"].get<uint64_t>();
  return absl::OkStatus();
}

// sum and flaky: {"sum": the exact sum}, refused past 2^64 - 1.
json SumInit() { return json{{"sum", 0}}; }
absl::Status SumFold(json& acc, const json& r) {
  if (!r.contains("sum") || !r["sum"].is_number_unsigned()) {
    return absl::InvalidArgumentError("sum: result without sum");
  }
  uint64_t a = acc["sum"].get<uint64_t>(), b = r["sum"].get<uint64_t>();
  if (a > UINT64_MAX - b) return absl::FailedPreconditionError("sum: total overflows 64 bits");
  acc["sum"] = a + b;
  return absl::OkStatus();
}

// sleep: {"slept_ms": total}.
json SleepInit() { return json{{"slept_ms", 0}}; }
absl::Status SleepFold(json& acc, const json& r) {
  acc["slept_ms"] = acc["slept_ms"].get<uint64_t>() + r.value("slept_ms", uint64_t{0});
  return absl::OkStatus();
}

constexpr FoldRule kCount{CountInit, CountFold};
constexpr FoldRule kSum{SumInit, SumFold};
constexpr FoldRule kSleep{SleepInit, SleepFold};

}  // namespace

const FoldRule* BuiltinFold(std::string_view kind) {
  if (kind == "noop") return &kCount;
  if (kind == "sum" || kind == "flaky") return &kSum;
  if (kind == "sleep") return &kSleep;
  return nullptr;
}

}  // namespace orchard
