// Counting and logging of committed transitions; see commit_reporter.h.
#include "server/ops/commit_reporter.h"

#include "common/lifecycle/state.h"
#include "common/log.h"
#include "common/strcat.h"

namespace orchard::server {

namespace {

std::string_view StateLabel(int s) {
  if (s < static_cast<int>(State::kPreparing) || s > static_cast<int>(State::kTerminated)) {
    return "None";
  }
  return StateName(static_cast<State>(s));
}

// The actor is a worker id unless a client or the server itself acted.
bool IsWorker(const std::string& actor) {
  return !actor.empty() && actor != "client" && actor != "server";
}

}  // namespace

void CommitReporter::Count(bool subtask, int from, int to, const std::string& event, uint64_t n) {
  const double v = static_cast<double>(n);
  if (from == 0) {
    if (!subtask) metrics_->tasks_created.With({}).Inc(v);
    return;
  }
  metrics_->transitions
      .With({subtask ? "subtask" : "task", std::string(StateLabel(from)),
             std::string(StateLabel(to))})
      .Inc(v);
  if (!subtask) return;
  const bool expired = event.rfind("LeaseExpired", 0) == 0;
  if (expired) metrics_->lease_expiries.With({}).Inc(v);
  if (from == static_cast<int>(State::kRunning) && to == static_cast<int>(State::kPreparing)) {
    metrics_->retries.With({expired ? "lease_expired" : "failed"}).Inc(v);
  }
}

void CommitReporter::OnCommitted(const std::vector<store::CommitNote>& commits,
                                 const std::vector<store::TransitionNote>& transitions,
                                 const std::vector<store::TransitionCount>& more) {
  for (const store::CommitNote& c : commits) {
    metrics_->commit_seconds.With({}).Observe(c.seconds);
    metrics_->commit_batch.With({}).Observe(static_cast<double>(c.ops));
  }
  for (const store::TransitionNote& t : transitions) {
    const bool subtask = t.subtask_index >= 0;
    Count(subtask, t.from, t.to, t.event, 1);
    if (t.from == 0) continue;  // creation: the service logs the submit with its spec
    const std::string msg =
        Cat(subtask ? "subtask " : "task ", StateLabel(t.from), " -> ", StateLabel(t.to), " (",
            t.event, ")");
    const std::string worker = IsWorker(t.actor) ? t.actor : std::string();
    if (subtask) {
      log::Event(spdlog::level::info, msg,
                 {{"task", t.task_id},
                  {"subtask", t.subtask_index},
                  {"attempt", t.attempt},
                  {"worker", worker},
                  {"actor", t.actor},
                  {"event", t.event},
                  {"reason", t.reason}});
    } else {
      log::Event(spdlog::level::info, msg,
                 {{"task", t.task_id},
                  {"worker", worker},
                  {"actor", t.actor},
                  {"event", t.event},
                  {"reason", t.reason}});
    }
  }
  for (const store::TransitionCount& m : more) {
    Count(m.subtask, m.from, m.to, m.event, m.count);
    log::Event(spdlog::level::info,
               Cat(m.count, " more ", m.subtask ? "subtasks " : "tasks ", StateLabel(m.from),
                   " -> ", StateLabel(m.to), " (", m.event, ")"),
               {{"task", m.task_id}, {"event", m.event}, {"count", m.count}});
  }
}

}  // namespace orchard::server
