// Rendering of tasks, subtasks, history and workers; see format.h.
#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "common/lifecycle/state.h"
#include "common/strcat.h"
#include "common/util.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::cli {

namespace v1 = ::orchard::v1;
using nlohmann::json;

// ------------------------------------------------------------ small pieces

std::string ProgressText(uint64_t done, uint64_t total) {
  // done * 100 could overflow near UINT64_MAX; long double is exact enough for a percentage.
  uint64_t pct = total == 0 ? 0
                            : static_cast<uint64_t>(static_cast<long double>(done) * 100.0L /
                                                    static_cast<long double>(total));
  return Cat(done, "/", total, " (", pct, "%)");
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  size_t cols = header.size();
  for (const auto& r : rows) cols = std::max(cols, r.size());
  std::vector<size_t> width(cols, 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  };
  measure(header);
  for (const auto& r : rows) measure(r);

  std::string out;
  auto emit = [&](const std::vector<std::string>& r) {
    std::string line;
    for (size_t i = 0; i < cols; ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      line += cell;
      if (i + 1 < cols) line += std::string(width[i] - cell.size() + 2, ' ');
    }
    // Trailing blanks of empty last cells help nobody.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  if (!header.empty()) emit(header);
  for (const auto& r : rows) emit(r);
  return out;
}

namespace {

std::string Age(int64_t since_ms, int64_t now_ms) {
  if (since_ms == 0) return "-";
  return FormatDurationMs(now_ms - since_ms);
}

std::string TimeText(int64_t ms, int64_t now_ms) {
  if (ms == 0) return "-";
  return Cat(FormatRfc3339Ms(ms), " (", FormatDurationMs(now_ms - ms), " ago)");
}

std::string ObjectText(int64_t subtask_index) {
  return subtask_index < 0 ? std::string("task") : Cat("subtask ", subtask_index);
}

std::string JsonCompact(const std::string& text, const char* if_empty) {
  if (text.empty()) return if_empty;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? text : j.dump();
}

}  // namespace


// -------------------------------------------------------------------- text

namespace {

// "node-1 (w-1m8y...)" when the id has a name, the id alone otherwise, "-"
// for none: people know their workers by name, scripts by id.
std::string WorkerText(const std::string& id, const std::string& name) {
  if (id.empty()) return "-";
  if (name.empty() || name == id) return id;
  return Cat(name, " (", id, ")");
}

}  // namespace

std::string TaskText(const v1::Task& t, int64_t now_ms) {
  const v1::TaskSpec& spec = t.spec();
  const v1::SubtaskCounts& c = t.counts();
  std::vector<std::vector<std::string>> rows;
  auto add = [&](std::string key, std::string value) {
    rows.push_back({std::move(key), std::move(value)});
  };
  add("ID:", t.id());
  add("Kind:", spec.kind());
  std::string state = StateText(t.state());
  if (t.outcome() != v1::OUTCOME_UNSPECIFIED) state += Cat(" (", OutcomeText(t.outcome()), ")");
  add("State:", state);
  if (!t.reason().empty()) add("Reason:", t.reason());
  std::string split = spec.split().has_subtasks() ? Count(spec.split().subtasks(), "subtask")
                      : spec.split().has_chunk()  ? Cat("chunks of ", spec.split().chunk())
                                                  : std::string("-");
  // A range shorter than the subtasks asked for makes fewer (one item each).
  if (spec.split().has_subtasks() && c.total() > 0 && c.total() != spec.split().subtasks()) {
    split += Cat(" asked, ", c.total(), " made");
  }
  add("Range:", Cat("[", spec.begin(), ", ", spec.end(), ")  split: ", split));
  add("Progress:", Cat(ProgressText(c.succeeded(), c.total()), " subtasks succeeded, items ",
                       c.items_done(), "/", c.items_total()));
  add("Subtasks:", Cat("preparing ", c.preparing(), "  running ", c.running(), "  terminating ",
                       c.terminating(), "  error ", c.error(), "  terminated ", c.terminated(),
                       " (succeeded ", c.succeeded(), ", cancelled ", c.cancelled(), ")"));
  add("Params:", JsonCompact(spec.params_json(), "{}"));
  if (!spec.labels().empty()) {
    std::vector<std::string> kv;
    for (const auto& [k, v] : spec.labels()) kv.push_back(Cat(k, "=", v));
    std::sort(kv.begin(), kv.end());
    std::string joined;
    for (const auto& s : kv) joined += (joined.empty() ? "" : ", ") + s;
    add("Labels:", joined);
  }
  const v1::TaskPolicy& p = spec.policy();
  add("Policy:",
      Cat("max attempts ", p.max_attempts(), ", failure budget ",
          p.has_max_failed_subtasks() ? Cat(p.max_failed_subtasks()) : std::string("default"),
          ", deadline ", p.deadline_ms() == 0 ? std::string("none") : FormatDurationMs(p.deadline_ms()),
          ", parallelism ", p.parallelism() == 0 ? std::string("unlimited") : Cat(p.parallelism()),
          ", priority ", p.priority()));
  if (!spec.request_id().empty()) add("Request ID:", spec.request_id());
  add("Created:", TimeText(t.create_time_ms(), now_ms));
  add("Started:", TimeText(t.start_time_ms(), now_ms));
  add("Finished:", TimeText(t.finish_time_ms(), now_ms));
  add("Updated:", TimeText(t.update_time_ms(), now_ms));
  add("Version:", Cat(t.version(), " (revision ", t.revision(), ", generation ", t.generation(), ")"));
  add("Reconciler:", WorkerText(t.reconciler(), t.reconciler_name()));
  if (!t.result_json().empty()) {
    const bool partial = t.outcome() == v1::FAILED || t.outcome() == v1::CANCELLED;
    add(partial ? "Result (partial):" : "Result:", JsonCompact(t.result_json(), "null"));
  }
  return FormatTable({}, rows);
}

std::string TaskTable(const std::vector<v1::Task>& tasks, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(tasks.size());
  for (const v1::Task& t : tasks) {
    std::string state = StateText(t.state());
    if (t.outcome() != v1::OUTCOME_UNSPECIFIED) state += Cat("/", OutcomeText(t.outcome()));
    rows.push_back({t.id(), t.spec().kind(), state,
                    ProgressText(t.counts().succeeded(), t.counts().total()),
                    Age(t.create_time_ms(), now_ms)});
  }
  return FormatTable({"ID", "KIND", "STATE", "PROGRESS", "AGE"}, rows);
}

std::string SubtaskTable(const std::vector<v1::Subtask>& subtasks) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(subtasks.size());
  for (const v1::Subtask& s : subtasks) {
    std::string state = StateText(s.state());
    if (s.outcome() != v1::OUTCOME_UNSPECIFIED) state += Cat("/", OutcomeText(s.outcome()));
    std::string detail = !s.error().empty() ? s.error() : JsonCompact(s.result_json(), "");
    rows.push_back({Cat(s.index()), Cat("[", s.begin(), ", ", s.end(), ")"), state,
                    Cat(s.attempt()), Cat(s.epoch()), WorkerText(s.worker(), s.worker_name()),
                    Cat(s.progress(), "/", s.end() - s.begin()), detail});
  }
  return FormatTable({"INDEX", "RANGE", "STATE", "ATTEMPT", "EPOCH", "WORKER", "PROGRESS",
                      "RESULT/ERROR"},
                     rows);
}

