// The JSON API handlers; see api.h. Thread-safety: any thread.
#include "server/http/api.h"

#include <charconv>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "proto/json/api_json.h"
#include "common/lifecycle/state.h"
#include "common/strcat.h"
#include "server/validate.h"

namespace orchard::server::http {

namespace {

using nlohmann::json;

constexpr uint32_t kMaxLimit = 1000;

HttpResponse Json(const json& body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

// INVALID_ARGUMENT naming the first query parameter that `allowed` lacks.
absl::Status CheckParams(const HttpRequest& req, const std::set<std::string>& allowed) {
  for (const auto& [k, v] : req.query) {
    if (allowed.count(k) == 0) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      return absl::InvalidArgumentError(Cat("unknown query parameter '", k, "' (this endpoint takes ",
                                            names.empty() ? std::string("none") : names, ")"));
    }
  }
  return absl::OkStatus();
}

// The parameter as an integer in [lo, hi], or `dflt` when absent.
absl::StatusOr<uint32_t> UintParam(const HttpRequest& req, const std::string& name, uint32_t dflt,
                                   uint32_t lo, uint32_t hi) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return dflt;
  const std::string& text = it->second;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        Cat(name, ": '", text, "' is not an integer from ", lo, " to ", hi));
  }
  return static_cast<uint32_t>(v);
}

absl::StatusOr<std::vector<State>> StatesParam(const HttpRequest& req) {
  std::vector<State> out;
  auto it = req.query.find("state");
  if (it == req.query.end() || it->second.empty()) return out;
  std::string_view rest = it->second;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    std::optional<State> s = ParseState(name);
    if (!s) {
      return absl::InvalidArgumentError(
          Cat("state: unknown state '", name,
              "' (one of Preparing, Running, Terminating, Error, Terminated)"));
    }
    out.push_back(*s);
  }
  return out;
}

std::string Param(const HttpRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? std::string() : it->second;
}

#define API_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return JsonError(tmp.status());   \
  lhs = std::move(*tmp)
#define API_CONCAT_INNER_(a, b) a##b
#define API_CONCAT_(a, b) API_CONCAT_INNER_(a, b)
#define API_ASSIGN_OR_RETURN(lhs, expr) \
  API_ASSIGN_OR_RETURN_IMPL_(API_CONCAT_(api_or_, __LINE__), lhs, expr)
#define API_RETURN_IF_ERROR(expr)            \
  do {                                       \
    absl::Status api_s_ = (expr);            \
    if (!api_s_.ok()) return JsonError(api_s_); \
  } while (0)

HttpResponse ListTasks(store::Store& store, WaitExplainer& waiting, WorkerNames& names,
                       const HttpRequest& req) {
  API_RETURN_IF_ERROR(CheckParams(req, {"state", "kind", "limit", "page_token"}));
  store::TaskFilter f;
  API_ASSIGN_OR_RETURN(f.states, StatesParam(req));
  API_ASSIGN_OR_RETURN(f.page_size, UintParam(req, "limit", 50, 1, kMaxLimit));
  f.kind = Param(req, "kind");
  f.page_token = Param(req, "page_token");
  API_ASSIGN_OR_RETURN(store::TaskPage page, store.ListTasks(f));
  json tasks = json::array();
  for (auto& t : page.tasks) {
    waiting.Annotate(t);
    names.Fill(t);
    tasks.push_back(api::TaskToJson(t));
  }
  return Json({{"tasks", std::move(tasks)}, {"next_page_token", page.next_page_token}});
}

HttpResponse GetTask(store::Store& store, WaitExplainer& waiting, WorkerNames& names,
                     const std::string& id, const HttpRequest& req) {
  API_RETURN_IF_ERROR(CheckParams(req, {}));
  API_ASSIGN_OR_RETURN(orchard::v1::Task task, store.GetTask(id));
  waiting.Annotate(task);
  names.Fill(task);
  store::HistoryFilter h;
  h.task_id = id;
  h.subtask_index = -1;
  h.page_size = 1000;
  API_ASSIGN_OR_RETURN(store::HistoryPage page, store.GetHistory(h));
  json history = json::array();
  for (auto& e : page.entries) {
    names.Fill(e);
    history.push_back(api::HistoryToJson(e));
  }
  return Json({{"task", api::TaskToJson(task)}, {"history", std::move(history)}});
}

