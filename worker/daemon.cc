// The worker daemon's wiring: builds the server connection and the parts
// (registration and heartbeats, the acquire loops, the subtask runner, the
// transition batcher, the reconciler), which meet in one WorkerState, starts
// their loops on one io_context, and drains on SIGTERM/SIGINT.
// Thread-safety: everything runs on the loop thread (Run()'s caller), except
// the handler calls the parts send to the pools.
#include "worker/daemon.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock.h"
#include "worker/acquirer.h"
#include "worker/reconciler.h"
#include "worker/registration.h"
#include "worker/rpc.h"
#include "worker/spawn.h"
#include "worker/state.h"
#include "worker/subtask_runner.h"
#include "worker/transition_batcher.h"

namespace orchard::worker {

namespace {

std::unique_ptr<Api> Connect(const std::string& server) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // Reconnect quickly after a server restart: the acquire loop's own
  // backoff already spaces the attempts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return std::make_unique<Api>(
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
}

}  // namespace

struct Daemon::Impl {
  Impl(DaemonOptions o, const Registry* r)
      : state(io.get_executor(), SystemClock::Get(), std::move(o)),
        pool(state.options.slots),
        api(Connect(state.options.server)),
        registration(state, *api, *r),
        runner(state, *api, *r, pool),
        batcher(state, *api, runner),
        reconciler(state, *api, *r, batcher, pool, control_pool) {}

  // No new work; wait (up to the drain timeout) for running subtasks, their
  // reports and the reconcilers to end; deregister; stop the loop.
  Awaitable<void> Drain(int sig) {
    spdlog::info("signal {}: draining (no new work; finishing {} running subtasks)", sig,
                 state.busy);
    state.draining = true;
    api->CancelLongPolls();
    int64_t until = state.Now() + state.options.drain_timeout_ms;
    while (!runner.Idle() && state.Now() < until) co_await SleepMs(20);
    // Let the reporter's last batch land.
    while (!state.subtasks.empty() && state.Now() < until) co_await SleepMs(20);
    while (!state.tasks.empty() && state.Now() < until) co_await SleepMs(20);
    if (!state.worker_id.empty()) {
      pb::DeregisterRequest req;
      req.set_worker_id(state.worker_id);
      co_await api->Deregister(req);
    }
    spdlog::info("drained; exiting");
    state.stopped = true;
    io.stop();
  }

  Awaitable<void> Start() {
    co_await registration.EnsureRegistered();
    auto ex = io.get_executor();
    Spawn(ex, registration.HeartbeatLoop(), "heartbeat loop");
    Spawn(ex, runner.ReporterLoop(), "reporter loop");
    Spawn(ex, batcher.Loop(), "transition loop");
    Spawn(ex, AcquireLoop(AcquireFor::kSubtasks, state, *api, registration, runner, reconciler),
          "subtask acquire loop");
    Spawn(ex, AcquireLoop(AcquireFor::kTasks, state, *api, registration, runner, reconciler),
          "task acquire loop");
  }

  asio::io_context io;
  WorkerState state;
  asio::thread_pool pool;
  // Plans and finishes (they may read files or run a reduce program) wait
  // here, never behind the slots' long slices.
  asio::thread_pool control_pool{1};
  std::unique_ptr<Api> api;
  Registration registration;
  SubtaskRunner runner;
  TransitionBatcher batcher;
  Reconciler reconciler;
};

Daemon::Daemon(DaemonOptions options, const Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

Daemon::~Daemon() { impl_->pool.join(); }

int Daemon::Run() {
  Impl& d = *impl_;
  asio::signal_set signals(d.io, SIGINT, SIGTERM);
  signals.async_wait([&d](const boost::system::error_code& ec, int sig) {
    if (!ec) Spawn(d.io.get_executor(), d.Drain(sig), "drain");
  });
  Spawn(d.io.get_executor(), d.Start(), "start");
  d.io.run();
  // Handlers that ignore their stop token must not keep us: the pool's
  // threads are joined in the destructor only after their slices end.
  d.pool.stop();
  return 0;
}

}  // namespace orchard::worker
