#include "server/hub.h"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"

namespace orchard::server {

namespace {
constexpr size_t kTaskCounters = 4096;
using Steady = std::chrono::steady_clock;
}  // namespace

struct Hub::Impl {
  // Generations: any = every notification; everything = Notify();
  // task_work / subtask_work = NotifyTask with that kind of new work;
  // task[h] = NotifyTask of a task hashing to h.
  std::atomic<uint64_t> any{0}, everything{0}, task_work{0}, subtask_work{0};
  std::array<std::atomic<uint64_t>, kTaskCounters> task{};

  static size_t Slot(const std::string& id) { return std::hash<std::string>{}(id) % kTaskCounters; }

  uint64_t Generation(const Interest& i) const {
    switch (i.kind) {
      case Interest::kAny:
        return any.load();
      case Interest::kWork:
        return everything.load() + task_work.load() + subtask_work.load();
      case Interest::kTaskWork:
        return everything.load() + task_work.load();
      case Interest::kSubtaskWork:
        return everything.load() + subtask_work.load();
      case Interest::kTask:
        return everything.load() + task[Slot(i.task_id)].load();
    }
    return 0;
  }

  struct Waiter;
  using Waiters = std::list<std::shared_ptr<Waiter>>;
  using Deadlines = std::multimap<Steady::time_point, std::shared_ptr<Waiter>>;
  struct Waiter {
    std::function<void(bool)> wake;
    Waiters* home = nullptr;  // the list it is parked in
    Waiters::iterator at;
    Deadlines::iterator deadline;
    std::string task_id;  // for kTask: its key in by_task
  };
  using Wakes = std::vector<std::function<void(bool)>>;

  // Everything below is guarded by mu. Waiters are parked and woken under
  // it; their callbacks run after it is released.
  std::mutex mu;
  bool stopped = false;
  Waiters any_waiters, work_waiters, task_work_waiters, subtask_work_waiters;
  std::unordered_map<std::string, Waiters> by_task;
  Deadlines deadlines;
  std::multimap<Steady::time_point, std::function<void()>> afters;
  std::condition_variable timer_cv;  // the earliest deadline moved earlier, or stop
  std::thread timer_thread;

  Steady::time_point Earliest() const {
    Steady::time_point t = Steady::time_point::max();
    if (!deadlines.empty()) t = deadlines.begin()->first;
    if (!afters.empty()) t = std::min(t, afters.begin()->first);
    return t;
  }

  // Takes the waiter out of its list and the deadlines; returns its callback.
  std::function<void(bool)> Take(std::shared_ptr<Waiter> w) {
    Waiters* home = w->home;
    w->home = nullptr;
    deadlines.erase(w->deadline);
    auto fn = std::move(w->wake);
    home->erase(w->at);
    return fn;
  }

  void TakeAll(Waiters& list, Wakes& out) {
    while (!list.empty()) out.push_back(Take(list.front()));
  }

  void TakeTask(const std::string& id, Wakes& out) {
    auto it = by_task.find(id);
    if (it == by_task.end()) return;
    TakeAll(it->second, out);
    by_task.erase(it);
  }

  void TakeEveryone(Wakes& out) {
    TakeAll(any_waiters, out);
    TakeAll(work_waiters, out);
    TakeAll(task_work_waiters, out);
    TakeAll(subtask_work_waiters, out);
    for (auto& [id, list] : by_task) TakeAll(list, out);
    by_task.clear();
  }

  static void Call(Wakes& wakes, bool woken) {
    for (auto& fn : wakes) fn(woken);
  }

  // Fires waiters whose deadline passed and After() callbacks that are due.
  void TimerLoop() {
    std::unique_lock lock(mu);
    while (!stopped) {
      const Steady::time_point next = Earliest();
      if (next == Steady::time_point::max()) {
        timer_cv.wait(lock);
      } else {
        timer_cv.wait_until(lock, next);
      }
      if (stopped) break;
      const Steady::time_point now = Steady::now();
      Wakes expired;
      while (!deadlines.empty() && deadlines.begin()->first <= now) {
        std::shared_ptr<Waiter> w = deadlines.begin()->second;
        expired.push_back(Take(w));
        if (!w->task_id.empty()) {
          auto it = by_task.find(w->task_id);
          if (it != by_task.end() && it->second.empty()) by_task.erase(it);
        }
      }
      std::vector<std::function<void()>> due;
      while (!afters.empty() && afters.begin()->first <= now) {
        due.push_back(std::move(afters.begin()->second));
        afters.erase(afters.begin());
      }
      lock.unlock();
      Call(expired, false);
      for (auto& fn : due) fn();
      lock.lock();
    }
  }
};

Hub::Hub() : impl_(std::make_unique<Impl>()) {
  impl_->timer_thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "hub-timer");
    impl_->TimerLoop();
  });
}

