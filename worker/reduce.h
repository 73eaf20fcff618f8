// A task's reduce: folds every committed (SUCCEEDED) subtask result with the
// task's handler, then Finish() turns the accumulator into the task's
// result. The results come from the last WaitTask answer when it holds all of
// them at this task version, else page by page from ListSubtasks.
//
// Thread-safety: runs on the loop; Fold goes to `fold_pool` and Finish to
// `control_pool` unless the handler's control functions are quick.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "worker/handler.h"
#include "worker/server_api.h"
#include "worker/state.h"

namespace orchard::worker {

// `succeeded`: whether the task ends SUCCEEDED (Handler::FinishContext).
// Consumes entry.results.
Awaitable<absl::StatusOr<nlohmann::json>> Reduce(ServerApi& api, asio::thread_pool& fold_pool,
                                                 asio::thread_pool& control_pool,
                                                 const pb::Task& task, const Handler* handler,
                                                 bool succeeded, ReconciledTask& entry);

}  // namespace orchard::worker
