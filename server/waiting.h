// Why a task waits: the text that `get`, `list`, `watch`, the JSON API and
// the dashboard show in a task's reason while it waits for a worker, e.g.
//   "no live worker runs kind 'summ'; kinds offered now: noop, sleep, sum"
// It is computed when a task is read, never stored: it says what holds now.
//
// The live kinds are read from the store at most every 500 ms and shared by
// every caller, so annotating a page of tasks costs no extra read.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "server/store/store.h"

namespace orchard::server {

class WaitExplainer {
 public:
  // alive_window_ms: a worker heard from within it is live (the lease TTL).
  WaitExplainer(store::Store* store, const Clock* clock, int64_t alive_window_ms)
      : store_(store), clock_(clock), alive_window_ms_(alive_window_ms) {}

  // Sets the reason of a task that waits with none stored: Preparing (no
  // live worker runs its kind, or none has planned it yet), or Terminating
  // while no live worker runs its kind (the server ends it: janitor.h).
  void Annotate(orchard::v1::Task& task);

  // Drops the cache (a worker registered: it may run kinds that waited).
  void Invalidate() {
    std::lock_guard lock(mu_);
    live_kinds_at_ = -1;
  }

  // The kinds some live worker runs now, sorted (cached, as above).
  std::vector<std::string> LiveKinds();

 private:
  std::set<std::string> Refresh();  // REQUIRES: mu_ held

  store::Store* store_;
  const Clock* clock_;
  int64_t alive_window_ms_;
  std::mutex mu_;
  std::set<std::string> live_kinds_;
  int64_t live_kinds_at_ = -1;
};

}  // namespace orchard::server