Hub::~Hub() { Shutdown(); }

uint64_t Hub::generation(const Interest& interest) const { return impl_->Generation(interest); }

void Hub::Notify() {
  impl_->any.fetch_add(1);
  impl_->everything.fetch_add(1);
  Impl::Wakes wakes;
  {
    std::lock_guard lock(impl_->mu);
    impl_->TakeEveryone(wakes);
  }
  Impl::Call(wakes, true);
}

void Hub::NotifyTask(const std::string& task_id, NewWork new_work) {
  const bool tasks = new_work == NewWork::kTasks || new_work == NewWork::kBoth;
  const bool subtasks = new_work == NewWork::kSubtasks || new_work == NewWork::kBoth;
  // Counters first, then the waiters: a waiter that read the old generation
  // is either parked already (and taken here) or parks after this and sees
  // the new generation under the lock.
  impl_->task[Impl::Slot(task_id)].fetch_add(1);
  if (tasks) impl_->task_work.fetch_add(1);
  if (subtasks) impl_->subtask_work.fetch_add(1);
  impl_->any.fetch_add(1);
  Impl::Wakes wakes;
  {
    std::lock_guard lock(impl_->mu);
    impl_->TakeAll(impl_->any_waiters, wakes);
    if (tasks || subtasks) impl_->TakeAll(impl_->work_waiters, wakes);
    if (tasks) impl_->TakeAll(impl_->task_work_waiters, wakes);
    if (subtasks) impl_->TakeAll(impl_->subtask_work_waiters, wakes);
    impl_->TakeTask(task_id, wakes);
  }
  Impl::Call(wakes, true);
}

void Hub::Wait(const Interest& interest, uint64_t seen_generation, int64_t deadline_ms,
               std::function<void(bool)> wake) {
  bool woken = false;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopped) {
      woken = impl_->Generation(interest) != seen_generation;
      if (!woken) {
        auto w = std::make_shared<Impl::Waiter>();
        w->wake = std::move(wake);
        switch (interest.kind) {
          case Interest::kAny:
            w->home = &impl_->any_waiters;
            break;
          case Interest::kWork:
            w->home = &impl_->work_waiters;
            break;
          case Interest::kTaskWork:
            w->home = &impl_->task_work_waiters;
            break;
          case Interest::kSubtaskWork:
            w->home = &impl_->subtask_work_waiters;
            break;
          case Interest::kTask:
            w->task_id = interest.task_id;
            w->home = &impl_->by_task[interest.task_id];
            break;
        }
        w->at = w->home->insert(w->home->end(), w);
        const int64_t delay = std::max<int64_t>(deadline_ms - SystemClock::Get()->NowMs(), 0);
        const Steady::time_point at = Steady::now() + std::chrono::milliseconds(delay);
        const bool earliest = at < impl_->Earliest();
        w->deadline = impl_->deadlines.emplace(at, w);
        // The timer thread sleeps until the earliest deadline: wake it only
        // when this one comes first (long polls rarely do).
        if (earliest) impl_->timer_cv.notify_one();
        return;
      }
    }
  }
  wake(woken);
}

void Hub::After(int64_t delay_ms, std::function<void()> fn) {
  std::lock_guard lock(impl_->mu);
  const Steady::time_point at =
      Steady::now() + std::chrono::milliseconds(std::max<int64_t>(delay_ms, 0));
  const bool earliest = at < impl_->Earliest();
  impl_->afters.emplace(at, std::move(fn));
  if (earliest) impl_->timer_cv.notify_one();
}

void Hub::Shutdown() {
  Impl::Wakes wakes;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->TakeEveryone(wakes);
    impl_->afters.clear();
    impl_->timer_cv.notify_one();
  }
  Impl::Call(wakes, false);
  if (impl_->timer_thread.joinable()) impl_->timer_thread.join();
}

}  // namespace orchard::server
