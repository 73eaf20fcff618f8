// A worker's parts wired to a FakeServerApi and a FakeClock on one
// io_context the test drives, plus two test handlers: "sum" (plans two
// explicit slices, folds {"n": k} results into {"sum": ...}) and "bad_utf8"
// (its results and its Finish are strings that are not UTF-8, so json::dump()
// throws: a coroutine that dies by an exception). Loop thread only: the test
// thread runs the loop.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "common/clock.h"
#include "tests/worker/fake_server_api.h"
#include "worker/reconciler.h"
#include "worker/spawn.h"
#include "worker/state.h"
#include "worker/subtask_runner.h"
#include "worker/transition_batcher.h"

namespace orchard::worker::testing {

class SumHandler final : public Handler {
 public:
  absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const override {
    return Plan{false, {in.begin, (in.begin + in.end) / 2, in.end}};
  }
  absl::StatusOr<nlohmann::json> Run(const SliceContext& ctx) const override {
    return nlohmann::json{{"n", ctx.end - ctx.begin}};
  }
  absl::Status Fold(nlohmann::json& acc, const nlohmann::json& r) const override {
    acc["sum"] = acc.value("sum", 0) + r.at("n").get<int>();
    return absl::OkStatus();
  }
  bool QuickControl() const override { return true; }
  bool QuickRun() const override { return true; }
};

class BadUtf8Handler final : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const SliceContext&) const override {
    return nlohmann::json(std::string("\xff\xfe"));
  }
  absl::Status Fold(nlohmann::json&, const nlohmann::json&) const override {
    return absl::OkStatus();
  }
  absl::StatusOr<nlohmann::json> Finish(const FinishContext&, nlohmann::json) const override {
    return nlohmann::json(std::string("\xff\xfe"));
  }
  bool QuickControl() const override { return true; }
  bool QuickRun() const override { return true; }
};

class WorkerFixture : public ::testing::Test {
 protected:
  static DaemonOptions Options() {
    DaemonOptions o;
    o.slots = 4;
    return o;
  }

  WorkerFixture()
      : clock_(SystemClock::Get()->NowMs()),
        state_(io_.get_executor(), &clock_, Options()),
        runner_(state_, api_, registry_, pool_),
        batcher_(state_, api_, runner_),
        reconciler_(state_, api_, registry_, batcher_, pool_, control_pool_) {
    registry_.Add("sum", std::make_unique<SumHandler>());
    registry_.Add("bad_utf8", std::make_unique<BadUtf8Handler>());
    state_.worker_id = "w1";
    Spawn(io_.get_executor(), batcher_.Loop(), "transition loop");
    Spawn(io_.get_executor(), runner_.ReporterLoop(), "reporter loop");
  }

  ~WorkerFixture() override {
    // Let the loops see `stopped` and end, so no coroutine outlives the parts.
    state_.stopped = true;
    state_.transition_signal.Notify();
    state_.report_signal.Notify();
    io_.run_for(std::chrono::seconds(5));
    pool_.join();
    control_pool_.join();
  }

  // Runs the loop until `done` holds, for at most five seconds.
  bool RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  boost::asio::io_context io_;
  FakeClock clock_;
  FakeServerApi api_;
  Registry registry_;
  boost::asio::thread_pool pool_{1};
  boost::asio::thread_pool control_pool_{1};
  WorkerState state_;
  SubtaskRunner runner_;
  TransitionBatcher batcher_;
  Reconciler reconciler_;
};

}  // namespace orchard::worker::testing
