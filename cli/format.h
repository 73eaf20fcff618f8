// How orchardctl renders what the server returns: the stable JSON shapes of
// `-o json` and the text (blocks, aligned tables, progress lines) people read.
//
// Everything here is a pure function of its arguments (the current time is a
// parameter), so tests build protos by hand and assert the output. The JSON
// field names are orchardctl's stable interface; scripts and tests rely on them.
// Generated proto headers are kept out: the message types are declared only.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace orchard::v1 {
class Task;
class Subtask;
class HistoryEntry;
class WorkerInfo;
}  // namespace orchard::v1

namespace orchard::cli {

// ------------------------------------------------------------ small pieces

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

// "45/100 (45%)": succeeded of total, the percentage rounded down.
std::string ProgressText(uint64_t done, uint64_t total);

// Columns aligned on the widest cell, separated by two spaces; the last column
// is not padded. Rows shorter than the header are padded with empty cells.
// Every line ends with '\n'.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// ------------------------------------------------------------------- JSON
//
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

// -------------------------------------------------------------------- text

// The readable block of `get`, `cancel` and `retry`. `now_ms` gives the ages.
std::string TaskText(const orchard::v1::Task& task, int64_t now_ms);
// The table of `list`: ID KIND STATE PROGRESS AGE.
std::string TaskTable(const std::vector<orchard::v1::Task>& tasks, int64_t now_ms);
// The table of `subtasks`.
std::string SubtaskTable(const std::vector<orchard::v1::Subtask>& subtasks);
// The timeline of `history`: time, object, from -> to, event, reason, actor.
std::string HistoryText(const std::vector<orchard::v1::HistoryEntry>& entries);
// The table of `workers`.
std::string WorkerTable(const std::vector<orchard::v1::WorkerInfo>& workers, int64_t now_ms);

// ---------------------------------------------------------------- progress

// Items (or, for a task without item counts, slices) per second seen by this
// watch, and the time left at that rate. Pure: the caller passes the clock.
class RateEstimator {
 public:
  // Records that `done` units were done at `now_ms`.
  void Observe(int64_t now_ms, uint64_t done);
  // Units per second since the first observation; nullopt until a second has
  // passed and something was done.
  std::optional<double> PerSecond() const;
  // Seconds left for `remaining` units at PerSecond(); nullopt when unknown.
  std::optional<double> EtaSeconds(uint64_t remaining) const;

 private:
  bool has_first_ = false;
  int64_t first_ms_ = 0;
  uint64_t first_done_ = 0;
  int64_t last_ms_ = 0;
  uint64_t last_done_ = 0;
};

struct ProgressView {
  std::optional<double> per_second;  // throughput, in items (or slices) per second
  std::optional<double> eta_seconds;
};

// One line of watch output. With bar_width > 0 it starts with a progress bar
// "[#####.....]" for a terminal; with 0 it is the plain line for a pipe:
//   Running [##########..........]  45/100 slices (45%)  items 4500/10000
//   preparing 51 running 4 terminating 0 error 0  120 items/s  ETA 45s
// (on one line). Throughput and ETA appear only when known.
std::string ProgressLine(const orchard::v1::Task& task, const ProgressView& view, int bar_width);

// The last line of watch: "t-abc Terminated SUCCEEDED" plus ": reason".
std::string FinalLine(const orchard::v1::Task& task);

// watch's exit code for a task in a terminal state: 0 for SUCCEEDED, 3 for
// Error (FAILED), 4 for CANCELLED; nullopt when the task has not ended.
std::optional<int> ExitCodeFor(const orchard::v1::Task& task);

}  // namespace orchard::cli
