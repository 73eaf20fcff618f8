// The invariant checker (see invariants.h): one read-only connection, one read
// transaction (a consistent snapshot of a live WAL database), one task at a
// time so memory stays bounded by the largest task.
//
// Thread-safety: CheckDatabase is reentrant; it shares nothing.
#include "server/store/invariants.h"

#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "common/lifecycle/subtask.h"
#include "common/lifecycle/task.h"
#include "common/strcat.h"
#include "common/fold.h"

namespace orchard::store {

namespace {

using json = nlohmann::json;

// A prepared statement over the raw C API; only this file uses it, for
// reads, so the store's own statement cache is not needed.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status status() const {
    return rc_ == SQLITE_OK ? absl::OkStatus()
                            : absl::InternalError(Cat("sqlite: ", sqlite3_errmsg(db_)));
  }
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // true: a row; false: done (or an error, in status()).
  bool Step() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW) return false;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      rc_ = SQLITE_ROW;
      return true;
    }
    rc_ = rc == SQLITE_DONE ? SQLITE_OK : rc;
    return false;
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    rc_ = SQLITE_OK;
  }
  int64_t Int(int c) const { return sqlite3_column_int64(stmt_, c); }
  std::string Text(int c) const {
    const unsigned char* p = sqlite3_column_text(stmt_, c);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

struct TaskData {
  std::string id, kind, reason, result_json;
  State state = State::kPreparing;
  Outcome outcome = Outcome::kNone;
  int64_t version = 0, generation = 0;
  int64_t n[6] = {};  // by State
  int64_t total = 0, succeeded = 0, cancelled = 0, items_done = 0, items_total = 0;
};

struct SubtaskData {
  int64_t index = 0;
  uint64_t begin = 0, end = 0;
  State state = State::kPreparing;
  Outcome outcome = Outcome::kNone;
  int64_t attempt = 0;
  std::string result_json;
};

// Where a subtask's history has taken it so far.
struct Walk {
  State state = State::kPreparing;
  Outcome outcome = Outcome::kNone;
  int64_t attempt = 0;
  int succeeded_rows = 0;
  bool broken = false;  // one history violation per object is enough
};

struct HistoryEntry {
  int64_t id = 0, subtask_index = -1, from = 0, to = 0, version = 0, attempt = 0;
  std::string event;
};

bool ValidState(int64_t v) { return v >= 1 && v <= 5; }

std::string Name(int64_t state) {
  return ValidState(state) ? std::string(StateName(static_cast<State>(state)))
                           : Cat("state#", state);
}

class Checker {
 public:
  Checker(size_t max_violations, InvariantReport& report)
      : max_(max_violations), report_(report) {}

  void Add(std::string_view check, std::string_view object, std::string message) {
    ++total_violations;
    if (report_.violations.size() < max_) {
      report_.violations.push_back({std::string(check), std::string(object), std::move(message)});
    }
  }

  void CheckTask(const TaskData& t, const std::vector<SubtaskData>& subtasks,
                 const std::vector<HistoryEntry>& history) {
    std::map<int64_t, const SubtaskData*> by_index;
    for (const SubtaskData& s : subtasks) by_index[s.index] = &s;
    const std::optional<std::string> last_event = CheckTaskHistory(t, history);
    CheckSubtaskHistories(t, by_index, history);
    CheckCounters(t, subtasks);
    CheckResult(t, subtasks, last_event);
  }

  uint64_t total_violations = 0;

 private:
  // The task's own rows; returns the event of its last row.
  std::optional<std::string> CheckTaskHistory(const TaskData& t,
                                              const std::vector<HistoryEntry>& history) {
    std::optional<std::string> last_event;
    int64_t state = 0, version = 0, generation = 0;
    std::map<int64_t, int> planned_per_generation;
    bool first = true;
    for (const HistoryEntry& h : history) {
      if (h.subtask_index != -1) continue;
      const std::string row = Cat("history row ", h.id, " (", Name(h.from), " -> ", Name(h.to),
                                  ", ", h.event, ")");
      if (first) {
        first = false;
        if (h.from != 0 || h.to != static_cast<int64_t>(State::kPreparing) ||
            h.event != "Created" || h.version != 1) {
          Add("history", t.id,
              Cat(row, ": the first row must be the creation row (0 -> Preparing, Created, "
                       "version 1), version is ", h.version));
          return std::nullopt;
        }
        state = h.to;
        version = 1;
        last_event = h.event;
        continue;
      }
      if (h.from != state) {
        Add("history", t.id, Cat(row, ": starts from ", Name(h.from), " but the previous row "
                                 "ended in ", Name(state)));
        return std::nullopt;
      }
      std::optional<lifecycle::TaskEvent> event = lifecycle::ParseTaskEvent(h.event);
      if (!event) {
        Add("history", t.id, Cat(row, ": unknown task event '", h.event, "'"));
        return std::nullopt;
      }
      absl::StatusOr<State> to =
          ValidState(h.from) ? lifecycle::NextTaskState(static_cast<State>(h.from), *event)
                             : absl::StatusOr<State>(absl::InvalidArgumentError("bad state"));
      if (!to.ok()) {
        Add("history", t.id, Cat(row, ": the task table has no such edge"));
        return std::nullopt;
      }
      if (static_cast<int64_t>(*to) != h.to) {
        Add("history", t.id,
            Cat(row, ": the table takes ", h.event, " from ", Name(h.from), " to ",
                StateName(*to)));
        return std::nullopt;
      }
      if (h.version != version + 1) {
        Add("history", t.id, Cat(row, ": version ", h.version, " after version ", version));
        return std::nullopt;
      }
      if (*event == lifecycle::TaskEvent::kRetryRequested) ++generation;
      if (h.attempt != generation) {
        Add("history", t.id, Cat(row, ": generation ", h.attempt, ", expected ", generation));
        return std::nullopt;
      }
      if (*event == lifecycle::TaskEvent::kPlanned && ++planned_per_generation[generation] > 1) {
        Add("history", t.id, Cat(row, ": a second Planned row in generation ", generation));
      }
      state = h.to;
      version = h.version;
      last_event = h.event;
    }
    if (first) {
      Add("history", t.id, "no history rows (the creation row is missing)");
      return std::nullopt;
    }
    if (state != static_cast<int64_t>(t.state)) {
      Add("state", t.id, Cat("task is ", Name(static_cast<int64_t>(t.state)),
                             " but its history ends in ", Name(state)));
    }
    if (version != t.version) {
      Add("state", t.id, Cat("task version is ", t.version, " but its history ends at version ",
                             version));
    }
    if (generation != t.generation) {
      Add("state", t.id, Cat("task generation is ", t.generation, " but its history has ",
                             generation, " retries"));
    }
    const bool outcome_ok =
        t.state == State::kTerminated
            ? (t.outcome == Outcome::kSucceeded || t.outcome == Outcome::kCancelled)
        : t.state == State::kError ? t.outcome == Outcome::kFailed
                                   : t.outcome == Outcome::kNone;
    if (!outcome_ok) {
      Add("state", t.id, Cat("task is ", StateName(t.state), " with outcome '",
                             OutcomeName(t.outcome), "'"));
    }
    return last_event;
  }

  void CheckSubtaskHistories(const TaskData& t, const std::map<int64_t, const SubtaskData*>& by_index,
                             const std::vector<HistoryEntry>& history) {
    std::map<int64_t, Walk> walks;
    for (const HistoryEntry& h : history) {
      if (h.subtask_index == -1) continue;
      const std::string object = Cat(t.id, "/", h.subtask_index);
      if (!by_index.contains(h.subtask_index)) {
        Add("history", object, Cat("history row ", h.id, " names a subtask that does not exist"));
        continue;
      }
      Walk& w = walks[h.subtask_index];
      if (w.broken) continue;
      const std::string row = Cat("history row ", h.id, " (", Name(h.from), " -> ", Name(h.to),
                                  ", ", h.event, ")");
      auto fail = [&](std::string why) {
        Add("history", object, Cat(row, ": ", why));
        w.broken = true;
      };
      if (h.from != static_cast<int64_t>(w.state)) {
        fail(Cat("starts from ", Name(h.from), " but the subtask was ", StateName(w.state)));
        continue;
      }
      std::optional<lifecycle::SubtaskEvent> event = lifecycle::ParseSubtaskEvent(h.event);
      if (!event) {
        fail(Cat("unknown subtask event '", h.event, "'"));
        continue;
      }
      absl::StatusOr<lifecycle::SubtaskEdge> edge = lifecycle::NextSubtask(w.state, *event);
      if (!edge.ok()) {
        fail("the subtask table has no such edge");
        continue;
      }
      if (static_cast<int64_t>(edge->to) != h.to) {
        fail(Cat("the table takes ", h.event, " from ", StateName(w.state), " to ",
                 StateName(edge->to)));
        continue;
      }
      // The store's guard on the Terminated -> Preparing edge: only a
      // CANCELLED subtask is retried, never a committed result.
      if (*event == lifecycle::SubtaskEvent::kRetryRequested && w.state == State::kTerminated &&
          w.outcome != Outcome::kCancelled) {
        // Reported, and the walk goes on: a second Succeeded row after it
        // is the double result this would allow.
        Add("results", object, Cat(row, ": retries a Terminated subtask whose outcome is ",
                                   OutcomeName(w.outcome), " (only CANCELLED ones may be "
                                   "retried)"));
      }
      const int64_t attempt = *event == lifecycle::SubtaskEvent::kLeased ? w.attempt + 1
                              : *event == lifecycle::SubtaskEvent::kRetryRequested ? 0
                                                                                   : w.attempt;
      if (h.attempt != attempt) {
        fail(Cat("attempt ", h.attempt, ", expected ", attempt));
        continue;
      }
      if (*event == lifecycle::SubtaskEvent::kSucceeded && ++w.succeeded_rows > 1) {
        Add("results", object, Cat(row, ": a second committed result (Succeeded row)"));
      }
      w.state = edge->to;
      w.outcome = edge->outcome;
      w.attempt = attempt;
    }
    for (const auto& [index, s] : by_index) {
      const std::string object = Cat(t.id, "/", index);
      const Walk w = walks.contains(index) ? walks[index] : Walk{};
      if (w.broken) continue;
      if (w.state != s->state || w.outcome != s->outcome) {
        Add("state", object, Cat("subtask is ", StateName(s->state), "/", OutcomeName(s->outcome),
                                 " but its history ends in ", StateName(w.state), "/",
                                 OutcomeName(w.outcome)));
      }
      if (w.attempt != s->attempt) {
        Add("state", object, Cat("subtask attempt is ", s->attempt, " but its history says ",
                                 w.attempt));
      }
      const bool committed = s->state == State::kTerminated && s->outcome == Outcome::kSucceeded;
      if (committed != (w.succeeded_rows == 1) && w.succeeded_rows <= 1) {
        Add("results", object,
            Cat("subtask is ", StateName(s->state), "/", OutcomeName(s->outcome), " with ",
                w.succeeded_rows, " Succeeded rows in its history"));
      }
      if (committed && s->result_json.empty()) {
        Add("results", object, "SUCCEEDED without a result");
      }
      if (IsTerminal(t.state) && (s->state == State::kRunning || s->state == State::kTerminating)) {
        Add("state", object, Cat("still ", StateName(s->state), " though its task is ",
                                 StateName(t.state)));
      }
    }
  }

  void CheckCounters(const TaskData& t, const std::vector<SubtaskData>& subtasks) {
    TaskData real;
    for (const SubtaskData& s : subtasks) {
      ++real.total;
      ++real.n[static_cast<int>(s.state)];
      real.items_total += static_cast<int64_t>(s.end - s.begin);
      if (s.state == State::kTerminated && s.outcome == Outcome::kSucceeded) {
        ++real.succeeded;
        real.items_done += static_cast<int64_t>(s.end - s.begin);
      } else if (s.state == State::kTerminated && s.outcome == Outcome::kCancelled) {
        ++real.cancelled;
      }
    }
    auto same = [&](std::string_view what, int64_t stored, int64_t counted) {
      if (stored != counted) {
        Add("counters", t.id, Cat(what, " is ", stored, " but the subtasks count ", counted));
      }
    };
    same("total", t.total, real.total);
    for (State s : kAllStates) {
      same(StateKey(s), t.n[static_cast<int>(s)], real.n[static_cast<int>(s)]);
    }
    same("succeeded", t.succeeded, real.succeeded);
    same("cancelled", t.cancelled, real.cancelled);
    same("items_done", t.items_done, real.items_done);
    same("items_total", t.items_total, real.items_total);
  }

  // A finished task's result is the fold of its committed results.
  void CheckResult(const TaskData& t, const std::vector<SubtaskData>& subtasks,
                   const std::optional<std::string>& last_event) {
    const bool finalized =
        (t.state == State::kTerminated || t.state == State::kError) && last_event &&
        (*last_event == "Finalized" || *last_event == "FinalizedFailed");
    if (!finalized) {
      if (t.state == State::kError && last_event && *last_event == "Invalid" &&
          !t.result_json.empty()) {
        Add("reduce", t.id, "an Invalid task has a result");
      }
      return;
    }
    // Only kinds whose Finish() is the identity: a result is then exactly
    // the fold. Others (csv.aggregate, exec) finish with side effects the
    // checker must not repeat.
    const FoldRule* rule = BuiltinFold(t.kind);
    if (rule == nullptr) {
      ++skipped_kinds_[t.kind];
      return;
    }
    ++report_.results_checked;
    json acc = rule->init();
    absl::Status folded = absl::OkStatus();
    for (const SubtaskData& s : subtasks) {
      if (s.state != State::kTerminated || s.outcome != Outcome::kSucceeded) continue;
      json r = json::parse(s.result_json, nullptr, false);
      folded = r.is_discarded() ? absl::DataLossError(Cat("subtask ", s.index,
                                                          ": result is not JSON"))
                                : rule->fold(acc, r);
      if (!folded.ok()) break;
    }
    if (!folded.ok()) {
      // The worker could not reduce either: it stores no result.
      if (!t.result_json.empty()) {
        Add("reduce", t.id, Cat("the results do not fold (", folded.message(),
                                ") yet the task has result ", t.result_json));
      }
      return;
    }
    json stored = json::parse(t.result_json, nullptr, false);
    if (t.result_json.empty() || stored.is_discarded() || stored != acc) {
      Add("reduce", t.id, Cat("result is '", t.result_json, "' but the fold of its ",
                              t.succeeded, " committed results is ", acc.dump()));
    }
  }

 public:
  void ReportSkips() {
    for (const auto& [kind, n] : skipped_kinds_) {
      report_.skipped.push_back(Cat("reduce: ", n, " finished task(s) of kind '", kind,
                                    "' not checked: the checker reduces only noop, sum, flaky "
                                    "and sleep (a plain fold)"));
    }
  }

 private:
  size_t max_;
  InvariantReport& report_;
  std::map<std::string, uint64_t> skipped_kinds_;
};

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

}  // namespace