std::string HistoryText(const std::vector<v1::HistoryEntry>& entries) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(entries.size());
  for (const v1::HistoryEntry& e : entries) {
    std::string from = StateText(e.from());
    rows.push_back({e.time_ms() == 0 ? std::string("-") : FormatRfc3339Ms(e.time_ms()),
                    ObjectText(e.subtask_index()),
                    Cat(from.empty() ? std::string("(new)") : from, " -> ", StateText(e.to())),
                    e.event(), e.reason().empty() ? std::string("-") : e.reason(),
                    WorkerText(e.actor(), e.actor_name())});
  }
  return FormatTable({"TIME", "OBJECT", "TRANSITION", "EVENT", "REASON", "ACTOR"}, rows);
}

std::string WorkerTable(const std::vector<v1::WorkerInfo>& workers, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(workers.size());
  for (const v1::WorkerInfo& w : workers) {
    std::string kinds;
    for (const auto& k : w.kinds()) kinds += (kinds.empty() ? "" : ",") + k;
    std::string status = w.alive() ? (w.draining() ? "draining" : "alive") : "dead";
    rows.push_back({w.id(), w.name(), kinds.empty() ? "-" : kinds,
                    Cat(w.slots_in_use(), "/", w.slots()), status,
                    w.last_heartbeat_ms() == 0 ? std::string("-")
                                               : Cat(Age(w.last_heartbeat_ms(), now_ms), " ago")});
  }
  return FormatTable({"ID", "NAME", "KINDS", "SLOTS", "STATUS", "HEARTBEAT"}, rows);
}

