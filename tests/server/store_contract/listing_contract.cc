// The Store contract (store_contract.h): the reads. Lists in their order
// with filters and pages that give every row once, history oldest first,
// workers and live kinds, and the operators' and the janitor's reads.
#include "tests/server/store_contract/store_contract.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// This test verifies ListTasks: newest first, filters by state, kind and
// labels, and pages that together give every task once.
TEST_P(StoreContract, ListTasksNewestFirstWithFiltersAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    pb::TaskSpec s = Spec(i % 2 == 0 ? "even" : "odd", 0, 10, 1);
    (*s.mutable_labels())["team"] = i % 3 == 0 ? "a" : "b";
    (*s.mutable_labels())["env"] = "prod";
    ids.push_back(Submit(s, kNow + i).id());
  }
  Ok(Transition(ids[24], TaskEvent::kCancelRequested));
  TaskFilter f;
  f.page_size = 10;
  std::vector<std::string> seen;
  int pages = 0;
  do {
    auto page = Ok(store().ListTasks(f));
    for (const auto& t : page.tasks) seen.push_back(t.id());
    f.page_token = page.next_page_token;
    ++pages;
  } while (!f.page_token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), ids[24]);
  EXPECT_EQ(seen.back(), ids[0]);

  TaskFilter by_kind;
  by_kind.kind = "even";
  by_kind.labels = {{"team", "a"}, {"env", "prod"}};
  auto page = Ok(store().ListTasks(by_kind));
  // even and multiple of 3: 0, 6, 12, 18, 24
  ASSERT_EQ(page.tasks.size(), 5u);
  EXPECT_EQ(page.tasks[0].id(), ids[24]);
  TaskFilter by_state;
  by_state.states = {State::kTerminating};
  page = Ok(store().ListTasks(by_state));
  ASSERT_EQ(page.tasks.size(), 1u);
  EXPECT_EQ(page.tasks[0].id(), ids[24]);
  TaskFilter bad;
  bad.page_token = "garbage";
  EXPECT_EQ(store().ListTasks(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// This test verifies ListSubtasks (by index, state filter, pages) and
// GetHistory (oldest first, per subtask or task, pages).
TEST_P(StoreContract, ListSubtasksAndHistoryPage) {
  pb::Task t = Start(Spec("sum", 0, 25, 25));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 5);
  SubtaskFilter f;
  f.task_id = t.id();
  f.page_size = 10;
  std::vector<uint64_t> seen;
  do {
    auto page = Ok(store().ListSubtasks(f));
    for (const auto& s : page.subtasks) seen.push_back(s.index());
    f.page_token = page.next_page_token;
  } while (!f.page_token.empty());
  ASSERT_EQ(seen.size(), 25u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  SubtaskFilter running;
  running.task_id = t.id();
  running.states = {State::kRunning};
  EXPECT_EQ(Ok(store().ListSubtasks(running)).subtasks.size(), 5u);
  SubtaskFilter missing;
  missing.task_id = "t-missing";
  EXPECT_EQ(store().ListSubtasks(missing).status().code(), absl::StatusCode::kNotFound);

  HistoryFilter h;
  h.task_id = t.id();
  h.page_size = 3;
  std::vector<std::string> events;
  do {
    auto page = Ok(store().GetHistory(h));
    EXPECT_LE(page.entries.size(), 3u);
    for (const auto& e : page.entries) events.push_back(e.event());
    h.page_token = page.next_page_token;
  } while (!h.page_token.empty());
  ASSERT_EQ(events.size(), 7u);  // Created, Planned, 5 x Leased
  EXPECT_EQ(events[0], "Created");
  EXPECT_EQ(events[1], "Planned");
  EXPECT_EQ(events[6], "Leased");
  auto one = History(t.id(), 3);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].subtask_index(), 3);
  EXPECT_EQ(one[0].attempt(), 1u);
  EXPECT_EQ(one[0].actor(), w);
}