std::string InvariantReport::ToText() const {
  std::string out;
  for (const Violation& v : violations) out += Cat("VIOLATION ", v.check, " ", v.object, ": ",
                                                   v.message, "\n");
  for (const std::string& s : skipped) out += Cat("skipped: ", s, "\n");
  out += Cat(ok() ? "ok" : "FAILED", ": ", tasks, " tasks, ", subtasks, " subtasks, ",
             history_rows, " history rows, ", results_checked, " results checked, ",
             violation_count, " violations\n");
  return out;
}

std::string InvariantReport::ToJson() const {
  json j = {{"ok", ok()},
            {"tasks", tasks},
            {"subtasks", subtasks},
            {"history_rows", history_rows},
            {"results_checked", results_checked},
            {"violation_count", violation_count},
            {"skipped", skipped},
            {"violations", json::array()}};
  for (const Violation& v : violations) {
    j["violations"].push_back({{"check", v.check}, {"object", v.object}, {"message", v.message}});
  }
  return j.dump(2);
}

absl::StatusOr<InvariantReport> CheckDatabase(const std::string& path,
                                              const CheckOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(Cat("database ", path, " does not exist"));
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, CloseDb> db(raw);
  if (rc != SQLITE_OK) {
    return absl::UnavailableError(Cat("opening ", path, ": ", sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), 10'000);
  // One read transaction: every query below sees the same snapshot.
  if (sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return absl::UnavailableError(Cat("reading ", path, ": ", sqlite3_errmsg(db.get())));
  }
  {
    Statement q(db.get(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                          "('tasks', 'subtasks', 'history')");
    if (!q.Step() || q.Int(0) != 3) {
      return absl::FailedPreconditionError(
          Cat(path, " is not an Orchard database (", q.status().ok() ? "tables missing"
                                                                     : q.status().message(), ")"));
    }
  }

  InvariantReport report;
  Checker checker(options.max_violations, report);
  Statement tasks(db.get(),
                  "SELECT id, kind, state, outcome, reason, result_json, version, generation, "
                  "n_total, n_preparing, n_running, n_terminating, n_error, n_terminated, "
                  "n_succeeded, n_cancelled, items_done, items_total FROM tasks ORDER BY seq");
  Statement subtasks(db.get(),
                     "SELECT idx, item_begin, item_end, state, outcome, attempt, result_json "
                     "FROM subtasks WHERE task_id = ?1 ORDER BY idx");
  Statement history(db.get(),
                    "SELECT id, subtask_index, from_state, to_state, event, version, attempt "
                    "FROM history WHERE task_id = ?1 ORDER BY id");
  for (const Statement* s : {&tasks, &subtasks, &history}) {
    if (!s->status().ok()) return s->status();
  }
  while (tasks.Step()) {
    TaskData t;
    t.id = tasks.Text(0);
    t.kind = tasks.Text(1);
    const int64_t state = tasks.Int(2);
    t.outcome = static_cast<Outcome>(tasks.Int(3));
    t.reason = tasks.Text(4);
    t.result_json = tasks.Text(5);
    t.version = tasks.Int(6);
    t.generation = tasks.Int(7);
    t.total = tasks.Int(8);
    for (int i = 0; i < 5; ++i) t.n[i + 1] = tasks.Int(9 + i);
    t.succeeded = tasks.Int(14);
    t.cancelled = tasks.Int(15);
    t.items_done = tasks.Int(16);
    t.items_total = tasks.Int(17);
    ++report.tasks;
    if (!ValidState(state)) {
      checker.Add("state", t.id, Cat("task has no valid state (", state, ")"));
      continue;
    }
    t.state = static_cast<State>(state);

    std::vector<SubtaskData> subs;
    subtasks.Reset();
    subtasks.Bind(1, t.id);
    while (subtasks.Step()) {
      SubtaskData s;
      s.index = subtasks.Int(0);
      s.begin = static_cast<uint64_t>(subtasks.Int(1));
      s.end = static_cast<uint64_t>(subtasks.Int(2));
      const int64_t st = subtasks.Int(3);
      s.outcome = static_cast<Outcome>(subtasks.Int(4));
      s.attempt = subtasks.Int(5);
      s.result_json = subtasks.Text(6);
      if (!ValidState(st)) {
        checker.Add("state", Cat(t.id, "/", s.index), Cat("subtask has no valid state (", st, ")"));
        continue;
      }
      s.state = static_cast<State>(st);
      subs.push_back(std::move(s));
    }
    if (!subtasks.status().ok()) return subtasks.status();
    report.subtasks += subs.size();

    std::vector<HistoryEntry> rows;
    history.Reset();
    history.Bind(1, t.id);
    while (history.Step()) {
      rows.push_back(HistoryEntry{history.Int(0), history.Int(1), history.Int(2), history.Int(3),
                                  history.Int(5), history.Int(6), history.Text(4)});
    }
    if (!history.status().ok()) return history.status();
    report.history_rows += rows.size();
    checker.CheckTask(t, subs, rows);
  }
  if (!tasks.status().ok()) return tasks.status();
  {
    // History rows of tasks that do not exist.
    Statement q(db.get(), "SELECT count(*), min(task_id) FROM history WHERE task_id NOT IN "
                          "(SELECT id FROM tasks)");
    if (q.Step() && q.Int(0) > 0) {
      checker.Add("history", q.Text(1), Cat(q.Int(0), " history rows name tasks that do not exist"));
    }
  }
  checker.ReportSkips();
  report.violation_count = checker.total_violations;
  sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr);
  return report;
}

}  // namespace orchard::store
