// The Store contract (store_contract.h): reports of finished attempts.
// Success stores the result once, failure backs off or ends in Error, a
// zombie's late report is refused and never counted, each report of a
// batch stands on its own.
#include "tests/server/store_contract/store_contract.h"

#include <gtest/gtest.h>

#include <future>
#include <atomic>
#include <chrono>
#include <utility>
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

// This test verifies that a success stores the result and counts the items.
TEST_P(StoreContract, ReportSuccessStoresResultAndCountsItems) {
  pb::Task t = Start(Spec("sum", 0, 100, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  uint64_t v_before = Get(t.id()).version();
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), R"({"sum":300})"), kNow + 7));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::TERMINATED);
  EXPECT_EQ(s.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(s.result_json(), R"({"sum":300})");
  EXPECT_EQ(s.worker(), "");
  EXPECT_EQ(s.update_time_ms(), kNow + 7);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.counts().succeeded(), 1u);
  EXPECT_EQ(after.counts().items_done(), 25u);
  EXPECT_EQ(after.version(), v_before) << "counter changes must not bump the version";
  ExpectCountersMatchSubtasks(t.id());
  // The same report again (a retried RPC) is refused and counted once.
  EXPECT_EQ(ReportOne(w, Succeeded(a.subtasks[0].lease())).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(t.id()).counts().items_done(), 25u);
}

// This test verifies that a failure with attempts left goes back to Preparing
// with a backoff within the policy's ceiling, keeping the error.
TEST_P(StoreContract, ReportFailureWithAttemptsLeftBacksOff) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_backoff_initial_ms(1000);
  spec.mutable_policy()->set_backoff_max_ms(1000);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease(), "disk on fire")));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::PREPARING);
  EXPECT_EQ(s.error(), "disk on fire");
  EXPECT_GE(s.not_before_ms(), kNow);
  EXPECT_LE(s.not_before_ms(), kNow + 1000);
  EXPECT_EQ(s.attempt(), 1u);
  auto h = History(t.id(), 0);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].event(), "Failed");
  EXPECT_NE(h[1].reason().find("disk on fire"), std::string::npos);
  EXPECT_NE(h[1].reason().find("retry in"), std::string::npos);
  EXPECT_EQ(h[1].actor(), w);
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that the failure of the last allowed attempt, or a
// permanent failure, ends in Error with outcome FAILED.
TEST_P(StoreContract, ReportFailureWithAttemptsSpentGoesToError) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 2);
  spec.mutable_policy()->set_max_attempts(2);
  spec.mutable_policy()->set_backoff_initial_ms(1);
  spec.mutable_policy()->set_backoff_max_ms(1);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  ASSERT_EQ(a.subtasks.size(), 2u);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease())));
  Ok(ReportOne(w, FailedPermanently(a.subtasks[1].lease(), "bad params")));
  AcquireResult b = Acquire(w, 2, kNow + 10);
  ASSERT_EQ(b.subtasks.size(), 1u);
  EXPECT_EQ(b.subtasks[0].attempt(), 2u);
  Ok(ReportOne(w, Failed(b.subtasks[0].lease(), "again"), kNow + 10));
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::ERROR);
  EXPECT_EQ(subs[0].outcome(), pb::FAILED);
  EXPECT_EQ(subs[0].error(), "again");
  EXPECT_EQ(subs[1].state(), pb::ERROR);
  EXPECT_EQ(subs[1].error(), "bad params");
  EXPECT_EQ(Get(t.id()).counts().error(), 2u);
  ExpectCountersMatchSubtasks(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that a zombie (a worker whose lease expired and was
// handed on) cannot complete the subtask: its report is refused and its
// result never counted; the current holder's report is.
TEST_P(StoreContract, ZombieCompletionWithStaleEpochIsRefusedAndNotCounted) {
  pb::Task t = Start(Spec("sum", 0, 10, 1));
  std::string zombie = Worker({"sum"});
  std::string w2 = Worker({"sum"});
  AcquireResult a = Acquire(zombie, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 1u);
  // Expired but not yet handed on: refused too (the sweeper took it back).
  absl::Status early = ReportOne(zombie, Succeeded(a.subtasks[0].lease()), kNow + kTtl + 2);
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  AcquireResult b = Acquire(w2, 1, kNow + 10 * 60'000);
  ASSERT_EQ(b.subtasks.size(), 1u);
  EXPECT_EQ(b.subtasks[0].lease().epoch(), 2u);
  absl::Status late = ReportOne(zombie, Succeeded(a.subtasks[0].lease(), "zombie"));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(late.message().find("lease epoch 1 is stale (now 2)"), std::string::npos) << late;
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 0u);
  // A zombie that guesses the new epoch is still not the holder.
  EXPECT_EQ(ReportOne(zombie, Succeeded(b.subtasks[0].lease())).code(),
            absl::StatusCode::kFailedPrecondition);
  Ok(ReportOne(w2, Succeeded(b.subtasks[0].lease(), "real")));
  EXPECT_EQ(Subtasks(t.id())[0].result_json(), "real");
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 1u);
  EXPECT_EQ(Get(t.id()).counts().items_done(), 10u);
}

// This test verifies that one Report call applies each report on its own:
// a refused one does not undo the others.
TEST_P(StoreContract, ReportAppliesEachReportOnItsOwn) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  pb::LeaseRef stale = a.subtasks[1].lease();
  stale.set_epoch(9);
  auto res = Ok(store().Report(
      w, {Succeeded(a.subtasks[0].lease()), Succeeded(stale), Stopped(a.subtasks[2].lease())},
      kNow));
  ASSERT_EQ(res.size(), 3u);
  EXPECT_TRUE(res[0].ok());
  EXPECT_EQ(res[1].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(res[2].code(), absl::StatusCode::kFailedPrecondition) << "Running cannot take Stopped";
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 1u);
  EXPECT_EQ(Get(t.id()).counts().running(), 2u);
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that a report naming a subtask that does not exist, or
// carrying no outcome, is refused on its own.
TEST_P(StoreContract, MalformedReportsAreRefused) {
  pb::Task t = Start(Spec("sum", 0, 10, 1));
  std::string w = Worker({"sum"});
  pb::LeaseRef ref;
  ref.set_task_id(t.id());
  ref.set_subtask_index(5);
  ref.set_epoch(1);
  EXPECT_EQ(ReportOne(w, Succeeded(ref)).code(), absl::StatusCode::kNotFound);
  pb::SubtaskReport empty;
  *empty.mutable_lease() = ref;
  EXPECT_EQ(ReportOne(w, empty).code(), absl::StatusCode::kInvalidArgument);
}

// This test verifies TaskSnapshot, the read a WaitTask answers from: every
// result by index once no subtask is active and there are at most
// results_up_to of them, none before that or beyond, NOT_FOUND for an
// unknown task.
TEST_P(StoreContract, TaskSnapshotHasEveryResultOnceNoneIsActive) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  const std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  ASSERT_EQ(a.subtasks.size(), 3u);
  auto result = [](const pb::SubtaskLease& l) {
    return "r" + std::to_string(l.lease().subtask_index());
  };
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), result(a.subtasks[0]))));
  Ok(ReportOne(w, Succeeded(a.subtasks[2].lease(), result(a.subtasks[2]))));
  const Snapshot busy = Ok(store().TaskSnapshot(t.id(), 10));
  EXPECT_EQ(SnapshotTask(busy).counts().succeeded(), 2u);
  EXPECT_FALSE(SnapshotComplete(busy));
  EXPECT_TRUE(SnapshotResults(busy).empty()) << "results come only once none is active";

  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease(), result(a.subtasks[1]))));
  const Snapshot done = Ok(store().TaskSnapshot(t.id(), 3));
  EXPECT_TRUE(SnapshotComplete(done));
  EXPECT_EQ(SnapshotResults(done),
            (std::vector<std::pair<uint64_t, std::string>>{{0, "r0"}, {1, "r1"}, {2, "r2"}}));
  EXPECT_EQ(SnapshotTask(done).revision(), Get(t.id()).revision());
  const Snapshot fewer = Ok(store().TaskSnapshot(t.id(), 2));
  EXPECT_FALSE(SnapshotComplete(fewer));
  EXPECT_TRUE(SnapshotResults(fewer).empty());
  EXPECT_TRUE(absl::IsNotFound(store().TaskSnapshot("t-nosuchtask", 10).status()));
}

