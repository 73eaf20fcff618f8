// The `csv.aggregate` handler: a group-by over a CSV file too big for memory,
// split by byte ranges across workers.
//
// Params (INVALID_ARGUMENT names the field when one is wrong):
//   path        absolute path of the CSV file; every worker must see it
//               (shared or replicated storage)
//   delimiter   one byte, default ","
//   header      true (default): the first record names the columns
//   group_by    array of columns (names, or 0-based positions), default [] =
//               one group for the whole file
//   aggregates  [{"column": C, "op": "count|sum|min|max|mean"}], required;
//               "count" without a column counts rows, with one its non-empty
//               values
//   chunk_bytes slice size in bytes, default 67108864 (64 MiB); the task's
//               own --subtasks/--chunk is ignored
//   filter      optional {"column": C, "equals": "text"} (or an array of them,
//               all must hold): only matching rows are aggregated
//   output      optional absolute path: the result table is written there as
//               CSV (atomically, when the task succeeds) and left out of the
//               task's result
//   max_bad_rows optional: a slice with more malformed rows fails for good
//   max_groups  default 1000000: a slice with more groups fails for good
// Range: the task's range is the file's bytes and must start at 0: submit
// `--range 0:SIZE` (SIZE = the file's size; a smaller end aggregates the rows
// that start before it). The plan cuts at multiples of chunk_bytes, moved
// forward to record starts (one pass over the file counting quotes, see
// csv_reader.h), so every row lands in exactly one slice.
//
// Values: empty fields are skipped (like pandas' NaN). A number is read
// exactly as a decimal (up to 36 digits, 18 after the point) so sums, minima
// and maxima merge exactly however the file is split; other numbers
// (exponents, more digits) are summed as doubles. A value that is not a
// number is a malformed row. Malformed rows (bad quoting, a field count that
// differs from the header's — or the first row's without header —, a row
// over 1 MiB, a non-number where a number is needed) are counted, not
// aggregated, and reported with their byte offsets (the first 10).
//
// Result: {"columns": [group columns..., "<column>_<op>"...|"count"],
//          "rows": [[key..., value...], ...] sorted by key (numeric keys by
//          value), "groups": N, "rows_read": N, "rows_aggregated": N,
//          "bad_rows": N, "bad_row_samples": [{"offset": O, "error": E}],
//          "output": path (when given)}.
// Keys are the CSV text; count is an integer, sum/min/max are numbers
// (integers when exact integers), mean = sum / count (null without values).
//
// Memory per slice: one 256 KiB read buffer, one row (at most 1 MiB) and the
// group table; it does not grow with the file.
//
// Thread-safety: stateless; Run() runs concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/handler.h"

namespace orchard::worker {

class CsvAggregateHandler final : public Handler {
 public:
  absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const override;
  absl::StatusOr<nlohmann::json> Run(const SliceContext& ctx) const override;
  nlohmann::json Init() const override;
  absl::Status Fold(nlohmann::json& acc, const nlohmann::json& result) const override;
  absl::StatusOr<nlohmann::json> Finish(const FinishContext& ctx,
                                        nlohmann::json acc) const override;
};

}  // namespace orchard::worker
