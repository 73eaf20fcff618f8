// The invariant checker: reads an Orchard database (read-only, one consistent
// snapshot, so a live server's WAL database may be checked while it runs) and
// checks what DESIGN.md promises about stored state:
//
//  history    every task's and subtask's history is a legal path through its
//             lifecycle table (common/lifecycle): the task's first row is the
//             creation row CreateTask writes (0 -> Preparing, "Created"); each
//             row's from is the previous row's to (a subtask starts in
//             Preparing); each (from, event) edge exists and leads to `to`;
//             task versions go 1, 2, 3, ...; a subtask's attempt goes + 1 on
//             Leased and back to 0 on RetryRequested; the object's stored
//             state (and a subtask's outcome) is where its history ends.
//  counters   each task's n_* counters, items_done and items_total equal the
//             real counts over its subtasks.
//  results    no subtask has two committed results: at most one Succeeded
//             row per subtask (a SUCCEEDED subtask is never retried), and
//             exactly one for a subtask that is Terminated/SUCCEEDED.
//  reduce     every finished task's result_json equals the fold of its
//             SUCCEEDED subtasks' result_json by the kind's reduce rule (the
//             same rule the worker's handler folds with, common/fold.h), for
//             the kinds whose result is that plain fold (noop, sum, flaky,
//             sleep); other kinds are skipped and listed as such.
//
// Layering: this lives beside the store because it reads the store's schema;
// it needs only common/ (the reduce rules), not the worker's handlers.
//
// Thread-safety: CheckDatabase opens its own connection and may run on any
// thread; a report is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace orchard::store {

struct Violation {
  std::string check;    // "history", "counters", "results", "reduce", "state"
  std::string object;   // "t-..." or "t-.../3"
  std::string message;  // what differs, with both values
};

struct InvariantReport {
  uint64_t tasks = 0;
  uint64_t subtasks = 0;
  uint64_t history_rows = 0;
  uint64_t results_checked = 0;  // tasks whose result was compared with the fold
  std::vector<std::string> skipped;  // checks not made, and why
  std::vector<Violation> violations;  // at most CheckOptions::max_violations
  uint64_t violation_count = 0;       // all of them

  bool ok() const { return violation_count == 0; }
  // One line per violation (and per skip), then a count line.
  std::string ToText() const;
  std::string ToJson() const;
};

struct CheckOptions {
  // Stop listing after this many violations (the count stays exact).
  size_t max_violations = 1000;
};

// Checks the database file at `path`. An error status means the file could
// not be read at all (missing, not an Orchard database); violations are in
// the report.
absl::StatusOr<InvariantReport> CheckDatabase(const std::string& path,
                                              const CheckOptions& options = {});

}  // namespace orchard::store
