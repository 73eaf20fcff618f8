// The Store contract (store_contract.h): leases. Acquire's order and limits,
// reconcile leases held by one worker at a time, epochs that refuse the
// previous holder, heartbeats that renew or report lost, and expiry that
// follows the subtask table.
#include "tests/server/store_contract/store_contract.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
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

// This test verifies that Acquire never leases more of a task's subtasks than
// its parallelism allows at once.
TEST_P(StoreContract, AcquireRespectsParallelism) {
  pb::TaskSpec spec = Spec("sum", 0, 50, 5);
  spec.mutable_policy()->set_parallelism(2);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 10);
  ASSERT_EQ(a.subtasks.size(), 2u);
  EXPECT_EQ(a.subtasks[0].kind(), "sum");
  EXPECT_EQ(a.subtasks[0].params_json(), R"({"x":1})");
  EXPECT_EQ(a.subtasks[0].attempt(), 1u);
  EXPECT_EQ(a.subtasks[0].lease().epoch(), 1u);
  EXPECT_EQ(a.subtasks[0].lease_expire_ms(), kNow + kTtl);
  EXPECT_EQ(Acquire(w, 10).subtasks.size(), 0u);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease())));
  EXPECT_EQ(Acquire(w, 10).subtasks.size(), 1u);
  EXPECT_EQ(Get(t.id()).counts().running(), 2u);
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that a worker gets only subtasks and task leases of the
// kinds it registered.
TEST_P(StoreContract, AcquireOnlyLeasesKindsTheWorkerRuns) {
  pb::Task a = Start(Spec("a", 0, 10, 2));
  pb::Task b = Start(Spec("b", 0, 10, 2));
  std::string w = Worker({"a"});
  AcquireResult r = Acquire(w, 10, kNow, 10);
  ASSERT_EQ(r.subtasks.size(), 2u);
  for (const auto& l : r.subtasks) EXPECT_EQ(l.lease().task_id(), a.id());
  ASSERT_EQ(r.tasks.size(), 1u);
  EXPECT_EQ(r.tasks[0].task().id(), a.id());
  EXPECT_EQ(Get(b.id()).counts().running(), 0u);
}

// This test verifies that a subtask backing off is not leased before its
// not_before, and that Acquire says when it becomes runnable.
TEST_P(StoreContract, AcquireWaitsForNotBeforeAndSaysWhen) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_backoff_initial_ms(1000);
  spec.mutable_policy()->set_backoff_max_ms(1000);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease())));
  pb::Subtask s = Subtasks(t.id())[0];
  ASSERT_EQ(s.state(), pb::PREPARING);
  if (s.not_before_ms() > kNow) {
    AcquireResult none = Acquire(w, 1, kNow);
    EXPECT_TRUE(none.subtasks.empty());
    EXPECT_EQ(none.next_ready_ms, s.not_before_ms());
  }
  AcquireResult again = Acquire(w, 1, s.not_before_ms());
  ASSERT_EQ(again.subtasks.size(), 1u);
  EXPECT_EQ(again.subtasks[0].attempt(), 2u);
  EXPECT_EQ(again.subtasks[0].lease().epoch(), 2u);
  EXPECT_EQ(again.next_ready_ms, 0);
}

// This test verifies that higher priority tasks are served first, then older.
TEST_P(StoreContract, AcquirePrefersHigherPriorityThenOlderTasks) {
  pb::Task old_low = Start(Spec("sum", 0, 10, 2), kNow);
  pb::TaskSpec hi = Spec("sum", 0, 10, 2);
  hi.mutable_policy()->set_priority(5);
  pb::Task high = Start(hi, kNow + 1);
  pb::Task new_low = Start(Spec("sum", 0, 10, 2), kNow + 2);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  ASSERT_EQ(a.subtasks.size(), 3u);
  EXPECT_EQ(a.subtasks[0].lease().task_id(), high.id());
  EXPECT_EQ(a.subtasks[1].lease().task_id(), high.id());
  EXPECT_EQ(a.subtasks[2].lease().task_id(), old_low.id());
  EXPECT_EQ(Get(new_low.id()).counts().running(), 0u);
}

// This test verifies that an unknown worker gets NOT_FOUND from Acquire and
// Heartbeat (so it registers again).
TEST_P(StoreContract, UnknownWorkerIsNotFound) {
  EXPECT_EQ(store().Acquire("w-nobody", 1, 1, kNow, kTtl).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SendHeartbeat(store(), {.worker_id = "w-nobody"}, kNow, kTtl).status().code(),
            absl::StatusCode::kNotFound);
}

