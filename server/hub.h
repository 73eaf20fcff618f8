// The Hub wakes long polls (Acquire, WaitTask, WatchTasks) when the store
// changes, and only those a change concerns: a waiter states its interest —
// one task, new work to lease, or anything — and a writer says which task it
// changed and whether that may have made work to lease. With hundreds of
// reconcilers parked on their own tasks, a commit wakes one of them, not all.
//
// Each interest has a generation (a sum of monotonic counters). A waiter
// reads it before it looks at the store and passes it to Wait(); if it moved
// since, the waiter is woken at once, so no change slips between the look
// and the wait. Tasks share 4096 counters by hash: a collision costs a
// spurious wake-up, never a missed one.
//
// There is no hand-off to a hub thread: a waiter is parked under a mutex on
// the caller's thread, and woken on the notifier's (or inside Wait() when
// its generation is stale already). Only deadlines and After() run on the
// hub's timer thread, which sleeps until the earliest one. Wake callbacks
// run with no lock held and must not block (they post their work elsewhere).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace orchard::server {

// What a write may have made leasable: a task to reconcile (a new task, a
// cancel, a freed reconcile lease) or subtasks to run (a plan, a retry, a
// freed parallelism slot).
enum class NewWork { kNone = 0, kTasks = 1, kSubtasks = 2, kBoth = 3 };

// What a waiter waits for.
struct Interest {
  enum Kind { kAny, kWork, kTaskWork, kSubtaskWork, kTask };
  Kind kind = kAny;
  std::string task_id;  // with kTask

  static Interest Any() { return {kAny, {}}; }
  // New work of either kind, of tasks only, of subtasks only: an Acquire
  // parks on what it asked for, so a new task does not wake the pollers
  // waiting for subtasks.
  static Interest Work() { return {kWork, {}}; }
  static Interest TaskWork() { return {kTaskWork, {}}; }
  static Interest SubtaskWork() { return {kSubtaskWork, {}}; }
  static Interest Task(std::string id) { return {kTask, std::move(id)}; }
};

class Hub {
 public:
  Hub();
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  uint64_t generation(const Interest& interest) const;
  // After a committed write whose reach is unknown (expiries, workers
  // joining or leaving, shutdown): wakes every waiter.
  void Notify();
  // After a committed write to one task: wakes that task's waiters, the
  // kAny ones, and those waiting for the kind of work it made leasable.
  void NotifyTask(const std::string& task_id, NewWork new_work);
  // Calls `wake(true)` after the next notification for `interest` past
  // `seen_generation` (at once if one already happened), or `wake(false)` at
  // `deadline_ms` (system clock). Called exactly once: on the notifying
  // thread, the timer thread, or this one when the generation moved already.
  void Wait(const Interest& interest, uint64_t seen_generation, int64_t deadline_ms,
            std::function<void(bool)> wake);
  // Calls `fn` on the hub's timer thread after `delay_ms`.
  void After(int64_t delay_ms, std::function<void()> fn);

  // Wakes every waiter with false, drops pending After()s and stops the
  // timer thread.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::server