// This test verifies the non-blocking Report: `done` runs once, with a
// status per report in order and a snapshot slot per asked id; a snapshot
// the store fills in is the task as the reports left it, and an unknown
// task's is empty (a store may leave any slot to the caller).
TEST_P(StoreContract, ReportAsyncAnswersOnceWithStatusesAndSnapshots) {
  pb::Task t = Start(Spec("sum", 0, 20, 2));
  const std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  ASSERT_EQ(a.subtasks.size(), 2u);
  pb::LeaseRef stale = a.subtasks[1].lease();
  stale.set_epoch(9);
  std::promise<absl::StatusOr<orchard::store::ReportResult>> got;
  std::atomic<int> calls{0};
  store().ReportAsync(w, {Succeeded(a.subtasks[0].lease(), "r"), Succeeded(stale)}, kNow + 1,
                      orchard::store::SnapshotAsk{.task_ids = {t.id(), "t-nosuchtask"},
                                                  .results_up_to = 10},
                      [&](absl::StatusOr<orchard::store::ReportResult> r) {
                        if (++calls == 1) got.set_value(std::move(r));
                      });
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  orchard::store::ReportResult r = Ok(future.get());
  ASSERT_EQ(r.statuses.size(), 2u);
  EXPECT_TRUE(r.statuses[0].ok()) << r.statuses[0];
  EXPECT_EQ(r.statuses[1].code(), absl::StatusCode::kFailedPrecondition) << r.statuses[1];
  ASSERT_EQ(r.snapshots.size(), 2u);
  const pb::Task now = Get(t.id());
  EXPECT_EQ(now.counts().succeeded(), 1u);
  if (r.snapshots[0].has_value()) {
    EXPECT_EQ(SnapshotTask(*r.snapshots[0]).revision(), now.revision());
    EXPECT_EQ(SnapshotTask(*r.snapshots[0]).counts().succeeded(), 1u);
    EXPECT_FALSE(SnapshotComplete(*r.snapshots[0])) << "subtask 1 still runs";
  }
  if (r.snapshots[1].has_value()) EXPECT_FALSE(SnapshotHasTask(*r.snapshots[1]));
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace orchard::store_contract