// This test verifies that reconcile leases come from two indexes (free leases, expired ones) and
// are handed out in one order: higher priority first, then older; a lease
// still held is not, and neither is a task of a kind the worker does not run.
TEST_P(StoreContract, ReconcileLeasesMergeFreeAndExpiredInPriorityThenAgeOrder) {
  auto with_priority = [](pb::TaskSpec s, int32_t p) {
    s.mutable_policy()->set_priority(p);
    return s;
  };
  const std::string w1 = Worker({"sum"});
  const std::string w2 = Worker({"sum"});
  pb::Task expired = Submit(Spec("sum", 0, 10, 1));
  pb::Task held = Submit(Spec("sum", 0, 10, 1));
  ASSERT_EQ(Acquire(w1, 0, kNow, 1).tasks[0].task().id(), expired.id());
  ASSERT_EQ(Acquire(w1, 0, kNow + kTtl / 2, 1).tasks[0].task().id(), held.id());
  pb::Task urgent = Submit(with_priority(Spec("sum", 0, 10, 1), 5));
  pb::Task later = Submit(Spec("sum", 0, 10, 1));
  Submit(with_priority(Spec("other", 0, 10, 1), 9));
  // `expired`'s lease ended at kNow + kTtl; `held`'s runs to 1.5 kTtl.
  AcquireResult a = Acquire(w2, 0, kNow + kTtl + 1, 10);
  std::vector<std::string> got;
  for (const auto& l : a.tasks) got.push_back(l.task().id());
  EXPECT_EQ(got, (std::vector<std::string>{urgent.id(), expired.id(), later.id()}));
}

// This test verifies that a task's reconcile lease is held by one worker until
// it expires, and that the old holder's epoch is then refused.
TEST_P(StoreContract, TaskLeaseIsExclusiveUntilItExpires) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  std::string w1 = Worker({"sum"});
  std::string w2 = Worker({"sum"});
  AcquireResult a = Acquire(w1, 0, kNow, 1);
  ASSERT_EQ(a.tasks.size(), 1u);
  EXPECT_EQ(a.tasks[0].epoch(), 1u);
  EXPECT_EQ(a.tasks[0].task().reconciler(), w1);
  EXPECT_EQ(a.tasks[0].task().spec().kind(), "sum");
  EXPECT_EQ(a.tasks[0].task().version(), 1u) << "a lease is not a change of the task's state";
  EXPECT_TRUE(Acquire(w2, 0, kNow + 1, 1).tasks.empty());
  AcquireResult b = Acquire(w2, 0, kNow + kTtl + 1, 1);
  ASSERT_EQ(b.tasks.size(), 1u);
  EXPECT_EQ(b.tasks[0].epoch(), 2u);

  TaskTransition tr;
  tr.task_id = t.id();
  tr.actor = w1;
  tr.lease_worker = w1;
  tr.lease_epoch = 1;
  tr.event = TaskEvent::kCancelRequested;
  auto stale = store().TransitionTask(tr, kNow + kTtl + 2);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("stale"), std::string::npos) << stale.status();
  tr.actor = tr.lease_worker = w2;
  tr.lease_epoch = 2;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow + kTtl + 2)).state(), pb::TERMINATING);

  EXPECT_EQ(store().ReleaseTask(w1, t.id(), 1).code(), absl::StatusCode::kFailedPrecondition);
  Ok(store().ReleaseTask(w2, t.id(), 2));
  Ok(store().ReleaseTask(w2, t.id(), 2));  // a retried release is a no-op
  EXPECT_EQ(Get(t.id()).reconciler(), "");

  // The transition that ends the task ends its lease too: nobody reconciles
  // a terminal task, and its reconciler need not release it.
  AcquireResult c = Acquire(w2, 0, kNow + kTtl + 3, 1);
  ASSERT_EQ(c.tasks.size(), 1u);
  EXPECT_EQ(c.tasks[0].epoch(), 3u);
  tr.lease_epoch = 3;
  tr.event = TaskEvent::kFinalized;
  tr.outcome = Outcome::kCancelled;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow + kTtl + 4)).state(), pb::TERMINATED);
  EXPECT_EQ(Get(t.id()).reconciler(), "");
  EXPECT_TRUE(Acquire(w1, 0, kNow + kTtl + 5, 1).tasks.empty()) << "a terminal task was leased";
  Ok(store().ReleaseTask(w2, t.id(), 3));  // a late release is a no-op
}

