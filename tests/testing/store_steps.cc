#include "tests/testing/store_steps.h"

#include <gtest/gtest.h>

#include <map>

#include "common/lifecycle/subtask.h"
#include "tests/testing/ok.h"

namespace orchard::testing {

namespace pb = ::orchard::v1;
using store::TaskTransition;

pb::Task StoreSteps::Submit(const pb::TaskSpec& spec, int64_t now) {
  return Ok(store().CreateTask(spec, now)).task;
}

absl::StatusOr<pb::Task> StoreSteps::Transition(const std::string& id, lifecycle::TaskEvent e,
                                                int64_t now, const std::string& reason) {
  TaskTransition t;
  t.task_id = id;
  t.actor = "client";
  t.event = e;
  t.reason = reason;
  return store().TransitionTask(t, now);
}

pb::Task StoreSteps::Start(const pb::TaskSpec& spec, int64_t now) {
  pb::Task t = Submit(spec, now);
  TaskTransition tr;
  tr.task_id = t.id();
  tr.actor = "client";
  tr.event = lifecycle::TaskEvent::kPlanned;
  tr.plan.emplace();
  tr.plan->set_uniform(true);
  return Ok(store().TransitionTask(tr, now));
}

std::string StoreSteps::Worker(const std::vector<std::string>& kinds, int64_t now) {
  return Ok(store().RegisterWorker("node", kinds, 8, now));
}

store::AcquireResult StoreSteps::Acquire(const std::string& w, uint32_t n, int64_t now,
                                         uint32_t tasks) {
  return Ok(store().Acquire(w, n, tasks, now, kTtl));
}

absl::Status StoreSteps::ReportOne(const std::string& w, const pb::SubtaskReport& r,
                                   int64_t now) {
  std::vector<absl::Status> s = Ok(store().Report(w, {r}, now));
  return s.at(0);
}

pb::Task StoreSteps::Get(const std::string& id) { return Ok(store().GetTask(id)); }

std::vector<pb::Subtask> StoreSteps::Subtasks(const std::string& id) {
  store::SubtaskFilter f;
  f.task_id = id;
  f.page_size = 10000;
  return Ok(store().ListSubtasks(f)).subtasks;
}

std::vector<pb::HistoryEntry> StoreSteps::History(const std::string& id,
                                                  std::optional<int64_t> index) {
  store::HistoryFilter f;
  f.task_id = id;
  f.subtask_index = index;
  f.page_size = 10000;
  return Ok(store().GetHistory(f)).entries;
}

void StoreSteps::ExpectCountersMatchSubtasks(const std::string& id) {
  const pb::SubtaskCounts c = Get(id).counts();
  uint64_t by_state[6] = {}, succeeded = 0, cancelled = 0, items_done = 0, items_total = 0;
  const std::vector<pb::Subtask> subs = Subtasks(id);
  for (const pb::Subtask& s : subs) {
    ++by_state[s.state()];
    items_total += s.end() - s.begin();
    if (s.state() != pb::TERMINATED) continue;
    if (s.outcome() == pb::SUCCEEDED) {
      ++succeeded;
      items_done += s.end() - s.begin();
    }
    if (s.outcome() == pb::CANCELLED) ++cancelled;
  }
  EXPECT_EQ(c.total(), subs.size()) << id;
  EXPECT_EQ(c.preparing(), by_state[pb::PREPARING]) << id;
  EXPECT_EQ(c.running(), by_state[pb::RUNNING]) << id;
  EXPECT_EQ(c.terminating(), by_state[pb::TERMINATING]) << id;
  EXPECT_EQ(c.error(), by_state[pb::ERROR]) << id;
  EXPECT_EQ(c.terminated(), by_state[pb::TERMINATED]) << id;
  EXPECT_EQ(c.succeeded(), succeeded) << id;
  EXPECT_EQ(c.cancelled(), cancelled) << id;
  EXPECT_EQ(c.items_done(), items_done) << id;
  EXPECT_EQ(c.items_total(), items_total) << id;
}

void StoreSteps::ExpectSubtaskHistoryIsLegal(const std::string& id) {
  std::map<int64_t, State> last;
  for (const pb::HistoryEntry& h : History(id, std::nullopt)) {
    if (h.subtask_index() < 0) continue;
    auto event = lifecycle::ParseSubtaskEvent(h.event());
    ASSERT_TRUE(event.has_value()) << h.event();
    auto edge = lifecycle::NextSubtask(static_cast<State>(h.from()), *event);
    ASSERT_TRUE(edge.ok()) << edge.status();
    EXPECT_EQ(static_cast<int>(edge->to), static_cast<int>(h.to()));
    auto it = last.find(h.subtask_index());
    State from = it == last.end() ? State::kPreparing : it->second;
    EXPECT_EQ(static_cast<int>(from), static_cast<int>(h.from()))
        << "subtask " << h.subtask_index() << " history does not chain";
    last[h.subtask_index()] = static_cast<State>(h.to());
  }
}

}  // namespace orchard::testing
