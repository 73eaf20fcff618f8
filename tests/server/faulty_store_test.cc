// Tests of server/store/faulty_store: the decorator fails exactly the calls
// it was told to (the nth write, one method, once or always, with the given
// status), a call refused before the store writes nothing (read back after
// the failure), a call failed after the store wrote what it would have, and
// the non-blocking forms answer once. A real SqliteStore underneath.
#include "server/store/faulty_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/store_steps.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::lifecycle::TaskEvent;
using orchard::store::FaultyStore;
using orchard::store::TaskFilter;
using Op = orchard::store::FaultyStore::Op;
using When = orchard::store::FaultyStore::When;
using namespace orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// A SqliteStore in a temp dir, the kit's steps run through the decorator,
// and sqlite() to read behind its back.
class FaultyStoreTest : public ::testing::Test, public StoreSteps {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("faulty");
    sqlite_ = Ok(orchard::store::SqliteStore::Open({.path = (dir_ / "orchard.db").string()}));
    faulty_ = std::make_unique<FaultyStore>(sqlite_.get());
  }
  void TearDown() override {
    faulty_.reset();
    sqlite_.reset();
    std::filesystem::remove_all(dir_);
  }
  orchard::store::Store& store() override { return *faulty_; }
  orchard::store::SqliteStore& sqlite() { return *sqlite_; }
  size_t Tasks() { return Ok(sqlite().ListTasks(TaskFilter{.page_size = 1000})).tasks.size(); }

  std::filesystem::path dir_;
  std::unique_ptr<orchard::store::SqliteStore> sqlite_;
  std::unique_ptr<FaultyStore> faulty_;
};

// This test verifies that with no fault armed every call goes through.
TEST_F(FaultyStoreTest, WithoutFaultsEveryCallGoesThrough) {
  const pb::Task t = Start(Spec("sum", 0, 10, 2));
  const std::string w = Worker({"sum"});
  Ok(ReportOne(w, Succeeded(Acquire(w, 1).subtasks.at(0).lease())));
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 1u);
  EXPECT_EQ(faulty_->Injected(), 0);
  EXPECT_EQ(faulty_->Calls(Op::kCreateTask), 1);
  EXPECT_EQ(faulty_->Calls(Op::kAnyWrite), 5);  // create, plan, register, acquire, report
}

// This test verifies that the nth write fails, with the status asked for,
// once: the writes before and after it go through, and the failed one
// wrote nothing.
TEST_F(FaultyStoreTest, TheNthWriteFailsOnceAndWritesNothing) {
  faulty_->Inject({.op = Op::kAnyWrite,
                   .nth = 3,
                   .status = absl::ResourceExhaustedError("disk full")});
  Submit(Spec("sum", 0, 10, 1));
  (void)store().GetTask("t-nope");  // a read: not counted
  Submit(Spec("sum", 0, 10, 1));
  auto third = store().CreateTask(Spec("sum", 0, 10, 1), kNow);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(third.status().message(), "disk full");
  EXPECT_EQ(Tasks(), 2u) << "a write refused before the store must write nothing";
  Submit(Spec("sum", 0, 10, 1));
  EXPECT_EQ(Tasks(), 3u);
  EXPECT_EQ(faulty_->Injected(), 1);
}

// This test verifies that a fault on one method leaves the others alone,
// and that kAlways fails that method until the fault is cleared.
TEST_F(FaultyStoreTest, AMethodFaultFailsOnlyThatMethodUntilCleared) {
  const pb::Task t = Submit(Spec("sum", 0, 10, 1));
  faulty_->Inject({.op = Op::kTransitionTask, .times = FaultyStore::kAlways});
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(absl::IsUnavailable(Transition(t.id(), TaskEvent::kCancelRequested).status()));
  }
  Submit(Spec("sum", 0, 10, 1));  // another method
  const pb::Task same = Get(t.id());
  EXPECT_EQ(same.state(), pb::PREPARING);
  EXPECT_EQ(same.version(), t.version());
  EXPECT_EQ(History(t.id(), -1).size(), 1u) << "no history row for a refused write";
  faulty_->Clear();
  EXPECT_EQ(Ok(Transition(t.id(), TaskEvent::kCancelRequested)).state(), pb::TERMINATING);
  EXPECT_EQ(faulty_->Injected(), 3);
}

