// Flag parsing for orchardctl; see args.h.
#include "cli/args.h"

#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

#include "common/lifecycle/state.h"
#include "common/split.h"
#include "common/strcat.h"
#include "common/util.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::cli {

namespace {

template <typename T>
absl::StatusOr<T> ParseInteger(const std::string& text, const std::string& field,
                               const char* what) {
  T v{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (text.empty() || ec != std::errc() || ptr != last) {
    return absl::InvalidArgumentError(Cat(field, ": '", text, "' is not ", what));
  }
  return v;
}

}  // namespace

absl::StatusOr<uint32_t> ParseUint32(const std::string& text, const std::string& field) {
  return ParseInteger<uint32_t>(text, field, "an unsigned 32-bit integer");
}
absl::StatusOr<int32_t> ParseInt32(const std::string& text, const std::string& field) {
  return ParseInteger<int32_t>(text, field, "a 32-bit integer");
}
absl::StatusOr<int64_t> ParseInt64(const std::string& text, const std::string& field) {
  return ParseInteger<int64_t>(text, field, "a 64-bit integer");
}

absl::Status CheckParams(const std::string& text) {
  if (text.empty()) return absl::OkStatus();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(Cat("params: not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object()) return absl::InvalidArgumentError("params: must be a JSON object");
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const std::string& l : labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(Cat("label: '", l, "' is not KEY=VALUE"));
    }
    out[l.substr(0, eq)] = l.substr(eq + 1);
  }
  return out;
}

absl::StatusOr<std::vector<int>> ParseStates(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const std::string& n : names) {
    std::optional<State> s = ParseState(n);
    if (!s) {
      return absl::InvalidArgumentError(Cat(
          "state: '", n, "' is not one of Preparing, Running, Terminating, Error, Terminated"));
    }
    out.push_back(static_cast<int>(*s));
  }
  return out;
}

absl::Status BuildTaskSpec(const SubmitArgs& a, v1::TaskSpec* spec) {
  if (a.kind.empty()) return absl::InvalidArgumentError("kind: is required (--kind)");
  spec->set_kind(a.kind);

  if (a.range.empty()) return absl::InvalidArgumentError("range: is required (--range BEGIN:END)");
  absl::StatusOr<RangeArg> range = ParseRange(a.range, "range");
  if (!range.ok()) return range.status();
  spec->set_begin(range->begin);
  spec->set_end(range->end);

  if (a.subtasks.empty() == a.chunk.empty()) {
    return absl::InvalidArgumentError("split: give exactly one of --subtasks N or --chunk SIZE");
  }
  if (!a.subtasks.empty()) {
    absl::StatusOr<uint64_t> n = ParseUint64(a.subtasks, "subtasks");
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::InvalidArgumentError("subtasks: must be at least 1");
    if (*n > kMaxSubtasks) {
      return absl::InvalidArgumentError(
          Cat("subtasks: ", *n, " is more than the limit of ", kMaxSubtasks));
    }
    spec->mutable_split()->set_subtasks(*n);
  } else {
    absl::StatusOr<uint64_t> n = ParseUint64(a.chunk, "chunk");
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::InvalidArgumentError("chunk: must be at least 1");
    spec->mutable_split()->set_chunk(*n);
  }

  if (absl::Status s = CheckParams(a.params); !s.ok()) return s;
  // Sent as typed: the server parses and validates it again.
  spec->set_params_json(a.params);

  v1::TaskPolicy* p = spec->mutable_policy();
  if (!a.max_attempts.empty()) {
    absl::StatusOr<uint32_t> n = ParseUint32(a.max_attempts, "max_attempts");
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::InvalidArgumentError("max_attempts: must be at least 1");
    p->set_max_attempts(*n);
  }
  if (!a.max_failed_subtasks.empty()) {
    absl::StatusOr<int64_t> n = ParseInt64(a.max_failed_subtasks, "max_failed_subtasks");
    if (!n.ok()) return n.status();
    if (*n < -1) {
      return absl::InvalidArgumentError(
          "max_failed_subtasks: must be -1 (no limit) or a count of 0 or more");
    }
    p->set_max_failed_subtasks(*n);
  }
  if (!a.deadline.empty()) {
    absl::StatusOr<uint64_t> ms = ParseDurationMs(a.deadline, "deadline");
    if (!ms.ok()) return ms.status();
    p->set_deadline_ms(*ms);
  }
  if (!a.parallelism.empty()) {
    absl::StatusOr<uint32_t> n = ParseUint32(a.parallelism, "parallelism");
    if (!n.ok()) return n.status();
    p->set_parallelism(*n);
  }
  if (!a.priority.empty()) {
    absl::StatusOr<int32_t> n = ParseInt32(a.priority, "priority");
    if (!n.ok()) return n.status();
    p->set_priority(*n);
  }
  if (!a.backoff.empty()) {
    absl::StatusOr<uint64_t> ms = ParseDurationMs(a.backoff, "backoff");
    if (!ms.ok()) return ms.status();
    p->set_backoff_initial_ms(*ms);
  }
  if (!a.backoff_max.empty()) {
    absl::StatusOr<uint64_t> ms = ParseDurationMs(a.backoff_max, "backoff_max");
    if (!ms.ok()) return ms.status();
    p->set_backoff_max_ms(*ms);
  }
  if (p->backoff_initial_ms() != 0 && p->backoff_max_ms() != 0 &&
      p->backoff_max_ms() < p->backoff_initial_ms()) {
    return absl::InvalidArgumentError(Cat("backoff_max: ", p->backoff_max_ms(),
                                          "ms is less than backoff (", p->backoff_initial_ms(),
                                          "ms)"));
  }

  absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(a.labels);
  if (!labels.ok()) return labels.status();
  for (const auto& [k, v] : *labels) (*spec->mutable_labels())[k] = v;

  spec->set_request_id(a.request_id);
  return absl::OkStatus();
}

}  // namespace orchard::cli
