// Spawn(): starts a coroutine on the loop so that an exception escaping it is
// never lost. asio::detached drops the exception_ptr it is given, so a throw
// (a handler's result that is not valid UTF-8 makes json::dump() throw, say)
// would end the coroutine silently, and a lease it held would stay stranded
// until the server expired it. Here the exception is logged with what the
// coroutine was doing, and `on_error` runs so its owner can hand the lease
// back (release the task, report the subtask failed).
//
// Thread-safety: the completion runs on the executor's thread (the loop).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <string>
#include <utility>

#include "common/log.h"
#include "worker/server_api.h"

namespace orchard::worker {

// The message of an exception, for the log.
inline std::string ExceptionMessage(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// `what` names the coroutine in the log ("reconcile", "heartbeat loop");
// `on_error(message)` runs on the loop after the exception was logged.
template <typename OnError>
void Spawn(asio::any_io_executor ex, Awaitable<void> coroutine, std::string what,
           OnError on_error) {
  asio::co_spawn(ex, std::move(coroutine),
                 [what = std::move(what), on_error = std::move(on_error)](
                     std::exception_ptr e) mutable {
                   if (!e) return;
                   const std::string message = ExceptionMessage(e);
                   log::Event(spdlog::level::err, "coroutine ended by an exception",
                              {{"coroutine", what}, {"error", message}});
                   on_error(message);
                 });
}

// For coroutines that hold no lease: the exception is only logged.
inline void Spawn(asio::any_io_executor ex, Awaitable<void> coroutine, std::string what) {
  Spawn(ex, std::move(coroutine), std::move(what), [](const std::string&) {});
}

}  // namespace orchard::worker
