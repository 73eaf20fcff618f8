// The Hub wakes a long poll when a change concerns it, and only then: a
// reconciler parked on its task sleeps through other tasks' commits.
#include "server/hub.h"

#include <chrono>
#include <future>

#include <gtest/gtest.h>

#include "common/clock.h"

namespace orchard::server {
namespace {

using namespace std::chrono_literals;

// Parks a waiter for `interest` (seen = the current generation) with a
// deadline `ms` from now; the future holds what it was woken with.
std::future<bool> Park(Hub& hub, const Interest& interest, int64_t ms) {
  auto done = std::make_shared<std::promise<bool>>();
  auto f = done->get_future();
  hub.Wait(interest, hub.generation(interest), SystemClock::Get()->NowMs() + ms,
           [done](bool woken) { done->set_value(woken); });
  return f;
}

TEST(HubTest, TaskWaiterIsWokenByItsTaskOnly) {
  Hub hub;
  auto mine = Park(hub, Interest::Task("t-1"), 60'000);
  auto other = Park(hub, Interest::Task("t-2"), 300);
  hub.NotifyTask("t-1", NewWork::kNone);
  ASSERT_EQ(mine.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(mine.get());
  // t-2's waiter saw t-1's notification go by and timed out.
  ASSERT_EQ(other.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(other.get());
}

TEST(HubTest, WorkWaiterIsWokenOnlyByNewWork) {
  Hub hub;
  auto quiet = Park(hub, Interest::Work(), 300);
  hub.NotifyTask("t-1", NewWork::kNone);
  ASSERT_EQ(quiet.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(quiet.get());

  for (NewWork w : {NewWork::kTasks, NewWork::kSubtasks, NewWork::kBoth}) {
    auto woken = Park(hub, Interest::Work(), 60'000);
    hub.NotifyTask("t-1", w);
    ASSERT_EQ(woken.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(woken.get()) << static_cast<int>(w);
  }
}

// An Acquire for subtasks sleeps through new tasks, and one for tasks
// through new subtasks: each kind of new work wakes only its own pollers.
TEST(HubTest, TaskAndSubtaskPollersAreWokenOnlyByTheirKindOfWork) {
  Hub hub;
  auto subtask_poller = Park(hub, Interest::SubtaskWork(), 300);
  auto task_poller = Park(hub, Interest::TaskWork(), 60'000);
  hub.NotifyTask("t-1", NewWork::kTasks);  // a submit
  ASSERT_EQ(task_poller.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(task_poller.get());
  ASSERT_EQ(subtask_poller.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(subtask_poller.get()) << "woken by a new task";

  subtask_poller = Park(hub, Interest::SubtaskWork(), 60'000);
  task_poller = Park(hub, Interest::TaskWork(), 300);
  hub.NotifyTask("t-1", NewWork::kSubtasks);  // a plan
  ASSERT_EQ(subtask_poller.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(subtask_poller.get());
  ASSERT_EQ(task_poller.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(task_poller.get()) << "woken by new subtasks";

  subtask_poller = Park(hub, Interest::SubtaskWork(), 60'000);
  task_poller = Park(hub, Interest::TaskWork(), 60'000);
  hub.NotifyTask("t-1", NewWork::kBoth);  // a retry
  ASSERT_EQ(subtask_poller.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(task_poller.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(subtask_poller.get());
  EXPECT_TRUE(task_poller.get());
}

TEST(HubTest, AnyWaiterAndEveryWaiterWake) {
  Hub hub;
  auto any = Park(hub, Interest::Any(), 60'000);
  hub.NotifyTask("t-9", NewWork::kNone);
  ASSERT_EQ(any.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(any.get());

  auto task = Park(hub, Interest::Task("t-3"), 60'000);
  auto work = Park(hub, Interest::Work(), 60'000);
  hub.Notify();  // reach unknown: everyone looks again
  ASSERT_EQ(task.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(work.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(task.get());
  EXPECT_TRUE(work.get());
}

// A change between the waiter's look at the store and its Wait() is not
// lost: a stale generation wakes it at once.
TEST(HubTest, ChangeBeforeTheWaitWakesAtOnce) {
  Hub hub;
  const Interest t = Interest::Task("t-1");
  uint64_t seen = hub.generation(t);
  hub.NotifyTask("t-1", NewWork::kNone);
  std::promise<bool> done;
  hub.Wait(t, seen, SystemClock::Get()->NowMs() + 60'000, [&](bool w) { done.set_value(w); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

// A woken long poll looks at the store and parks again, often from inside
// its wake-up: the hub must not hold its lock while it calls waiters.
TEST(HubTest, WaiterMayParkAgainFromItsWakeUp) {
  Hub hub;
  const Interest t = Interest::Task("t-1");
  std::promise<void> parked_again;
  std::promise<bool> second;
  hub.Wait(t, hub.generation(t), SystemClock::Get()->NowMs() + 60'000, [&](bool) {
    hub.Wait(t, hub.generation(t), SystemClock::Get()->NowMs() + 60'000,
             [&](bool w) { second.set_value(w); });
    parked_again.set_value();
  });
  hub.NotifyTask("t-1", NewWork::kNone);  // wakes the first, which parks the second
  ASSERT_EQ(parked_again.get_future().wait_for(10s), std::future_status::ready);
  hub.NotifyTask("t-1", NewWork::kNone);  // wakes the second
  auto f = second.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

TEST(HubTest, ShutdownWakesEveryoneWithFalse) {
  Hub hub;
  auto task = Park(hub, Interest::Task("t-1"), 60'000);
  auto work = Park(hub, Interest::Work(), 60'000);
  hub.Shutdown();
  ASSERT_EQ(task.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(work.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(task.get());
  EXPECT_FALSE(work.get());
}

}  // namespace
}  // namespace orchard::server
