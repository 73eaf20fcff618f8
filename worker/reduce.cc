// A task's reduce (see reduce.h). Loop thread, with handler calls on pools.
#include "worker/reduce.h"

#include <memory>
#include <optional>
#include <string>

#include "common/strcat.h"
#include "worker/run_on_pool.h"

namespace orchard::worker {

namespace {
using json = nlohmann::json;
// A page this small folds on the loop for a quick handler: the hop to the
// pool and back would cost more than the fold.
constexpr int kQuickFoldMax = 64;
}  // namespace

Awaitable<absl::StatusOr<json>> Reduce(ServerApi& api, asio::thread_pool& fold_pool,
                                       asio::thread_pool& control_pool, const pb::Task& task,
                                       const Handler* handler, bool succeeded,
                                       ReconciledTask& entry) {
  json acc = handler->Init();
  std::optional<Subtasks> held;
  if (entry.results && entry.results_version == task.version()) held.swap(entry.results);
  entry.results.reset();
  std::string token;
  bool more = true;
  while (more) {
    auto page = std::make_shared<Subtasks>();
    if (held) {
      page->Swap(&*held);
      held.reset();
      more = false;
    } else {
      pb::ListSubtasksRequest req;
      req.set_task_id(task.id());
      req.add_states(pb::TERMINATED);
      req.set_page_size(10000);
      req.set_page_token(token);
      auto listed = co_await api.ListSubtasks(req);
      if (!listed.ok()) {
        absl::StatusOr<json> failed = listed.status();
        co_return failed;
      }
      page->Swap(listed->mutable_subtasks());
      token = listed->next_page_token();
      more = !token.empty();
    }
    auto fold = [&acc, page, handler]() {
      for (const auto& s : *page) {
        if (s.outcome() != pb::SUCCEEDED) continue;
        json r = json::parse(s.result_json(), nullptr, false);
        if (r.is_discarded()) {
          return absl::DataLossError(Cat("subtask ", s.index(), ": result is not JSON"));
        }
        if (auto st = handler->Fold(acc, r); !st.ok()) return st;
      }
      return absl::OkStatus();
    };
    const bool quick = handler->QuickControl() && page->size() <= kQuickFoldMax;
    auto folded = co_await RunControl<absl::Status>(fold_pool, quick, std::move(fold));
    if (!folded.ok()) {
      absl::StatusOr<json> failed = folded;
      co_return failed;
    }
  }
  auto params = std::make_shared<json>(json::parse(
      task.spec().params_json().empty() ? "{}" : task.spec().params_json(), nullptr, false));
  auto finish = [handler, params, succeeded, id = task.id(), acc = std::move(acc)]() mutable {
    return handler->Finish({id, params.get(), succeeded}, std::move(acc));
  };
  absl::StatusOr<json> out = co_await RunControl<absl::StatusOr<json>>(
      control_pool, handler->QuickControl(), std::move(finish));
  co_return out;
}

}  // namespace orchard::worker