// This test verifies that a fault after the call lets the write commit and
// loses its answer: the caller is told it failed, a read finds it done.
TEST_F(FaultyStoreTest, AFaultAfterTheCallCommitsAndLosesTheAnswer) {
  const pb::Task t = Submit(Spec("sum", 0, 10, 1));
  faulty_->Inject({.op = Op::kTransitionTask, .when = When::kAfter});
  EXPECT_TRUE(absl::IsUnavailable(Transition(t.id(), TaskEvent::kCancelRequested).status()));
  EXPECT_EQ(Get(t.id()).state(), pb::TERMINATING);
  // The caller's retry meets the write it was told failed.
  EXPECT_EQ(Transition(t.id(), TaskEvent::kCancelRequested).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// This test verifies that a failed batch of transitions fails every item
// and writes none of them.
TEST_F(FaultyStoreTest, AFailedBatchFailsEveryItem) {
  const pb::Task a = Submit(Spec("sum", 0, 10, 1));
  const pb::Task b = Submit(Spec("sum", 0, 10, 1));
  faulty_->Inject({.op = Op::kTransitionTasks});
  std::vector<orchard::store::TaskTransition> ts(2);
  ts[0] = {.task_id = a.id(), .event = TaskEvent::kCancelRequested};
  ts[1] = {.task_id = b.id(), .event = TaskEvent::kCancelRequested};
  auto r = store().TransitionTasks(ts, kNow);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(absl::IsUnavailable(r[0].status()));
  EXPECT_TRUE(absl::IsUnavailable(r[1].status()));
  EXPECT_EQ(Get(a.id()).state(), pb::PREPARING);
  EXPECT_EQ(Get(b.id()).state(), pb::PREPARING);
}

// This test verifies that the non-blocking forms count as their method and
// answer exactly once, both when refused and when failed after the write.
TEST_F(FaultyStoreTest, AsyncFormsAnswerOnceWhenFailed) {
  for (When when : {When::kBefore, When::kAfter}) {
    SCOPED_TRACE(when == When::kBefore ? "before" : "after");
    const size_t before = Tasks();
    faulty_->Inject({.op = Op::kCreateTask, .when = when});
    std::promise<absl::Status> got;
    std::atomic<int> calls{0};
    store().CreateTaskAsync(Spec("sum", 0, 10, 1), kNow, [&](auto r) {
      if (++calls == 1) got.set_value(r.status());
    });
    auto f = got.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_TRUE(absl::IsUnavailable(f.get()));
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(Tasks(), before + (when == When::kAfter ? 1 : 0));
  }
}

// This test verifies that a failed report changes nothing: the lease is
// still held, and the same report succeeds afterwards.
TEST_F(FaultyStoreTest, AFailedReportChangesNothing) {
  const pb::Task t = Start(Spec("sum", 0, 10, 1));
  const std::string w = Worker({"sum"});
  const pb::LeaseRef lease = Acquire(w, 1).subtasks.at(0).lease();
  faulty_->Inject({.op = Op::kReport});
  EXPECT_TRUE(absl::IsUnavailable(store().Report(w, {Succeeded(lease, "r")}, kNow).status()));
  const pb::Subtask s = Subtasks(t.id()).at(0);
  EXPECT_EQ(s.state(), pb::RUNNING);
  EXPECT_EQ(s.worker(), w);
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 0u);
  Ok(ReportOne(w, Succeeded(lease, "r")));
  EXPECT_EQ(Subtasks(t.id()).at(0).result_json(), "r");
}

}  // namespace