// ---------------------------------------------------------------- progress

void RateEstimator::Observe(int64_t now_ms, uint64_t done) {
  if (!has_first_ || done < last_done_) {
    // A retry can move counts backwards; start measuring again from here.
    has_first_ = true;
    first_ms_ = now_ms;
    first_done_ = done;
  }
  last_ms_ = now_ms;
  last_done_ = done;
}

std::optional<double> RateEstimator::PerSecond() const {
  if (!has_first_) return std::nullopt;
  int64_t elapsed = last_ms_ - first_ms_;
  if (elapsed < 1000 || last_done_ <= first_done_) return std::nullopt;
  return static_cast<double>(last_done_ - first_done_) * 1000.0 / static_cast<double>(elapsed);
}

std::optional<double> RateEstimator::EtaSeconds(uint64_t remaining) const {
  auto rate = PerSecond();
  if (!rate || *rate <= 0) return std::nullopt;
  return static_cast<double>(remaining) / *rate;
}

namespace {
std::string Rate(double per_second) {
  if (per_second >= 100) return fmt::format("{:.0f}", per_second);
  if (per_second >= 10) return fmt::format("{:.1f}", per_second);
  return fmt::format("{:.2f}", per_second);
}
}  // namespace

std::string ProgressLine(const v1::Task& t, const ProgressView& view, int bar_width) {
  const v1::SubtaskCounts& c = t.counts();
  std::string line = StateText(t.state());
  if (bar_width > 0) {
    long double frac = c.total() == 0 ? 0.0L
                                      : static_cast<long double>(c.succeeded()) /
                                            static_cast<long double>(c.total());
    int filled = static_cast<int>(std::floor(frac * bar_width));
    filled = std::clamp(filled, 0, bar_width);
    line += Cat(" [", std::string(filled, '#'), std::string(bar_width - filled, '.'), "]");
  }
  line += Cat("  ", ProgressText(c.succeeded(), c.total()), " slices");
  if (c.items_total() > 0) line += Cat("  items ", c.items_done(), "/", c.items_total());
  line += Cat("  preparing ", c.preparing(), " running ", c.running(), " terminating ",
              c.terminating(), " error ", c.error());
  if (c.cancelled() > 0) line += Cat(" cancelled ", c.cancelled());
  const char* unit = c.items_total() > 0 ? "items/s" : "slices/s";
  if (view.per_second) line += Cat("  ", Rate(*view.per_second), " ", unit);
  if (view.eta_seconds) {
    line += Cat("  ETA ", FormatDurationMs(static_cast<int64_t>(*view.eta_seconds * 1000.0)));
  }
  // Why a task waits (no live worker runs its kind, ...) or how it ends.
  if ((t.state() == v1::PREPARING || t.state() == v1::TERMINATING) && !t.reason().empty()) {
    line += Cat("  (", t.reason(), ")");
  }
  return line;
}

std::string FinalLine(const v1::Task& t) {
  std::string line = Cat(t.id(), " ", StateText(t.state()));
  if (t.outcome() != v1::OUTCOME_UNSPECIFIED) line += Cat(" ", OutcomeText(t.outcome()));
  if (!t.reason().empty()) line += Cat(": ", t.reason());
  return line;
}

std::optional<int> ExitCodeFor(const v1::Task& t) {
  switch (t.state()) {
    case v1::ERROR:
      return kExitFailed;
    case v1::TERMINATED:
      if (t.outcome() == v1::CANCELLED) return kExitCancelled;
      if (t.outcome() == v1::FAILED) return kExitFailed;
      return kExitOk;
    default:
      return std::nullopt;
  }
}

}  // namespace orchard::cli
