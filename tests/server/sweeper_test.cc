// Tests of server/sweeper: one SweepOnce expires what is due and wakes the
// waiters, and after a failed write (the store wrapped in a FaultyStore)
// nothing is half-applied and the next sweep does the work. Called directly
// (no thread), with a real SqliteStore in a temp dir and a fake clock.
#include "server/sweeper.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/lifecycle/task.h"
#include "server/store/faulty_store.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/clock.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_steps.h"
#include "tests/testing/temp_dir.h"

namespace orchard::server {
namespace {

namespace pb = ::orchard::v1;
using store::FaultyStore;
using testing::kNow;
using testing::kTtl;
using testing::Ok;
using testing::Spec;

class SweeperTest : public ::testing::Test, public testing::StoreSteps {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("sweeper");
    sqlite_ = Ok(store::SqliteStore::Open({.path = (dir_ / "o.db").string()}));
    faulty_ = std::make_unique<FaultyStore>(sqlite_.get());
    sweeper_ = std::make_unique<Sweeper>(faulty_.get(), &hub_, &clock_, kTtl);
  }
  void TearDown() override {
    sweeper_.reset();
    faulty_.reset();
    sqlite_.reset();
    std::filesystem::remove_all(dir_);
  }
  // The steps write behind the decorator: only the sweeper meets faults.
  store::Store& store() override { return *sqlite_; }
  uint64_t Wakes() { return hub_.generation(Interest::Any()); }

  std::filesystem::path dir_;
  testing::FakeClock clock_ = testing::ClockAtNow();
  Hub hub_;
  std::unique_ptr<store::SqliteStore> sqlite_;
  std::unique_ptr<FaultyStore> faulty_;
  std::unique_ptr<Sweeper> sweeper_;
};

// This test verifies that a sweep whose expiry write fails changes nothing
// (the lease is still held, nobody is woken) and that the next sweep
// expires it and wakes the waiters.
TEST_F(SweeperTest, AFailedExpiryChangesNothingAndTheNextSweepExpires) {
  const pb::Task t = Start(Spec("sum", 0, 10, 1));
  const std::string w = Worker({"sum"});
  ASSERT_EQ(Acquire(w, 1).subtasks.size(), 1u);
  clock_.Set(kNow + kTtl + 1);
  faulty_->Inject({.op = FaultyStore::Op::kExpireLeases});
  const uint64_t wakes = Wakes();
  sweeper_->SweepOnce();
  pb::Subtask s = Subtasks(t.id()).at(0);
  EXPECT_EQ(s.state(), pb::RUNNING);
  EXPECT_EQ(s.worker(), w);
  EXPECT_EQ(Wakes(), wakes) << "a failed sweep woke the waiters";

  sweeper_->SweepOnce();
  s = Subtasks(t.id()).at(0);
  EXPECT_EQ(s.state(), pb::PREPARING);
  EXPECT_EQ(s.worker(), "");
  EXPECT_GT(Wakes(), wakes);
  EXPECT_EQ(History(t.id(), 0).back().event(), "LeaseExpired");
  ExpectCountersMatchSubtasks(t.id());
}

// This test verifies that a failing janitor does not stop the sweep: the
// expired lease is still freed in the same pass, and the janitor's task is
// ended on a later pass.
TEST_F(SweeperTest, AFailingJanitorDoesNotStopTheSweep) {
  const pb::Task run = Start(Spec("sum", 0, 10, 1));
  const std::string w = Worker({"sum"});
  ASSERT_EQ(Acquire(w, 1).subtasks.size(), 1u);
  const pb::Task orphan = Submit(Spec("summ", 0, 10, 1));
  Ok(Transition(orphan.id(), lifecycle::TaskEvent::kCancelRequested));
  clock_.Set(kNow + kTtl + 1);
  faulty_->Inject({.op = FaultyStore::Op::kUnreconciledTasks, .times = FaultyStore::kAlways});
  sweeper_->SweepOnce();
  EXPECT_EQ(Subtasks(run.id()).at(0).state(), pb::PREPARING);
  EXPECT_EQ(Get(orphan.id()).state(), pb::TERMINATING);

  faulty_->Clear();
  clock_.Advance(1000);  // the janitor runs about once a second
  sweeper_->SweepOnce();
  EXPECT_EQ(Get(orphan.id()).state(), pb::TERMINATED);
  EXPECT_EQ(Get(orphan.id()).outcome(), pb::CANCELLED);
}

}  // namespace
}  // namespace orchard::server
