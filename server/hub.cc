#include "server/hub.h"

#include <array>
#include <atomic>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/clock.h"

namespace orchard::server {

namespace asio = boost::asio;

namespace {
constexpr size_t kTaskCounters = 4096;
}  // namespace

struct Hub::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::atomic<bool> stopped{false};

  // Generations: any = every notification; everything = Notify(); work =
  // NotifyTask(.., true); task[h] = NotifyTask of a task hashing to h.
  std::atomic<uint64_t> any{0}, everything{0}, work{0};
  std::array<std::atomic<uint64_t>, kTaskCounters> task{};

  static size_t Slot(const std::string& id) { return std::hash<std::string>{}(id) % kTaskCounters; }

  uint64_t Generation(const Interest& i) const {
    switch (i.kind) {
      case Interest::kAny:
        return any.load();
      case Interest::kWork:
        return everything.load() + work.load();
      case Interest::kTask:
        return everything.load() + task[Slot(i.task_id)].load();
    }
    return 0;
  }

  // Notifications not yet delivered; one posted drain serves them all.
  std::mutex pending_mu;
  bool drain_posted = false;
  bool pending_everything = false;
  bool pending_work = false;
  std::vector<std::string> pending_tasks;

  struct Waiter {
    std::unique_ptr<asio::steady_timer> timer;
    std::function<void(bool)> wake;
    std::list<std::shared_ptr<Waiter>>* home = nullptr;
    std::list<std::shared_ptr<Waiter>>::iterator at;
    std::string task_id;  // for kTask: its key in by_task
    bool done = false;
  };
  using Waiters = std::list<std::shared_ptr<Waiter>>;
  // Touched only on the hub's thread.
  Waiters any_waiters, work_waiters;
  std::unordered_map<std::string, Waiters> by_task;
  std::thread thread;

  void Fire(const std::shared_ptr<Waiter>& w, bool woken) {
    if (w->done) return;
    w->done = true;
    w->timer->cancel();
    auto fn = std::move(w->wake);
    fn(woken);
  }

  // Detaches the waiter from its list (dropping an emptied task list).
  void Unlink(const std::shared_ptr<Waiter>& w) {
    if (w->home == nullptr) return;
    Waiters* home = w->home;
    w->home = nullptr;
    home->erase(w->at);
    if (home->empty() && !w->task_id.empty()) by_task.erase(w->task_id);
  }

  void FireAll(Waiters& list, bool woken) {
    Waiters taken;
    taken.swap(list);
    for (auto& w : taken) {
      w->home = nullptr;
      Fire(w, woken);
    }
  }

  void FireEveryTask(bool woken) {
    auto tasks = std::move(by_task);
    by_task.clear();
    for (auto& [id, list] : tasks) FireAll(list, woken);
  }

  void Drain() {
    bool all, work_changed;
    std::vector<std::string> ids;
    {
      std::lock_guard lock(pending_mu);
      drain_posted = false;
      all = pending_everything;
      work_changed = pending_work;
      ids.swap(pending_tasks);
      pending_everything = pending_work = false;
    }
    FireAll(any_waiters, true);
    if (all || work_changed) FireAll(work_waiters, true);
    if (all) {
      FireEveryTask(true);
      return;
    }
    for (const auto& id : ids) {
      auto it = by_task.find(id);
      if (it == by_task.end()) continue;
      Waiters list = std::move(it->second);
      by_task.erase(it);
      FireAll(list, true);
    }
  }

  void Post(bool all, bool new_work, const std::string* task_id) {
    bool post = false;
    {
      std::lock_guard lock(pending_mu);
      pending_everything = pending_everything || all;
      pending_work = pending_work || new_work;
      if (task_id != nullptr && !pending_everything) pending_tasks.push_back(*task_id);
      if (!drain_posted) drain_posted = post = true;
    }
    if (post) asio::post(io, [this] { Drain(); });
  }
};

Hub::Hub() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Hub::~Hub() { Shutdown(); }

uint64_t Hub::generation(const Interest& interest) const { return impl_->Generation(interest); }

void Hub::Notify() {
  impl_->any.fetch_add(1);
  impl_->everything.fetch_add(1);
  impl_->Post(true, true, nullptr);
}

void Hub::NotifyTask(const std::string& task_id, bool new_work) {
  impl_->task[Impl::Slot(task_id)].fetch_add(1);
  if (new_work) impl_->work.fetch_add(1);
  impl_->any.fetch_add(1);
  impl_->Post(false, new_work, &task_id);
}

void Hub::Wait(const Interest& interest, uint64_t seen_generation, int64_t deadline_ms,
               std::function<void(bool)> wake) {
  asio::post(impl_->io, [impl = impl_.get(), interest, seen_generation, deadline_ms,
                         wake = std::move(wake)]() mutable {
    if (impl->stopped) {
      wake(false);
      return;
    }
    if (impl->Generation(interest) != seen_generation) {
      wake(true);
      return;
    }
    auto w = std::make_shared<Impl::Waiter>();
    w->timer = std::make_unique<asio::steady_timer>(impl->io);
    w->wake = std::move(wake);
    switch (interest.kind) {
      case Interest::kAny:
        w->home = &impl->any_waiters;
        break;
      case Interest::kWork:
        w->home = &impl->work_waiters;
        break;
      case Interest::kTask:
        w->task_id = interest.task_id;
        w->home = &impl->by_task[interest.task_id];
        break;
    }
    w->at = w->home->insert(w->home->end(), w);
    int64_t delay = deadline_ms - SystemClock::Get()->NowMs();
    w->timer->expires_after(std::chrono::milliseconds(delay > 0 ? delay : 0));
    w->timer->async_wait([impl, w](const boost::system::error_code& ec) {
      if (ec || w->done) return;  // cancelled: a notification fired it
      impl->Unlink(w);
      impl->Fire(w, false);
    });
  });
}

void Hub::After(int64_t delay_ms, std::function<void()> fn) {
  auto timer = std::make_shared<asio::steady_timer>(impl_->io);
  timer->expires_after(std::chrono::milliseconds(delay_ms));
  timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code&) { fn(); });
}

void Hub::Shutdown() {
  if (impl_->stopped.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_.get()] {
    impl->FireAll(impl->any_waiters, false);
    impl->FireAll(impl->work_waiters, false);
    impl->FireEveryTask(false);
    impl->guard.reset();
    impl->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace orchard::server
