// The Store contract (store_contract.h): creating tasks (request ids, the
// first spec wins, a different one is refused naming the field), planning
// them into subtasks, and the non-blocking create answering once.
#include "tests/server/store_contract/store_contract.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace orchard::store_contract {
namespace {

namespace pb = ::orchard::v1;
using ::orchard::Outcome;
using ::orchard::State;
using ::orchard::lifecycle::TaskEvent;
using ::orchard::store::AcquireResult;
using ::orchard::store::HistoryFilter;
using ::orchard::store::SubtaskFilter;
using ::orchard::store::TaskFilter;
using ::orchard::store::TaskTransition;
using ::orchard::store::TransitionResult;
using namespace ::orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// This test verifies that a new task waits in Preparing with no subtasks and
// one "Created" history row.
TEST_P(StoreContract, CreateTaskStartsInPreparingWithoutSubtasks) {
  auto r = Ok(store().CreateTask(Spec("sum", 0, 100, 4), kNow));
  EXPECT_TRUE(r.created);
  EXPECT_EQ(r.task.id().rfind("t-", 0), 0u);
  EXPECT_EQ(r.task.state(), pb::PREPARING);
  EXPECT_EQ(r.task.version(), 1u);
  EXPECT_EQ(r.task.counts().total(), 0u);
  EXPECT_EQ(r.task.create_time_ms(), kNow);
  EXPECT_EQ(r.task.spec().params_json(), R"({"x":1})");
  EXPECT_TRUE(Subtasks(r.task.id()).empty());
  auto h = History(r.task.id(), -1);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].event(), "Created");
  EXPECT_EQ(Get(r.task.id()).SerializeAsString(), r.task.SerializeAsString());
  EXPECT_EQ(store().GetTask("t-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().GetTask("t-nope").status().message(), "task t-nope not found");
}

// This test verifies that a resubmission with the same request_id returns the
// first task, even with a different spec, and that no request_id never dedups.
TEST_P(StoreContract, SameRequestIdReturnsTheFirstTask) {
  pb::TaskSpec a = Spec("sum", 0, 100, 4);
  a.set_request_id("req-1");
  auto first = Ok(store().CreateTask(a, kNow));
  // The same spec again (params spelt differently, the same JSON value).
  pb::TaskSpec again = a;
  again.set_params_json(R"({ "x" : 1 })");
  auto second = Ok(store().CreateTask(again, kNow + 1));
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.task.id(), first.task.id());
  auto c = Ok(store().CreateTask(Spec("sum", 0, 1, 1), kNow));
  auto d = Ok(store().CreateTask(Spec("sum", 0, 1, 1), kNow));
  EXPECT_NE(c.task.id(), d.task.id());
}

// This test verifies that a resubmit with a used request_id and a different
// spec is refused with ALREADY_EXISTS naming the first field that differs
// and the first task, and stores nothing.
TEST_P(StoreContract, SameRequestIdWithAnotherSpecIsRefusedNamingTheField) {
  pb::TaskSpec a = Spec("sum", 0, 100, 4);
  a.set_request_id("req-1");
  a.mutable_policy()->set_max_attempts(3);
  (*a.mutable_labels())["team"] = "a";
  const pb::Task first = Ok(store().CreateTask(a, kNow)).task;
  struct Case {
    std::function<void(pb::TaskSpec&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](pb::TaskSpec& s) { s.set_kind("noop"); }, "kind"},
      {[](pb::TaskSpec& s) { s.set_end(101); }, "end"},
      {[](pb::TaskSpec& s) { s.mutable_split()->set_subtasks(5); }, "split.subtasks"},
      {[](pb::TaskSpec& s) { s.mutable_split()->set_chunk(4); }, "split.subtasks"},
      {[](pb::TaskSpec& s) { s.set_params_json(R"({"x":2})"); }, "params.x"},
      {[](pb::TaskSpec& s) { s.set_params_json(R"({"x":1,"y":0})"); }, "params.y"},
      {[](pb::TaskSpec& s) { s.mutable_policy()->set_max_attempts(4); }, "policy.max_attempts"},
      {[](pb::TaskSpec& s) { s.mutable_policy()->set_max_failed_subtasks(0); },
       "policy.max_failed_subtasks"},
      {[](pb::TaskSpec& s) { (*s.mutable_labels())["team"] = "b"; }, "labels.team"},
      {[](pb::TaskSpec& s) { s.mutable_labels()->clear(); }, "labels.team"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    pb::TaskSpec b = a;
    c.change(b);
    auto r = store().CreateTask(b, kNow + 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_NE(r.status().message().find("(" + c.field + " differs)"), std::string::npos)
        << r.status();
    EXPECT_NE(r.status().message().find(first.id()), std::string::npos) << r.status();
  }
  EXPECT_EQ(Ok(store().ListTasks(TaskFilter{})).tasks.size(), 1u);
}

// This test verifies that concurrent submits of one request_id from many
// threads create exactly one task.
TEST_P(StoreContract, ConcurrentSubmitsWithOneRequestIdCreateOneTask) {
  pb::TaskSpec spec = Spec("sum", 0, 100, 4);
  spec.set_request_id("same");
  std::atomic<int> created{0};
  std::vector<std::string> ids(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto r = store().CreateTask(spec, kNow);
      if (!r.ok()) return;
      ids[i] = r->task.id();
      if (r->created) ++created;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  EXPECT_EQ(Ok(store().ListTasks(TaskFilter{})).tasks.size(), 1u);
}

// This test verifies that Planned with a uniform plan writes every slice in
// Preparing, sets the counters and records "planned N subtasks".
TEST_P(StoreContract, PlannedUniformWritesEverySubtaskInPreparing) {
  pb::Task t = Start(Spec("sum", 0, 100, 7), kNow + 5);
  EXPECT_EQ(t.state(), pb::RUNNING);
  EXPECT_EQ(t.version(), 2u);
  EXPECT_EQ(t.start_time_ms(), kNow + 5);
  EXPECT_EQ(t.counts().total(), 7u);
  EXPECT_EQ(t.counts().preparing(), 7u);
  EXPECT_EQ(t.counts().items_total(), 100u);
  auto subs = Subtasks(t.id());
  ASSERT_EQ(subs.size(), 7u);
  uint64_t next = 0;
  for (size_t i = 0; i < subs.size(); ++i) {
    EXPECT_EQ(subs[i].index(), i);
    EXPECT_EQ(subs[i].begin(), next);
    EXPECT_EQ(subs[i].state(), pb::PREPARING);
    EXPECT_EQ(subs[i].attempt(), 0u);
    next = subs[i].end();
  }
  EXPECT_EQ(next, 100u);
  EXPECT_EQ(subs[0].end() - subs[0].begin(), 15u);
  auto h = History(t.id(), -1);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].event(), "Planned");
  EXPECT_EQ(h[1].reason(), "planned 7 subtasks");
  EXPECT_TRUE(History(t.id(), 0).empty()) << "creating a subtask is not a transition";
  ExpectCountersMatchSubtasks(t.id());

  pb::TaskSpec chunked = Spec("sum", 10, 110, 1);
  chunked.mutable_split()->set_chunk(30);
  pb::Task c = Start(chunked);
  auto cs = Subtasks(c.id());
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(cs[3].begin(), 100u);
  EXPECT_EQ(cs[3].end(), 110u);
}