// This test verifies worker registration, listing, live kinds and that
// deregistering frees its reconcile leases.
TEST_P(StoreContract, WorkersRegisterListAndLiveKinds) {
  std::string w1 = Ok(store().RegisterWorker("n1", {"sum", "noop"}, 4, kNow));
  std::string w2 = Ok(store().RegisterWorker("n2", {"exec"}, 2, kNow - 120'000));
  EXPECT_EQ(w1.rfind("w-", 0), 0u);
  auto workers = Ok(store().ListWorkers(kNow, 30'000));
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[1].id(), w1);
  EXPECT_TRUE(workers[1].alive());
  EXPECT_FALSE(workers[0].alive());
  EXPECT_EQ(workers[1].kinds_size(), 2);
  EXPECT_EQ(workers[1].slots(), 4u);
  EXPECT_EQ(Ok(store().LiveKinds(kNow, 30'000)), (std::vector<std::string>{"noop", "sum"}));

  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  ASSERT_EQ(Acquire(w1, 0, kNow, 1).tasks.size(), 1u);
  Ok(store().DeregisterWorker(w1, kNow));
  Ok(store().DeregisterWorker(w1, kNow));  // idempotent
  EXPECT_EQ(Get(t.id()).reconciler(), "");
  EXPECT_EQ(Ok(store().ListWorkers(kNow, 30'000)).size(), 1u);
  EXPECT_TRUE(Ok(store().LiveKinds(kNow, 30'000)).empty());
  Ok(store().Ping());
}

// This test verifies that UnreconciledTasks answers the tasks no reconciler
// can move on (not terminal, of a kind no live worker runs, no reconcile
// lease held, nothing Running or Terminating), in id order, paged by
// after_id and limit, and none once a worker of their kind is live.
TEST_P(StoreContract, UnreconciledTasksAreTheOnesNoWorkerCanMove) {
  constexpr int64_t kWindow = 30'000;
  const int64_t long_ago = kNow - 10 * kWindow;
  // A worker of "sum" that leased a subtask long ago and fell silent: its
  // task has a subtask Running, so the janitor must leave it alone.
  const std::string gone = Ok(store().RegisterWorker("gone", {"sum"}, 4, long_ago));
  Start(Spec("sum", 0, 10, 1), long_ago);
  ASSERT_EQ(Ok(store().Acquire(gone, 1, 0, long_ago, kTtl)).subtasks.size(), 1u);
  std::vector<std::string> waiting;
  for (int i = 0; i < 5; ++i) waiting.push_back(Submit(Spec("sum", 0, 10, 1)).id());
  const pb::Task ended = Submit(Spec("sum", 0, 10, 1));
  Ok(Transition(ended.id(), TaskEvent::kInvalid));
  Worker({"exec"});
  Submit(Spec("exec", 0, 10, 1));  // a live worker runs "exec"
  std::sort(waiting.begin(), waiting.end());

  std::vector<std::string> got;
  std::string after;
  int pages = 0;
  while (true) {
    std::vector<pb::Task> page = Ok(store().UnreconciledTasks(kNow, kWindow, after, 2));
    for (const pb::Task& t : page) got.push_back(t.id());
    ++pages;
    if (page.size() < 2) break;
    after = page.back().id();
  }
  EXPECT_EQ(got, waiting);
  EXPECT_EQ(pages, 3);

  Worker({"sum"});
  EXPECT_TRUE(Ok(store().UnreconciledTasks(kNow, kWindow, "", 100)).empty());
}

// This test verifies that CountByState counts tasks per state and sums their
// subtask counters per state.
TEST_P(StoreContract, CountByStateSumsTasksAndSubtaskCounters) {
  Start(Spec("sum", 0, 100, 10));
  Start(Spec("sum", 0, 40, 4));
  Submit(Spec("sum", 0, 5, 1));  // stays Preparing, no subtasks
  const std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  ASSERT_EQ(a.subtasks.size(), 3u);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease())));
  auto c = Ok(store().CountByState());
  EXPECT_EQ(c.tasks[static_cast<int>(State::kRunning)], 2u);
  EXPECT_EQ(c.tasks[static_cast<int>(State::kPreparing)], 1u);
  EXPECT_EQ(c.subtasks[static_cast<int>(State::kPreparing)], 11u);
  EXPECT_EQ(c.subtasks[static_cast<int>(State::kRunning)], 2u);
  EXPECT_EQ(c.subtasks[static_cast<int>(State::kTerminated)], 1u);
}

// This test verifies that a small task gets one cell per subtask, a big one
// contiguous cells whose counts add up, an unknown task NOT_FOUND and no
// cells at all INVALID_ARGUMENT.
TEST_P(StoreContract, SubtaskGridOfASmallTaskHasOneCellPerSubtask) {
  pb::Task t = Start(Spec("sum", 0, 10, 7));
  auto grid = Ok(store().GetSubtaskGrid(t.id(), 2000));
  EXPECT_EQ(grid.cell_size, 1u);
  EXPECT_EQ(grid.cells.size(), 7u);
  EXPECT_EQ(grid.cells[6].by_state[static_cast<int>(State::kPreparing)], 1u);
  EXPECT_TRUE(absl::IsNotFound(store().GetSubtaskGrid("t-nope", 10).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store().GetSubtaskGrid(t.id(), 0).status()));

  pb::Task big = Start(Spec("grid", 0, 1000, 1000));
  const std::string w = Worker({"grid"});
  ASSERT_EQ(Acquire(w, 30).subtasks.size(), 30u);
  auto g = Ok(store().GetSubtaskGrid(big.id(), 100));
  EXPECT_EQ(g.total, 1000u);
  EXPECT_EQ(g.cell_size, 10u);
  ASSERT_EQ(g.cells.size(), 100u);
  uint64_t sum = 0, running = 0;
  for (size_t i = 0; i < g.cells.size(); ++i) {
    EXPECT_EQ(g.cells[i].begin, i * 10);
    EXPECT_EQ(g.cells[i].end, i * 10 + 10);
    for (int s = 1; s <= 5; ++s) sum += g.cells[i].by_state[s];
    running += g.cells[i].by_state[static_cast<int>(State::kRunning)];
  }
  EXPECT_EQ(sum, 1000u);
  EXPECT_EQ(running, 30u);
}

// This test verifies the task's own history rows: one per transition,
// oldest first, each naming its edge, event, actor, reason and time, and
// none for a refused write.
TEST_P(StoreContract, TaskHistoryRowsNameTheEdgeTheActorAndTheReason) {
  const pb::Task t = Submit(Spec("sum", 0, 10, 1), kNow);
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, kNow + 5, "user asked"));
  EXPECT_FALSE(Transition(t.id(), TaskEvent::kPlanned, kNow + 6).ok());
  const std::vector<pb::HistoryEntry> h = History(t.id(), -1);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].event(), "Created");
  EXPECT_EQ(h[0].to(), pb::PREPARING);
  EXPECT_EQ(h[0].time_ms(), kNow);
  EXPECT_EQ(h[1].event(), "CancelRequested");
  EXPECT_EQ(h[1].from(), pb::PREPARING);
  EXPECT_EQ(h[1].to(), pb::TERMINATING);
  EXPECT_EQ(h[1].actor(), "client");
  EXPECT_EQ(h[1].reason(), "user asked");
  EXPECT_EQ(h[1].time_ms(), kNow + 5);
  EXPECT_EQ(h[1].task_id(), t.id());
  EXPECT_EQ(h[1].subtask_index(), -1);
}

}  // namespace
}  // namespace orchard::store_contract