// This test verifies that a heartbeat renews the leases still held, reports
// the others as lost, and asks to stop the Terminating ones.
TEST_P(StoreContract, HeartbeatRenewsHeldLeasesReportsLostAndStop) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3, kNow, 1);
  ASSERT_EQ(a.subtasks.size(), 3u);
  ASSERT_EQ(a.tasks.size(), 1u);
  // Subtask 1 is handed back (expired in effect: reported), subtask 2 stops.
  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease())));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  EXPECT_EQ(stop.terminating, 2u);

  HeartbeatArgs hb{.worker_id = w, .slots_in_use = 3, .draining = true};
  for (const auto& l : a.subtasks) hb.subtasks.emplace_back(l.lease(), 4);
  hb.tasks = {TaskLeaseRef(t.id(), a.tasks[0].epoch()), TaskLeaseRef(t.id(), 7)};

  auto r = Ok(SendHeartbeat(store(), hb, kNow + 5000, kTtl));
  EXPECT_EQ(r.lease_expire_ms, kNow + 5000 + kTtl);
  ASSERT_EQ(r.lost.size(), 2u);
  EXPECT_EQ(r.lost[0].subtask_index(), 1);
  EXPECT_EQ(r.lost[1].subtask_index(), -1);
  EXPECT_EQ(r.lost[1].epoch(), 7u);
  EXPECT_EQ(r.stop.size(), 2u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].lease_expire_ms(), kNow + 5000 + kTtl);
  EXPECT_EQ(subs[0].progress(), 4u);
  // Renewed: the sweeper at the old expiry finds nothing.
  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 0u);
  EXPECT_EQ(e.task_leases_expired, 0u);
  auto workers = Ok(store().ListWorkers(kNow + 5000, 1000));
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_TRUE(workers[0].draining());
  EXPECT_EQ(workers[0].slots_in_use(), 3u);
  EXPECT_EQ(workers[0].last_heartbeat_ms(), kNow + 5000);
}

