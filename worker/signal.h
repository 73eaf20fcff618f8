// Two small waits for the worker's coroutines: Signal, a one-waiter wake-up
// (a loop sleeps on it until someone has work for it, or a timeout passes),
// and SleepMs. Both wait on the steady clock of the loop's timers.
// Thread-safety: loop thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>

#include "worker/server_api.h"

namespace orchard::worker {

// Notify() before Wait() is remembered, so a wake-up between a loop's check
// and its wait is not lost.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : timer_(ex) {}
  Awaitable<void> Wait(int64_t timeout_ms) {
    if (pending_) {
      pending_ = false;
      co_return;
    }
    timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    pending_ = false;
  }
  void Notify() {
    pending_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool pending_ = false;
};

inline Awaitable<void> SleepMs(int64_t ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace orchard::worker
