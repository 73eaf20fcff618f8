// The JSON API under /api/v1/ that the dashboard polls. Shapes reuse
// orchardctl's -o json (proto/json/api_json.h: TaskToJson, SubtaskToJson,
// HistoryToJson, WorkerToJson), so a script reads the same fields from both.
//
//   GET /api/v1/tasks?state=S[,S]&kind=K&limit=N&page_token=T
//       {"tasks": [Task...], "next_page_token": ""}
//   GET /api/v1/tasks/{id}
//       {"task": Task, "history": [the task's own History rows, oldest first]}
//   GET /api/v1/tasks/{id}/subtasks?state=S&limit=N&page_token=T&cells=N
//       {"subtasks": [Subtask...], "next_page_token": "",
//        "grid": {"total", "cell_size", "states": ["Preparing", ...],
//                 "cells": [[n_preparing, n_running, n_terminating, n_error,
//                            n_terminated], ...]}}
//       cell i covers the indices [i * cell_size, min((i + 1) * cell_size, total));
//       at most `cells` (default 2000) cells; limit=0 returns no subtask rows.
//   GET /api/v1/tasks/{id}/errors?limit=N&page_token=T
//       {"errors": [{"index", "state", "attempt", "error", "worker", "updated"}],
//        "next_page_token": ""}  (subtasks in Error or with a last error)
//   GET /api/v1/workers
//       {"workers": [Worker...]}
// Errors: {"error": "message naming the parameter or object", "status": "NOT_FOUND"}
// with 400 (bad parameter), 404 (unknown task or path), 503 (store unavailable).
//
// Thread-safety: pure functions of the store's answers; any thread.
#pragma once

#include <string>

#include "common/clock.h"
#include "server/http/http_types.h"
#include "server/store/store.h"
#include "server/waiting.h"
#include "server/worker_names.h"

namespace orchard::server::http {

inline constexpr uint32_t kDefaultGridCells = 2000;

// Answers `request` whose path starts with /api/v1/. `handler` is set to the
// route's name for metrics ("tasks", "task", "subtasks", "errors", "workers",
// "unknown").
// `waiting` explains why a waiting task waits (its reason, as `get` shows it).
HttpResponse HandleApi(store::Store& store, const Clock& clock, int64_t alive_window_ms,
                       WaitExplainer& waiting, WorkerNames& names, const HttpRequest& request,
                       std::string& handler);

// {"error": message, "status": status name} with the HTTP code for `status`.
HttpResponse JsonError(const absl::Status& status);

}  // namespace orchard::server::http
