// CommitReporter: what the server does with the store's commit notes
// (store/observer.h). It counts transitions, retries, lease expiries and
// commit latency/batch size into ServerMetrics, and logs every committed
// state transition once, at info, with its fields (task, subtask, attempt,
// worker, actor, event, reason): the store is the one place every transition
// of every writer (workers, clients, the lease sweeper) passes through, so
// the log is complete and has no duplicates from retried RPCs.
//
// A set-wise write past store::kTransitionDetailCap transitions in one
// transaction (cancelling a huge task) is logged as one summary line per
// edge, with its count; the metrics stay exact.
//
// Thread-safety: OnCommitted runs on the store's completion thread; metrics and
// spdlog are thread-safe.
#pragma once

#include "server/ops/metrics.h"
#include "server/store/observer.h"

namespace orchard::server {

class CommitReporter final : public store::CommitObserver {
 public:
  explicit CommitReporter(ServerMetrics* metrics) : metrics_(metrics) {}
  void OnCommitted(const std::vector<store::CommitNote>& commits,
                   const std::vector<store::TransitionNote>& transitions,
                   const std::vector<store::TransitionCount>& more) override;

 private:
  void Count(bool subtask, int from, int to, const std::string& event, uint64_t n);
  ServerMetrics* metrics_;
};

}  // namespace orchard::server