// This test verifies that explicit bounds are validated, and a bad plan
// changes nothing.
TEST_P(StoreContract, PlannedWithExplicitBoundsValidatesThem) {
  pb::Task t = Submit(Spec("sum", 0, 100, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.event = TaskEvent::kPlanned;
  tr.plan.emplace();
  for (uint64_t b : {0, 50, 40, 100}) tr.plan->add_bounds(b);
  auto bad = store().TransitionTask(tr, kNow);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(t.id()).version(), 1u);
  EXPECT_EQ(Get(t.id()).state(), pb::PREPARING);
  EXPECT_TRUE(Subtasks(t.id()).empty());

  tr.plan->clear_bounds();
  for (uint64_t b : {0, 10, 100}) tr.plan->add_bounds(b);
  pb::Task ok = Ok(store().TransitionTask(tr, kNow));
  EXPECT_EQ(ok.counts().total(), 2u);
  auto subs = Subtasks(t.id());
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[1].begin(), 10u);
  EXPECT_EQ(subs[1].end(), 100u);
}

// This test verifies the non-blocking writes that the server's hot calls
// use: each callback runs exactly once, after its write committed (what it
// returns can be read back), and may start another write without deadlock.
TEST_P(StoreContract, AsyncWritesAnswerOnceAfterTheirCommit) {
  constexpr int kTasks = 50;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> answered;  // task id -> times its callback ran
  int errors = 0;
  int chained = 0;
  auto record = [&](const absl::StatusOr<orchard::store::SubmitResult>& r) {
    std::lock_guard lock(mu);
    if (!r.ok()) {
      ++errors;
    } else {
      ++answered[r->task.id()];
    }
    cv.notify_all();
  };
  for (int i = 0; i < kTasks; ++i) {
    store().CreateTaskAsync(Spec("sum", 0, 10, 1), kNow, [&, i](auto r) {
      // Committed before the callback: a reader sees it at once.
      if (r.ok() && !store().GetTask(r->task.id()).ok()) {
        std::lock_guard lock(mu);
        ++errors;
      }
      if (i == 0) {
        // A write started from a callback (the writer's own thread).
        store().CreateTaskAsync(Spec("sum", 0, 10, 1), kNow, [&](auto chained_r) {
          {
            std::lock_guard lock(mu);
            ++chained;
          }
          record(chained_r);
        });
      }
      record(r);
    });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] {
    return answered.size() + static_cast<size_t>(errors) >= kTasks + 1;
  }));
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(chained, 1);
  EXPECT_EQ(answered.size(), static_cast<size_t>(kTasks + 1));
  for (const auto& [id, times] : answered) EXPECT_EQ(times, 1) << id;
  lock.unlock();
  EXPECT_EQ(Ok(store().ListTasks(TaskFilter{.page_size = 1000})).tasks.size(), kTasks + 1u);
}

}  // namespace
}  // namespace orchard::store_contract
