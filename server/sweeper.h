// The lease sweeper: a thread that, a few times a second, asks the store to
// expire leases whose time passed by the server's clock (the only clock that
// decides expiry) and wakes long polls when it did. Also marks silent workers
// dead, and about once a second runs the task janitor (janitor.h), which ends
// the cancelled and overdue tasks that no worker can reconcile.
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "server/hub.h"
#include "server/janitor.h"
#include "server/store/store.h"

namespace orchard::server {

class Sweeper {
 public:
  Sweeper(store::Store* store, Hub* hub, const Clock* clock, int64_t lease_ttl_ms)
      : store_(store),
        hub_(hub),
        clock_(clock),
        ttl_ms_(lease_ttl_ms),
        janitor_(store, hub, clock, lease_ttl_ms) {}
  ~Sweeper() { Stop(); }

  void Start();
  void Stop();
  // One pass; public for tests.
  void SweepOnce();

 private:
  store::Store* store_;
  Hub* hub_;
  const Clock* clock_;
  int64_t ttl_ms_;
  TaskJanitor janitor_;
  int64_t janitor_at_ms_ = 0;  // when the janitor last ran
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace orchard::server
