// RunOnPool(): runs a blocking function on a thread pool and resumes the
// awaiting coroutine on its own executor (the loop), so CPU-heavy handler
// calls never run on the loop; RunControl(): the same, or on the loop for a
// handler whose control functions are quick.
// Thread-safety: fn runs on a pool thread; the coroutine resumes on the loop.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

#include "worker/server_api.h"

namespace orchard::worker {

// Runs fn() on `pool` and resumes the awaiting coroutine on its executor.
template <typename R, typename Fn>
Awaitable<R> RunOnPool(asio::thread_pool& pool, Fn fn) {
  auto result = std::make_shared<std::optional<R>>();
  // The initiation is a named local: GCC 12 destroys a lambda temporary that
  // sits inside a co_await expression too early (use after free).
  auto initiate = [&pool, fn = std::move(fn), result](auto handler) mutable {
    auto work = asio::make_work_guard(asio::get_associated_executor(handler));
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    asio::post(pool, [fn = std::move(fn), result, h, work]() mutable {
      result->emplace(fn());
      auto ex = work.get_executor();
      asio::post(ex, [h]() mutable { std::move (*h)(); });
    });
  };
  co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(initiate,
                                                                       asio::use_awaitable);
  co_return std::move(**result);
}

// A handler's control function (plan, fold, finish): on the loop when
// `quick` (see Handler::QuickControl), else on `pool` and back.
template <typename R, typename Fn>
Awaitable<R> RunControl(asio::thread_pool& pool, bool quick, Fn fn) {
  if (quick) {
    R r = fn();
    co_return r;
  }
  R r = co_await RunOnPool<R>(pool, std::move(fn));
  co_return r;
}

}  // namespace orchard::worker
