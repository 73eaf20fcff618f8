// The task janitor: ends the tasks that must end but that no reconciler can
// end, so that a deadline and a cancel take effect whatever workers exist.
//
// A task's reconciler runs on a worker that offers its kind. When no live
// worker offers it (a typo such as 'summ', or every such worker gone), a
// cancelled task would stay Terminating and a task past its deadline would
// never notice. Each pass, the janitor reads the tasks no reconciler can move
// (Store::UnreconciledTasks: a kind no live worker runs, no reconcile lease
// held, nothing Running or Terminating) and ends those that must end:
//
//   Preparing/Running past the deadline  DeadlineExceeded -> Terminating
//   Terminating                          StopSubtasks (Preparing ones end
//                                        CANCELLED), then Finalized or
//                                        FinalizedFailed as lifecycle::EndAfter
//                                        says for the event that made it
//                                        Terminating
//
// Every step is an ordinary Store::TransitionTask with actor "server" and the
// version it read (compare-and-set: a worker that joins meanwhile and moves
// the task first wins, and the janitor's step is refused with ABORTED). The
// server cannot reduce (that needs the kind's handler), so a task it ends has
// no result, and its reason says so.
//
// With several servers on one database, two janitors may try the same task:
// the version check lets one step through and refuses the other, so the
// outcome is the same as with one.
//
// Thread-safety: RunOnce from one thread at a time (the sweeper's).
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "server/hub.h"
#include "server/store/store.h"

namespace orchard::server {

class TaskJanitor {
 public:
  // alive_window_ms: a worker heard from within it is live (the lease TTL).
  TaskJanitor(store::Store* store, Hub* hub, const Clock* clock, int64_t alive_window_ms)
      : store_(store), hub_(hub), clock_(clock), alive_window_ms_(alive_window_ms) {}

  // One pass over at most `max_tasks` unreconciled tasks, resuming where the
  // previous pass stopped. Returns how many tasks it ended.
  int RunOnce(uint32_t max_tasks = 1000);

 private:
  // Ends one task if it must end; true when it did.
  bool EndIfDue(const orchard::v1::Task& task, int64_t now_ms);
  lifecycle::TaskEvent TerminatingCause(const std::string& task_id);

  store::Store* store_;
  Hub* hub_;
  const Clock* clock_;
  int64_t alive_window_ms_;
  std::string after_id_;  // where the next pass resumes ("" = from the start)
};

}  // namespace orchard::server
