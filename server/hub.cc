#include "server/hub.h"

#include <atomic>
#include <list>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/clock.h"

namespace orchard::server {

namespace asio = boost::asio;

struct Hub::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::atomic<uint64_t> generation{0};
  std::atomic<bool> notify_pending{false};
  std::atomic<bool> stopped{false};

  struct Waiter {
    std::unique_ptr<asio::steady_timer> timer;
    std::function<void(bool)> wake;
    bool done = false;
  };
  // Touched only on the hub's thread.
  std::list<std::shared_ptr<Waiter>> waiters;
  std::thread thread;

  void Fire(const std::shared_ptr<Waiter>& w, bool woken) {
    if (w->done) return;
    w->done = true;
    w->timer->cancel();
    auto fn = std::move(w->wake);
    fn(woken);
  }
};

Hub::Hub() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Hub::~Hub() { Shutdown(); }

uint64_t Hub::generation() const { return impl_->generation.load(); }

void Hub::Notify() {
  impl_->generation.fetch_add(1);
  // Coalesce: one pending wake-up serves every Notify() before it runs.
  if (impl_->notify_pending.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_.get()] {
    impl->notify_pending = false;
    auto waiters = std::move(impl->waiters);
    impl->waiters.clear();
    for (auto& w : waiters) impl->Fire(w, true);
  });
}

void Hub::Wait(uint64_t seen_generation, int64_t deadline_ms, std::function<void(bool)> wake) {
  asio::post(impl_->io, [impl = impl_.get(), seen_generation, deadline_ms,
                         wake = std::move(wake)]() mutable {
    if (impl->stopped) {
      wake(false);
      return;
    }
    if (impl->generation.load() != seen_generation) {
      wake(true);
      return;
    }
    auto w = std::make_shared<Impl::Waiter>();
    w->timer = std::make_unique<asio::steady_timer>(impl->io);
    w->wake = std::move(wake);
    int64_t delay = deadline_ms - SystemClock::Get()->NowMs();
    w->timer->expires_after(std::chrono::milliseconds(delay > 0 ? delay : 0));
    impl->waiters.push_back(w);
    auto it = std::prev(impl->waiters.end());
    w->timer->async_wait([impl, w, it](const boost::system::error_code& ec) {
      if (ec || w->done) return;  // cancelled: Notify() fired it and dropped it
      impl->waiters.erase(it);
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
    auto waiters = std::move(impl->waiters);
    impl->waiters.clear();
    for (auto& w : waiters) impl->Fire(w, false);
    impl->guard.reset();
    impl->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace orchard::server
