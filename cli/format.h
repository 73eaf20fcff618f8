// How orchardctl renders what the server returns: the text (blocks, aligned
// tables, progress lines) people read. The stable JSON shapes of `-o json`
// are proto/json/api_json.h, shared with the server's HTTP API.
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

#include "proto/json/api_json.h"

namespace orchard::cli {

// The JSON shapes live below both orchardctl and the server's HTTP API
// (proto/json/api_json.h); orchardctl's -o json is the same JSON.
using api::FormatRfc3339Ms;
using api::HistoryToJson;
using api::OutcomeText;
using api::ParseJsonOrNull;
using api::StateText;
using api::SubtaskToJson;
using api::TaskToJson;
using api::TimeOrNull;
using api::WorkerToJson;

// ------------------------------------------------------------ small pieces

// "45/100 (45%)": succeeded of total, the percentage rounded down.
std::string ProgressText(uint64_t done, uint64_t total);

// Columns aligned on the widest cell, separated by two spaces; the last column
// is not padded. Rows shorter than the header are padded with empty cells.
// Every line ends with '\n'.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

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
