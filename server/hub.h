// The Hub wakes long polls (Acquire, WaitTask, WatchTasks) when the store
// changes. It is a counter ("generation") bumped after every committed write,
// and a set of waiters, each woken by the next bump or by its deadline.
//
// A waiter passes the generation it read before it looked at the store; if a
// bump happened since, it is woken at once, so no change can slip between the
// look and the wait. Waiters are woken on the hub's own thread and must not
// block there (they post their work elsewhere).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace orchard::server {

class Hub {
 public:
  Hub();
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  uint64_t generation() const;
  // After a committed write: wakes every waiter.
  void Notify();
  // Calls `wake(true)` after the next Notify() past `seen_generation` (at
  // once if one already happened), or `wake(false)` at `deadline_ms` (system
  // clock). Called exactly once, on the hub's thread.
  void Wait(uint64_t seen_generation, int64_t deadline_ms, std::function<void(bool)> wake);
  // Calls `fn` on the hub's thread after `delay_ms`.
  void After(int64_t delay_ms, std::function<void()> fn);

  // Wakes every waiter with false and stops the thread.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::server
