// The stable JSON shapes of tasks, subtasks, history rows and workers: what
// `orchardctl -o json` prints and what the server's HTTP API serves. Below
// both (cli/ and server/http/ link it); it knows the proto messages and the
// lifecycle names, nothing else.
//
// Everything here is a pure function of its arguments, so tests build protos
// by hand and assert the output. The JSON field names are a stable interface;
// scripts, the dashboard and tests rely on them. Generated proto headers are
// kept out: the message types are declared only.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace orchard::v1 {
class Task;
class Subtask;
class HistoryEntry;
class WorkerInfo;
}  // namespace orchard::v1

namespace orchard::api {

// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
// "2024-05-01T12:00:03.250Z".
std::string FormatRfc3339Ms(int64_t ms);
// The same, or JSON null when ms is 0 (the proto's "not set").
nlohmann::json TimeOrNull(int64_t ms);

// The proto State as orchard::StateName spells it ("Running"); "" when unset.
std::string StateText(int state);
// The proto Outcome as orchard::OutcomeName spells it ("SUCCEEDED"); "" when unset.
std::string OutcomeText(int outcome);

// A JSON string field as a JSON value: null when empty; the raw string when it
// does not parse (so nothing is lost).
nlohmann::json ParseJsonOrNull(const std::string& text);

// Task (get, list, cancel, retry, submit -o json):
//   {"id", "kind", "state", "outcome", "reason",
//    "subtasks": {"total", "preparing", "running", "terminating", "error",
//                 "terminated", "succeeded", "cancelled"},
//    "items": {"done", "total"},
//    "result": <parsed JSON or null>, "range": {"begin", "end"},
//    "split": {"subtasks": N} | {"chunk": N} | {},
//    "params": <parsed JSON object>, "labels": {k: v},
//    "policy": {"max_attempts", "max_failed_subtasks" (null when unset),
//               "deadline_ms", "parallelism", "priority",
//               "backoff_initial_ms", "backoff_max_ms"},
//    "request_id", "version", "revision", "generation",
//    "created", "updated", "started", "finished" (RFC 3339 or null),
//    "reconciler"}
nlohmann::json TaskToJson(const orchard::v1::Task& task);

// Subtask: {"task_id", "index", "begin", "end", "state", "outcome", "attempt",
//   "epoch", "worker", "progress", "result" (parsed or null), "error",
//   "lease_expires", "not_before", "updated" (RFC 3339 or null), "version"}
nlohmann::json SubtaskToJson(const orchard::v1::Subtask& subtask);

// History row: {"object": "task" | <subtask index as a number>, "from", "to",
//   "event", "reason", "actor", "time", "version", "attempt"}
nlohmann::json HistoryToJson(const orchard::v1::HistoryEntry& entry);

// Worker: {"id", "name", "kinds": [...], "slots", "slots_in_use", "alive",
//   "draining", "last_heartbeat", "registered" (RFC 3339 or null)}
nlohmann::json WorkerToJson(const orchard::v1::WorkerInfo& worker);

}  // namespace orchard::api
