// What the store tells the rest of the process after each commit, for
// metrics and logs: every committed state transition (one per history row,
// including the rows written set-wise, e.g. when a cancel stops a million
// waiting subtasks at once) and each COMMIT's latency and batch size.
//
// The SQLite store reports from its completion thread (writer.cc), in commit
// order, after the callers of the batch were answered, and only what was committed: an
// operation rolled back to its savepoint, or a transaction whose COMMIT
// failed, reports nothing. Counts are therefore exact for this process; a
// second server on a shared database (PostgreSQL, later) reports its own.
//
// Thread-safety: SetCommitObserver() may be called from any thread; the
// observer's methods are called from the store's completion thread(s) and must be
// quick and must not call the store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orchard::store {

// One committed transition: a history row. subtask_index is -1 for the task's
// own transitions; from/to are the proto State numbers (from 0: the task was
// created).
struct TransitionNote {
  std::string task_id;
  int64_t subtask_index = -1;
  int from = 0, to = 0;
  std::string event, reason, actor;
  uint32_t attempt = 0;
  int64_t time_ms = 0;
};

// Transitions past the detail cap of one transaction, counted per edge (the
// detail would cost memory in proportion to a huge set-wise write).
struct TransitionCount {
  std::string task_id;
  bool subtask = true;
  int from = 0, to = 0;
  std::string event;
  uint64_t count = 0;
};

struct CommitNote {
  double seconds = 0;  // the COMMIT statement alone (WAL append, fsync when synchronous=full)
  size_t ops = 0;      // the operations that ran in its transaction (the group-commit batch)
};

class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  // After one writer batch: its commits, then its transitions in commit order.
  virtual void OnCommitted(const std::vector<CommitNote>& commits,
                           const std::vector<TransitionNote>& transitions,
                           const std::vector<TransitionCount>& more) = 0;
};

// Process-wide, like a default metrics registry: the observer every SQLite
// store of this process reports to (nullptr: none). Set it before opening the
// store; the observer must outlive every store.
void SetCommitObserver(CommitObserver* observer);

// At most this many transitions of one transaction are reported one by one.
inline constexpr size_t kTransitionDetailCap = 20'000;

}  // namespace orchard::store
