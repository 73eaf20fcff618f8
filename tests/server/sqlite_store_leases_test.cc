// Tests of server/store/sqlite_store_leases.cc beyond the Store contract:
// snapshots read in the reports' own write, counters that stay exact under
// random operations and under many threads' group-committed reports
// (checked with SELECT count(*) on a separate raw connection).
#include "tests/testing/sqlite_store_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/lifecycle/task.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::Outcome;
using orchard::State;
using orchard::lifecycle::TaskEvent;
using orchard::store::AcquireResult;
using orchard::store::TaskTransition;
using namespace orchard::testing;  // NOLINT: the kit (Ok, Spec, kNow, reports)

// The tests read SqliteStore.Xxx; one fixture class for every file of this
// binary (GoogleTest requires one class per suite name).
using SqliteStore = orchard::testing::SqliteStoreTest;

// A Report's snapshots are read in its own write, as a WaitTask would
// answer: each task as the reports left it (the revision of the report's
// commit), with every result once none is active. A task with more results
// than the writer reads in a commit, and ids past the writer's share, are
// left to the caller, whose TaskSnapshot brings them; an unknown task comes
// back empty; a task with work left comes without results.
TEST_F(SqliteStore, ReportReadsItsSnapshotsInItsWrite) {
  using Store = orchard::store::SqliteStore;
  const std::string w = Worker({"sum"});
  const uint32_t big_n = Store::kWriterSnapshotResults + 1;
  pb::Task small = Start(Spec("sum", 0, 20, 2));
  pb::Task big = Start(Spec("sum", 0, 10 * big_n, big_n));
  AcquireResult a = Acquire(w, 2 + big_n);
  ASSERT_EQ(a.subtasks.size(), 2 + big_n);
  pb::Task busy = Start(Spec("sum", 0, 20, 2));
  std::vector<pb::SubtaskReport> reports;
  for (const auto& l : a.subtasks) {
    reports.push_back(Succeeded(l.lease(), "{\"sum\":" + std::to_string(l.lease().subtask_index()) + "}"));
  }
  orchard::store::SnapshotAsk ask{.task_ids = {small.id(), big.id(), "t-nosuchtask", busy.id()},
                                  .results_up_to = 1000};
  while (ask.task_ids.size() <= Store::kWriterSnapshots) ask.task_ids.push_back(small.id());
  std::promise<absl::StatusOr<orchard::store::ReportResult>> got;
  store().ReportAsync(w, reports, kNow + 1, ask,
                      [&got](absl::StatusOr<orchard::store::ReportResult> r) { got.set_value(r); });
  orchard::store::ReportResult r = Ok(got.get_future().get());
  ASSERT_EQ(r.statuses.size(), reports.size());
  for (const auto& st : r.statuses) EXPECT_TRUE(st.ok()) << st;
  ASSERT_EQ(r.snapshots.size(), ask.task_ids.size());

  ASSERT_TRUE(r.snapshots[0].has_value());
  const pb::WaitTaskResponse& snap = *r.snapshots[0];
  EXPECT_EQ(snap.task().id(), small.id());
  EXPECT_GT(snap.task().revision(), small.revision());
  EXPECT_EQ(snap.task().revision(), Ok(store().GetTask(small.id())).revision());
  EXPECT_EQ(snap.task().counts().succeeded(), 2u);
  ASSERT_TRUE(snap.results_complete());
  ASSERT_EQ(snap.results_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(snap.results(i).index(), static_cast<uint64_t>(i));
    EXPECT_EQ(snap.results(i).result_json(), "{\"sum\":" + std::to_string(i) + "}");
  }
  EXPECT_FALSE(r.snapshots[1].has_value()) << "65 results: the caller's to read";
  ASSERT_TRUE(r.snapshots[2].has_value());
  EXPECT_FALSE(r.snapshots[2]->has_task());
  ASSERT_TRUE(r.snapshots[3].has_value());
  EXPECT_EQ(r.snapshots[3]->task().counts().preparing(), 2u);
  EXPECT_FALSE(r.snapshots[3]->results_complete());
  EXPECT_EQ(r.snapshots[3]->results_size(), 0);
  EXPECT_TRUE(r.snapshots[Store::kWriterSnapshots - 1].has_value());
  EXPECT_FALSE(r.snapshots[Store::kWriterSnapshots].has_value());

  // The caller's read: every result when asked for as many, none for fewer.
  pb::WaitTaskResponse all = Ok(store().TaskSnapshot(big.id(), big_n));
  ASSERT_TRUE(all.results_complete());
  ASSERT_EQ(all.results_size(), static_cast<int>(big_n));
  EXPECT_EQ(all.results(big_n - 1).result_json(), "{\"sum\":" + std::to_string(big_n - 1) + "}");
  pb::WaitTaskResponse fewer = Ok(store().TaskSnapshot(big.id(), big_n - 1));
  EXPECT_FALSE(fewer.results_complete());
  EXPECT_EQ(fewer.results_size(), 0);
  EXPECT_EQ(fewer.task().counts().succeeded(), big_n);
  EXPECT_TRUE(absl::IsNotFound(store().TaskSnapshot("t-nosuchtask", 10).status()));
}