HttpResponse ListSubtasks(store::Store& store, WorkerNames& names, const std::string& id,
                          const HttpRequest& req) {
  API_RETURN_IF_ERROR(CheckParams(req, {"state", "limit", "page_token", "cells"}));
  store::SubtaskFilter f;
  f.task_id = id;
  API_ASSIGN_OR_RETURN(f.states, StatesParam(req));
  API_ASSIGN_OR_RETURN(uint32_t limit, UintParam(req, "limit", 100, 0, kMaxLimit));
  API_ASSIGN_OR_RETURN(uint32_t cells, UintParam(req, "cells", kDefaultGridCells, 1, 10000));
  f.page_size = limit;
  f.page_token = Param(req, "page_token");
  json subtasks = json::array();
  std::string next;
  if (limit > 0) {
    API_ASSIGN_OR_RETURN(store::SubtaskPage page, store.ListSubtasks(f));
    for (auto& s : page.subtasks) {
      names.Fill(s);
      subtasks.push_back(api::SubtaskToJson(s));
    }
    next = page.next_page_token;
  }
  API_ASSIGN_OR_RETURN(store::SubtaskGrid grid, store.GetSubtaskGrid(id, cells));
  json states = json::array();
  for (State s : kAllStates) states.push_back(std::string(StateName(s)));
  json rows = json::array();
  for (const auto& c : grid.cells) {
    json row = json::array();
    for (State s : kAllStates) row.push_back(c.by_state[static_cast<int>(s)]);
    rows.push_back(std::move(row));
  }
  return Json({{"subtasks", std::move(subtasks)},
               {"next_page_token", next},
               {"grid",
                {{"total", grid.total},
                 {"cell_size", grid.cell_size},
                 {"states", std::move(states)},
                 {"cells", std::move(rows)}}}});
}

HttpResponse ListErrors(store::Store& store, WorkerNames& names, const std::string& id,
                        const HttpRequest& req) {
  API_RETURN_IF_ERROR(CheckParams(req, {"limit", "page_token"}));
  store::SubtaskFilter f;
  f.task_id = id;
  API_ASSIGN_OR_RETURN(f.page_size, UintParam(req, "limit", 100, 1, kMaxLimit));
  f.page_token = Param(req, "page_token");
  f.failed_only = true;
  API_ASSIGN_OR_RETURN(store::SubtaskPage page, store.ListSubtasks(f));
  json errors = json::array();
  for (auto& s : page.subtasks) {
    names.Fill(s);
    json full = api::SubtaskToJson(s);
    errors.push_back({{"index", full["index"]},
                      {"state", full["state"]},
                      {"attempt", full["attempt"]},
                      {"error", full["error"]},
                      {"worker", full["worker"]},
                      {"worker_name", full["worker_name"]},
                      {"updated", full["updated"]}});
  }
  return Json({{"errors", std::move(errors)}, {"next_page_token", page.next_page_token}});
}

HttpResponse ListWorkers(store::Store& store, const Clock& clock, int64_t alive_window_ms,
                         const HttpRequest& req) {
  API_RETURN_IF_ERROR(CheckParams(req, {}));
  API_ASSIGN_OR_RETURN(std::vector<orchard::v1::WorkerInfo> workers,
                       store.ListWorkers(clock.NowMs(), alive_window_ms));
  json out = json::array();
  for (const auto& w : workers) out.push_back(api::WorkerToJson(w));
  return Json({{"workers", std::move(out)}});
}

}  // namespace

HttpResponse JsonError(const absl::Status& status) {
  int code = 500;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: code = 400; break;
    case absl::StatusCode::kNotFound: code = 404; break;
    case absl::StatusCode::kUnavailable: code = 503; break;
    case absl::StatusCode::kUnimplemented: code = 501; break;
    default: break;
  }
  return Json({{"error", std::string(status.message())},
               {"status", absl::StatusCodeToString(status.code())}},
              code);
}

HttpResponse HandleApi(store::Store& store, const Clock& clock, int64_t alive_window_ms,
                       WaitExplainer& waiting, WorkerNames& names, const HttpRequest& req,
                       std::string& handler) {
  constexpr std::string_view kPrefix = "/api/v1/";
  std::string_view rest = std::string_view(req.path).substr(kPrefix.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::vector<std::string> parts;
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    parts.emplace_back(rest.substr(0, slash));
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (parts.size() == 1 && parts[0] == "tasks") {
    handler = "tasks";
    return ListTasks(store, waiting, names, req);
  }
  if (parts.size() == 1 && parts[0] == "workers") {
    handler = "workers";
    return ListWorkers(store, clock, alive_window_ms, req);
  }
  if (parts.size() >= 2 && parts.size() <= 3 && parts[0] == "tasks") {
    const std::string& id = parts[1];
    if (absl::Status s = ValidateId(id, "task id"); !s.ok()) {
      handler = "task";
      return JsonError(s);
    }
    if (parts.size() == 2) {
      handler = "task";
      return GetTask(store, waiting, names, id, req);
    }
    if (parts[2] == "subtasks") {
      handler = "subtasks";
      return ListSubtasks(store, names, id, req);
    }
    if (parts[2] == "errors") {
      handler = "errors";
      return ListErrors(store, names, id, req);
    }
  }
  handler = "unknown";
  return JsonError(absl::NotFoundError(
      Cat("no such endpoint: ", req.path,
          " (try /api/v1/tasks, /api/v1/tasks/ID, /api/v1/tasks/ID/subtasks, "
          "/api/v1/tasks/ID/errors, /api/v1/workers)")));
}

}  // namespace orchard::server::http
