// Concurrent reconcilers: three workers reconcile thirty tasks submitted at
// once. Compare-and-set on the task version makes a second reconciler's write
// fail and re-read, so no task is planned twice, none skips a state, and no
// counter counts a subtask twice.
#include <set>
#include <string>
#include <vector>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class ConcurrentReconcilersTest : public FaultTest {};

// This test verifies guarantee 2: thirty tasks reconciled by three workers
// each end SUCCEEDED with the exact sum and exactly one Planned row, and the
// invariant checker (legal paths, exact counters) passes.
TEST_F(ConcurrentReconcilersTest, ThreeWorkersReconcilingThirtyTasksNeverPlanTwice) {
  StartServer({.lease_ttl = "1s"});
  StartWorkers({"a", "b", "c"}, 4, {"--max-reconcilers", "8"});

  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    ids.push_back(Str(Submit({"--kind", "sum", "--range", "0:" + std::to_string(1000 * (i + 1)),
                              "--subtasks", std::to_string(5 + i % 7)}),
                      "id"));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const json t = WaitTaskEnded(ids[i], 60s);
    EXPECT_EQ(Str(t, "outcome"), "SUCCEEDED") << TaskSummary(t);
    EXPECT_EQ(t["result"], (json{{"sum", SumOf(0, 1000 * (i + 1))}})) << t.dump();
  }
  std::set<int64_t> planned;
  for (const auto& id : ids) {
    planned.insert(*QueryInt("SELECT count(*) FROM history WHERE task_id = '" + id +
                             "' AND subtask_index = -1 AND event = 'Planned'"));
  }
  EXPECT_EQ(planned, (std::set<int64_t>{1})) << "Planned rows per task";
  const auto reconcilers = QueryInt(
      "SELECT count(DISTINCT actor) FROM history WHERE subtask_index = -1 AND event = 'Planned'");
  const auto conflicts = QueryInt("SELECT count(*) FROM history WHERE subtask_index = -1");
  std::cout << "faults: " << reconcilers.value_or(0) << " workers planned the 30 tasks ("
            << conflicts.value_or(0) << " task rows)\n";
  ExpectInvariantsHold();
  Summary("tasks reconciled by three competing workers", 30, HasFailure() ? 0 : 30);
}

}  // namespace
}  // namespace orchard::it
