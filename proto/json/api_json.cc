// The JSON shapes of tasks, subtasks, history and workers (proto/json/api_json.h).
#include "proto/json/api_json.h"

#include <ctime>

#include <fmt/format.h>

#include "common/lifecycle/state.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::api {

namespace v1 = ::orchard::v1;
using nlohmann::json;

std::string FormatRfc3339Ms(int64_t ms) {
  // Floor division, so times before 1970 still get a millisecond in [0, 999].
  int64_t secs = ms / 1000;
  int64_t millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

json TimeOrNull(int64_t ms) { return ms == 0 ? json(nullptr) : json(FormatRfc3339Ms(ms)); }

std::string StateText(int state) {
  if (state < static_cast<int>(State::kPreparing) || state > static_cast<int>(State::kTerminated)) {
    return "";
  }
  return std::string(StateName(static_cast<State>(state)));
}

std::string OutcomeText(int outcome) {
  if (outcome < 0 || outcome > static_cast<int>(Outcome::kFailed)) return "";
  return std::string(OutcomeName(static_cast<Outcome>(outcome)));
}

json ParseJsonOrNull(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return text;
  return j;
}

// ------------------------------------------------------------------- JSON

json TaskToJson(const v1::Task& t) {
  const v1::TaskSpec& spec = t.spec();
  const v1::SubtaskCounts& c = t.counts();
  json j = json::object();
  j["id"] = t.id();
  j["kind"] = spec.kind();
  j["state"] = StateText(t.state());
  j["outcome"] = OutcomeText(t.outcome());
  j["reason"] = t.reason();
  j["subtasks"] = {
      {"total", c.total()},
      {std::string(StateKey(State::kPreparing)), c.preparing()},
      {std::string(StateKey(State::kRunning)), c.running()},
      {std::string(StateKey(State::kTerminating)), c.terminating()},
      {std::string(StateKey(State::kError)), c.error()},
      {std::string(StateKey(State::kTerminated)), c.terminated()},
      {"succeeded", c.succeeded()},
      {"cancelled", c.cancelled()},
  };
  j["items"] = {{"done", c.items_done()}, {"total", c.items_total()}};
  j["result"] = ParseJsonOrNull(t.result_json());
  // A result of a task that failed or was cancelled reduces only the slices
  // that succeeded: it is partial.
  j["result_partial"] = !j["result"].is_null() && (t.outcome() == v1::FAILED ||
                                                   t.outcome() == v1::CANCELLED);
  j["range"] = {{"begin", spec.begin()}, {"end", spec.end()}};
  json split = json::object();
  if (spec.split().has_subtasks()) split["subtasks"] = spec.split().subtasks();
  if (spec.split().has_chunk()) split["chunk"] = spec.split().chunk();
  j["split"] = std::move(split);
  json params = ParseJsonOrNull(spec.params_json());
  j["params"] = params.is_null() ? json::object() : std::move(params);
  json labels = json::object();
  // A proto map iterates in no particular order; nlohmann's object sorts keys.
  for (const auto& [k, v] : spec.labels()) labels[k] = v;
  j["labels"] = std::move(labels);
  const v1::TaskPolicy& p = spec.policy();
  j["policy"] = {
      {"max_attempts", p.max_attempts()},
      {"max_failed_subtasks",
       p.has_max_failed_subtasks() ? json(p.max_failed_subtasks()) : json(nullptr)},
      {"deadline_ms", p.deadline_ms()},
      {"parallelism", p.parallelism()},
      {"priority", p.priority()},
      {"backoff_initial_ms", p.backoff_initial_ms()},
      {"backoff_max_ms", p.backoff_max_ms()},
  };
  j["request_id"] = spec.request_id();
  j["version"] = t.version();
  j["revision"] = t.revision();
  j["generation"] = t.generation();
  j["created"] = TimeOrNull(t.create_time_ms());
  j["updated"] = TimeOrNull(t.update_time_ms());
  j["started"] = TimeOrNull(t.start_time_ms());
  j["finished"] = TimeOrNull(t.finish_time_ms());
  j["reconciler"] = t.reconciler();
  j["reconciler_name"] = t.reconciler_name();
  return j;
}

json SubtaskToJson(const v1::Subtask& s) {
  json j = json::object();
  j["task_id"] = s.task_id();
  j["index"] = s.index();
  j["begin"] = s.begin();
  j["end"] = s.end();
  j["state"] = StateText(s.state());
  j["outcome"] = OutcomeText(s.outcome());
  j["attempt"] = s.attempt();
  j["epoch"] = s.epoch();
  j["worker"] = s.worker();
  j["worker_name"] = s.worker_name();
  j["progress"] = s.progress();
  j["result"] = ParseJsonOrNull(s.result_json());
  j["error"] = s.error();
  j["lease_expires"] = TimeOrNull(s.lease_expire_ms());
  j["not_before"] = TimeOrNull(s.not_before_ms());
  j["updated"] = TimeOrNull(s.update_time_ms());
  j["version"] = s.version();
  return j;
}

json HistoryToJson(const v1::HistoryEntry& e) {
  json j = json::object();
  j["object"] = e.subtask_index() < 0 ? json("task") : json(e.subtask_index());
  j["from"] = StateText(e.from());
  j["to"] = StateText(e.to());
  j["event"] = e.event();
  j["reason"] = e.reason();
  j["actor"] = e.actor();
  j["actor_name"] = e.actor_name();
  j["time"] = TimeOrNull(e.time_ms());
  j["version"] = e.version();
  j["attempt"] = e.attempt();
  return j;
}

json WorkerToJson(const v1::WorkerInfo& w) {
  json j = json::object();
  j["id"] = w.id();
  j["name"] = w.name();
  j["kinds"] = json::array();
  for (const auto& k : w.kinds()) j["kinds"].push_back(k);
  j["slots"] = w.slots();
  j["slots_in_use"] = w.slots_in_use();
  j["alive"] = w.alive();
  j["draining"] = w.draining();
  j["last_heartbeat"] = TimeOrNull(w.last_heartbeat_ms());
  j["registered"] = TimeOrNull(w.register_time_ms());
  return j;
}

}  // namespace orchard::api