// This test verifies lease expiry: with attempts left back to Preparing (a
// failed attempt, with backoff), without to Error, and from Terminating to
// Terminated; expired task leases are freed; silent workers marked not alive.
TEST_P(StoreContract, LeaseExpiryFollowsTheTable) {
  pb::TaskSpec spec = Spec("sum", 0, 20, 2);
  spec.mutable_policy()->set_max_attempts(2);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2, kNow, 1);
  ASSERT_EQ(a.subtasks.size(), 2u);

  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 2u);
  EXPECT_EQ(e.task_leases_expired, 1u);
  EXPECT_EQ(e.workers_expired, 0u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::PREPARING);
  EXPECT_EQ(subs[0].worker(), "");
  EXPECT_EQ(subs[0].error(), "lease expired (worker " + w + ")");
  auto h = History(t.id(), 0);
  EXPECT_EQ(h.back().event(), "LeaseExpired");
  EXPECT_NE(h.back().reason().find("lease expired (worker " + w + ")"), std::string::npos);
  EXPECT_EQ(Get(t.id()).reconciler(), "");

  // Second attempts, then a cancel moves both to Terminating: an expiry there
  // ends them Terminated/CANCELLED (the worker vanished while stopping).
  int64_t later = kNow + 3 * 60'000;
  AcquireResult b = Acquire(w, 2, later);
  ASSERT_EQ(b.subtasks.size(), 2u);
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, later));
  Ok(store().StopSubtasks(t.id(), "", 0, "", later));
  e = Ok(store().ExpireLeases(later + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 2u);
  EXPECT_EQ(e.workers_expired, 1u);
  subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::TERMINATED);
  EXPECT_EQ(subs[0].outcome(), pb::CANCELLED);
  auto workers = Ok(store().ListWorkers(later + kTtl + 1, 60'000));
  EXPECT_FALSE(workers[0].alive());
  ExpectCountersMatchSubtasks(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that a Running lease that expires on its last attempt
// ends in Error (LeaseExpiredPermanently).
TEST_P(StoreContract, LeaseExpiryWithoutAttemptsLeftGoesToError) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_max_attempts(1);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  ASSERT_EQ(Acquire(w, 1).subtasks.size(), 1u);
  Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::ERROR);
  EXPECT_EQ(s.outcome(), pb::FAILED);
  EXPECT_EQ(History(t.id(), 0).back().event(), "LeaseExpiredPermanently");
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that a heartbeat naming a subtask lease at an old
// epoch (it expired and went to another worker) renews nothing of it and
// reports it lost, and that the same heartbeat twice answers the same.
TEST_P(StoreContract, HeartbeatWithAStaleEpochRenewsNothingAndIsRepeatable) {
  pb::Task t = Start(Spec("sum", 0, 10, 1));
  const std::string old_w = Worker({"sum"});
  const std::string new_w = Worker({"sum"});
  AcquireResult a = Acquire(old_w, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  const int64_t later = kNow + 10 * 60'000;  // past any backoff
  AcquireResult b = Acquire(new_w, 1, later);
  ASSERT_EQ(b.subtasks.size(), 1u);
  const pb::Subtask before = Subtasks(t.id())[0];
  HeartbeatArgs hb{.worker_id = old_w, .subtasks = {{a.subtasks[0].lease(), 7}}};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    auto r = Ok(SendHeartbeat(store(), hb, later + 1 + i, kTtl));
    ASSERT_EQ(r.lost.size(), 1u);
    EXPECT_EQ(r.lost[0].epoch(), a.subtasks[0].lease().epoch());
    EXPECT_TRUE(r.stop.empty());
  }
  const pb::Subtask after = Subtasks(t.id())[0];
  EXPECT_EQ(after.worker(), new_w);
  EXPECT_EQ(after.lease_expire_ms(), before.lease_expire_ms());
  EXPECT_EQ(after.progress(), before.progress());
}

// This test verifies that a reconciler whose task lease moved on to another
// worker can neither stop the task's subtasks nor release the lease, that
// its refusal changes nothing, and that the holder's stop writes history
// rows naming the holder.
TEST_P(StoreContract, AStaleReconcilerCannotStopOrRelease) {
  pb::Task t = Start(Spec("sum", 0, 20, 2));
  const std::string w1 = Worker({"sum"});
  const std::string w2 = Worker({"sum"});
  ASSERT_EQ(Acquire(w1, 0, kNow, 1).tasks.size(), 1u);
  AcquireResult b = Acquire(w2, 0, kNow + kTtl + 1, 1);
  ASSERT_EQ(b.tasks.size(), 1u);
  const uint64_t epoch = b.tasks[0].epoch();
  TaskTransition cancel{.task_id = t.id(),
                        .actor = w2,
                        .lease_worker = w2,
                        .lease_epoch = epoch,
                        .event = TaskEvent::kCancelRequested};
  Ok(store().TransitionTask(cancel, kNow + kTtl + 2));
  const size_t rows = History(t.id(), std::nullopt).size();

  auto stale = store().StopSubtasks(t.id(), w1, epoch - 1, "stale", kNow + kTtl + 3);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  EXPECT_EQ(Get(t.id()).counts().preparing(), 2u);
  EXPECT_EQ(History(t.id(), std::nullopt).size(), rows);
  EXPECT_EQ(store().ReleaseTask(w1, t.id(), epoch - 1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(t.id()).reconciler(), w2);

  auto stop = Ok(store().StopSubtasks(t.id(), w2, epoch, "cancel", kNow + kTtl + 3));
  EXPECT_EQ(stop.stopped, 2u);
  const std::vector<pb::HistoryEntry> h = History(t.id(), 0);
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(h.back().event(), "CancelRequested");
  EXPECT_EQ(h.back().to(), pb::TERMINATED);
  EXPECT_EQ(h.back().actor(), w2);
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that the non-blocking Acquire answers once with what
// the blocking form would: the leases, written (a read sees them Running).
TEST_P(StoreContract, AcquireAsyncAnswersOnceWithLeasesItWrote) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  const std::string w = Worker({"sum"});
  std::promise<absl::StatusOr<AcquireResult>> got;
  std::atomic<int> calls{0};
  store().AcquireAsync(w, 2, 1, kNow, kTtl, [&](absl::StatusOr<AcquireResult> r) {
    if (++calls == 1) got.set_value(std::move(r));
  });
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  AcquireResult r = Ok(future.get());
  ASSERT_EQ(r.subtasks.size(), 2u);
  ASSERT_EQ(r.tasks.size(), 1u);
  EXPECT_EQ(Get(t.id()).counts().running(), 2u);
  EXPECT_EQ(Get(t.id()).reconciler(), w);
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace orchard::store_contract