// This test verifies that after a long random sequence of operations (acquire,
// each kind of report, heartbeat, expiry, cancel and stop) on several tasks,
// every counter equals the real count of rows, and every subtask's history is
// a path through the table.
TEST_F(SqliteStore, CountersMatchRealCountsAfterRandomOperations) {
  std::mt19937 rng(12345);
  std::vector<std::string> tasks;
  for (int i = 0; i < 4; ++i) {
    pb::TaskSpec s = Spec("sum", 0, 1000, 37 + i);
    s.mutable_policy()->set_max_attempts(1 + i);
    s.mutable_policy()->set_parallelism(i == 0 ? 5 : 0);
    s.mutable_policy()->set_backoff_initial_ms(10);
    s.mutable_policy()->set_backoff_max_ms(50);
    tasks.push_back(Start(s).id());
  }
  std::vector<std::string> workers = {Worker({"sum"}), Worker({"sum"})};
  std::vector<std::pair<std::string, pb::LeaseRef>> held;
  int64_t now = kNow;
  for (int step = 0; step < 400; ++step) {
    now += 1 + rng() % 400;
    const std::string& w = workers[rng() % workers.size()];
    switch (rng() % 7) {
      case 0:
      case 1: {
        for (auto& l : Acquire(w, 1 + rng() % 6, now).subtasks) held.emplace_back(w, l.lease());
        break;
      }
      case 2:
      case 3:
      case 4: {
        if (held.empty()) break;
        size_t k = rng() % held.size();
        auto [holder, lease] = held[k];
        held.erase(held.begin() + static_cast<long>(k));
        // Sometimes the wrong worker or a stale epoch: must be refused harmlessly.
        std::string who = rng() % 10 == 0 ? workers[0] : holder;
        pb::SubtaskReport r;
        switch (rng() % 4) {
          case 0:
            r = Failed(lease);
            break;
          case 1:
            r = FailedPermanently(lease);
            break;
          case 2:
            r = Stopped(lease);
            break;
          default:
            r = Succeeded(lease);
            break;
        }
        (void)ReportOne(who, r, now);
        break;
      }
      case 5:
        (void)store().ExpireLeases(now - 2 * kTtl + static_cast<int64_t>(rng() % kTtl), 60'000);
        break;
      case 6: {
        const std::string& id = tasks[rng() % tasks.size()];
        if (Get(id).state() == pb::RUNNING && rng() % 4 == 0) {
          Ok(Transition(id, TaskEvent::kCancelRequested, now));
          Ok(store().StopSubtasks(id, "", 0, "", now));
        }
        break;
      }
    }
  }
  for (const auto& id : tasks) {
    ExpectCountersMatchRows(id);
    ExpectSubtaskHistoryIsLegal(id);
  }
}

// This test verifies that concurrent reports from many threads (folded into
// group commits) are all applied exactly once: the counters end exact.
TEST_F(SqliteStore, GroupCommitFromManyThreadsKeepsExactCounters) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  constexpr int kTotal = kThreads * kPerThread;
  pb::Task t = Start(Spec("sum", 0, kTotal * 10, kTotal));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, kTotal);
  ASSERT_EQ(a.subtasks.size(), static_cast<size_t>(kTotal));
  std::atomic<int> failures{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kPerThread; ++j) {
        const auto& l = a.subtasks[static_cast<size_t>(i * kPerThread + j)];
        auto r = store().Report(w, {Succeeded(l.lease(), "{}")}, kNow + 1);
        if (!r.ok() || !(*r)[0].ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] %d reports from %d threads in %.3f s: %.0f reports/s\n", kTotal,
              kThreads, secs, kTotal / secs);
  EXPECT_EQ(failures.load(), 0);
  pb::Task done = Get(t.id());
  EXPECT_EQ(done.counts().succeeded(), static_cast<uint64_t>(kTotal));
  EXPECT_EQ(done.counts().running(), 0u);
  EXPECT_EQ(done.counts().items_done(), static_cast<uint64_t>(kTotal * 10));
  ExpectCountersMatchRows(t.id());
  EXPECT_EQ(Count("SELECT count(*) FROM history WHERE event = 'Succeeded'"), kTotal);
}

// This test verifies the same with reports batched as workers send them (ten
// per call): each call is one write op with a savepoint per report.
TEST_F(SqliteStore, GroupCommitOfBatchedReportsKeepsExactCounters) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 100;
  constexpr int kPerCall = 10;
  constexpr int kTotal = kThreads * kCalls * kPerCall;
  pb::Task t = Start(Spec("sum", 0, kTotal, kTotal));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, kTotal);
  ASSERT_EQ(a.subtasks.size(), static_cast<size_t>(kTotal));
  std::atomic<int> failures{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int c = 0; c < kCalls; ++c) {
        std::vector<pb::SubtaskReport> reports;
        for (int k = 0; k < kPerCall; ++k) {
          reports.push_back(
              Succeeded(a.subtasks[static_cast<size_t>((i * kCalls + c) * kPerCall + k)].lease()));
        }
        auto r = store().Report(w, reports, kNow + 1);
        if (!r.ok()) {
          failures += kPerCall;
          continue;
        }
        for (const auto& s : *r) failures += s.ok() ? 0 : 1;
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] %d reports, %d per call, from %d threads in %.3f s: %.0f reports/s\n",
              kTotal, kPerCall, kThreads, secs, kTotal / secs);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Get(t.id()).counts().succeeded(), static_cast<uint64_t>(kTotal));
  ExpectCountersMatchRows(t.id());
}

}  // namespace
