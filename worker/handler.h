// The handler interface: the code that plans a task's slices, processes one
// slice, and folds slice results into the task's result. Workers register the
// kinds they run in a Registry.
//
// Thread-safety: Run() is called on the worker's handler pool, many slices at
// once, so a handler must be safe to run concurrently; PlanSlices() and
// Finish() run on a one-thread control pool, Fold() on the handler pool (one
// task's reduce on one thread at a time). A handler whose QuickControl() is
// true has them run on the worker's loop instead (Fold only for a page of at
// most 64 results), saving two thread hand-offs each; QuickRun() does the
// same for Run().
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace orchard::worker {

struct PlanInput {
  uint64_t begin = 0;
  uint64_t end = 0;
  const nlohmann::json* params = nullptr;
};

// A plan: either "cut the range by the task's split policy" (uniform) or
// explicit boundaries begin = b0 < b1 < ... < bn = end.
struct Plan {
  bool uniform = true;
  std::vector<uint64_t> bounds;
};

struct SliceContext {
  std::string task_id;
  uint64_t index = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  uint32_t attempt = 0;  // 1-based
  const nlohmann::json* params = nullptr;
  // Items done so far in this attempt; the heartbeat reports it.
  std::atomic<uint64_t>* progress = nullptr;
  // Set when the slice must stop: cancelled, or the lease was lost.
  std::stop_token stop;
};

class Handler {
 public:
  virtual ~Handler() = default;

  // Validates the params and plans the slices. INVALID_ARGUMENT (naming the
  // param) sends the task to Error with that reason. Default: uniform.
  virtual absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const { return Plan{}; }

  // Processes one slice and returns its result. Errors: INVALID_ARGUMENT or
  // FAILED_PRECONDITION fail the slice permanently (no retry); CANCELLED means
  // it stopped because ctx.stop was set; anything else is retried.
  virtual absl::StatusOr<nlohmann::json> Run(const SliceContext& ctx) const = 0;

  // Reduce as a fold: Init() then Fold(acc, result) for every committed result.
  virtual nlohmann::json Init() const { return nlohmann::json::object(); }
  virtual absl::Status Fold(nlohmann::json& acc, const nlohmann::json& result) const = 0;
  // After the last Fold: turns the accumulator into the task's result (a
  // mean from its sum and count, a reduce program, an output file). Errors
  // fail the task. Default: the accumulator as it is.
  struct FinishContext {
    std::string task_id;
    const nlohmann::json* params = nullptr;
    bool succeeded = true;  // false: the task ends FAILED or CANCELLED
  };
  virtual absl::StatusOr<nlohmann::json> Finish(const FinishContext& ctx,
                                                nlohmann::json acc) const {
    return acc;
  }
  // True when PlanSlices, Fold and Finish read no files, start no programs
  // and take microseconds: the worker may run them on its loop, where a hand
  // off to a pool thread and back would cost more than the call.
  virtual bool QuickControl() const { return false; }
  // True when Run() takes microseconds whatever the slice (no loop over its
  // items, no I/O, no waiting): the worker runs it on its loop too.
  virtual bool QuickRun() const { return false; }
};

class Registry {
 public:
  void Add(std::string kind, std::unique_ptr<Handler> h) { handlers_[std::move(kind)] = std::move(h); }
  const Handler* Get(const std::string& kind) const {
    auto it = handlers_.find(kind);
    return it == handlers_.end() ? nullptr : it->second.get();
  }
  std::vector<std::string> Kinds() const {
    std::vector<std::string> k;
    for (const auto& [name, h] : handlers_) k.push_back(name);
    return k;
  }

 private:
  std::map<std::string, std::unique_ptr<Handler>> handlers_;
};

// noop, sleep, sum, flaky, csv.aggregate (exec needs the worker's config:
// worker/handlers/exec.h).
void AddBuiltinHandlers(Registry& registry);

}  // namespace orchard::worker
