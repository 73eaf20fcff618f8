// The built-in handlers: noop, sleep, sum and flaky (sum that fails chosen
// slices a chosen number of times, for tests and demos), and the registration
// of csv.aggregate (csv_aggregate.h; exec needs the worker's config and is
// registered by main.cc).
// Thread-safety: stateless; Run() may run on many threads at once.
#include <chrono>
#include <thread>

#include "absl/status/status.h"
#include "common/fold.h"
#include "common/strcat.h"
#include "worker/handler.h"
#include "worker/handlers/csv_aggregate.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;

class NoopHandler final : public Handler {
 public:
  bool QuickControl() const override { return true; }
  bool QuickRun() const override { return true; }
  absl::StatusOr<json> Run(const SliceContext& ctx) const override {
    ctx.progress->store(ctx.end - ctx.begin);
    return json{{"count", ctx.end - ctx.begin}};
  }
  json Init() const override { return BuiltinFold("noop")->init(); }
  absl::Status Fold(json& acc, const json& r) const override {
    return BuiltinFold("noop")->fold(acc, r);
  }
};

// The exact sum of the item indices in [b, e), or an error past 2^64 - 1.
absl::StatusOr<uint64_t> SumRange(uint64_t b, uint64_t e) {
  unsigned __int128 n = e - b;
  unsigned __int128 s = (static_cast<unsigned __int128>(b) + e - 1) * n / 2;
  if (s > UINT64_MAX) {
    return absl::FailedPreconditionError(
        Cat("sum: the sum of [", b, ", ", e, ") does not fit in 64 bits"));
  }
  return static_cast<uint64_t>(s);
}

class SumHandler : public Handler {
 public:
  bool QuickControl() const override { return true; }
  absl::StatusOr<json> Run(const SliceContext& ctx) const override {
    auto s = SumRange(ctx.begin, ctx.end);
    if (!s.ok()) return s.status();
    ctx.progress->store(ctx.end - ctx.begin);
    return json{{"sum", *s}};
  }
  json Init() const override { return BuiltinFold("sum")->init(); }
  absl::Status Fold(json& acc, const json& r) const override {
    return BuiltinFold("sum")->fold(acc, r);
  }
};

// params.ms, when given: milliseconds per slice, up to a day.
absl::Status CheckSliceMs(const json& params) {
  auto it = params.find("ms");
  if (it != params.end() &&
      (!it->is_number_unsigned() || it->get<uint64_t>() > 24ull * 3600 * 1000)) {
    return absl::InvalidArgumentError("params.ms: must be a number of milliseconds up to a day");
  }
  return absl::OkStatus();
}

// Sleeps `ms` in small steps, reporting progress, and stops within a step
// when asked (CANCELLED).
absl::Status SleepSlice(const SliceContext& ctx, uint64_t ms) {
  auto start = std::chrono::steady_clock::now();
  auto until = start + std::chrono::milliseconds(ms);
  uint64_t items = ctx.end - ctx.begin;
  while (true) {
    if (ctx.stop.stop_requested()) return absl::CancelledError("stopped");
    auto now = std::chrono::steady_clock::now();
    if (now >= until) break;
    auto done = std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
    ctx.progress->store(ms == 0 ? items : items * done / ms);
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(10)));
  }
  ctx.progress->store(items);
  return absl::OkStatus();
}

// params {"fail": {"INDEX": K}}: fail the first K attempts of that subtask
// (K = -1: every attempt); {"ms": N}: take N ms per slice (stopping when
// asked), so a test can catch a task mid-way. Otherwise behaves as sum.
class FlakyHandler final : public SumHandler {
 public:
  absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const override {
    if (auto s = CheckSliceMs(*in.params); !s.ok()) return s;
    if (in.params->contains("fail")) {
      const json& fail = (*in.params)["fail"];
      if (!fail.is_object()) return absl::InvalidArgumentError("params.fail: must be an object");
      for (const auto& [k, v] : fail.items()) {
        if (!v.is_number_integer() || v.get<int64_t>() < -1) {
          return absl::InvalidArgumentError(
              Cat("params.fail.", k, ": must be an attempt count, or -1 for every attempt"));
        }
      }
    }
    return Plan{};
  }
  absl::StatusOr<json> Run(const SliceContext& ctx) const override {
    auto it = ctx.params->find("fail");
    if (it != ctx.params->end() && it->is_object()) {
      auto f = it->find(std::to_string(ctx.index));
      if (f != it->end() && f->is_number_integer()) {
        int64_t k = f->get<int64_t>();
        if (k < 0 || static_cast<int64_t>(ctx.attempt) <= k) {
          return absl::UnavailableError(Cat("flaky: injected failure of subtask ", ctx.index,
                                            " on attempt ", ctx.attempt));
        }
      }
    }
    if (uint64_t ms = ctx.params->value("ms", uint64_t{0}); ms > 0) {
      if (auto s = SleepSlice(ctx, ms); !s.ok()) {
        return absl::CancelledError(Cat("flaky: ", s.message()));
      }
    }
    return SumHandler::Run(ctx);
  }
};

// params {"ms": N}: sleeps N ms per slice in small steps, reporting progress
// and stopping within a step when asked.
class SleepHandler final : public Handler {
 public:
  bool QuickControl() const override { return true; }
  absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const override {
    if (auto s = CheckSliceMs(*in.params); !s.ok()) return s;
    return Plan{};
  }
  absl::StatusOr<json> Run(const SliceContext& ctx) const override {
    uint64_t ms = ctx.params->value("ms", uint64_t{1000});
    if (auto s = SleepSlice(ctx, ms); !s.ok()) {
      return absl::CancelledError(Cat("sleep: ", s.message()));
    }
    return json{{"slept_ms", ms}};
  }
  json Init() const override { return BuiltinFold("sleep")->init(); }
  absl::Status Fold(json& acc, const json& r) const override {
    return BuiltinFold("sleep")->fold(acc, r);
  }
};

}  // namespace

void AddBuiltinHandlers(Registry& registry) {
  registry.Add("noop", std::make_unique<NoopHandler>());
  registry.Add("sum", std::make_unique<SumHandler>());
  registry.Add("flaky", std::make_unique<FlakyHandler>());
  registry.Add("sleep", std::make_unique<SleepHandler>());
  registry.Add("csv.aggregate", std::make_unique<CsvAggregateHandler>());
}

}  // namespace orchard::worker
