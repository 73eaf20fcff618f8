// Worker death: kill -9 of workers at random moments (seeded) during a task of
// 10,000 flaky/sum subtasks, each killed worker restarted at once. The
// server's clock expires the dead workers' leases, the slices run again, and
// the task's result is exact with every slice's result committed once.
#include <string>
#include <vector>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class WorkerDeathTest : public FaultTest {};

// This test verifies that repeated kill -9 of workers never loses a slice nor
// counts one twice: the 10,000-subtask task ends SUCCEEDED with the exact sum,
// history holds exactly one Succeeded row per subtask, and the invariant
// checker passes.
TEST_F(WorkerDeathTest, RandomKillsDuringTenThousandSubtasksKeepTheResultExact) {
  StartServer({.lease_ttl = "1s"});
  const std::vector<std::string> names = {"a", "b", "c"};
  StartWorkers(names, 8);

  constexpr uint64_t kEnd = 1'000'000;
  std::uniform_int_distribution<size_t> pick(0, names.size() - 1);
  int kills = 0;
  int rounds = 0;
  // Rounds of one 10,000-subtask task each, until enough workers died.
  for (; rounds < 4 && (kills < 12 || rounds == 0); ++rounds) {
    // Subtasks 17 and 4242 fail their first attempts as well, so kills and
    // retries mix; enough attempts that a slice killed twice still succeeds.
    const std::string id = Str(Submit({"--kind", "flaky", "--range",
                                       "0:" + std::to_string(kEnd), "--subtasks", "10000",
                                       "--params", R"({"fail": {"17": 1, "4242": 2}})",
                                       "--max-attempts", "20", "--backoff", "50ms"}),
                               "id");
    const auto deadline = Clock::now() + 40s;
    json now = GetTask(id);
    while (Str(now, "state") != "Terminated" && Str(now, "state") != "Error" &&
           Clock::now() < deadline) {
      // The fault's moment: a random wait, then kill -9 of a random worker,
      // restarted at once.
      std::this_thread::sleep_for(RandomDelay(50ms, 400ms));
      const std::string& victim = names[pick(rng())];
      worker(victim).Kill();
      ++kills;
      StartWorker(victim, 8);
      now = GetTask(id);
    }
    const json done = WaitTaskEnded(id, 60s);
    EXPECT_EQ(Str(done, "state"), "Terminated") << TaskSummary(done);
    EXPECT_EQ(Str(done, "outcome"), "SUCCEEDED") << TaskSummary(done);
    EXPECT_EQ(done["result"], (json{{"sum", SumOf(0, kEnd)}})) << done.dump();
    // Exactly one committed result per subtask, straight from the database.
    EXPECT_EQ(QueryInt("SELECT count(*) FROM history WHERE task_id = '" + id +
                       "' AND event = 'Succeeded'"),
              10000);
    EXPECT_EQ(QueryInt("SELECT count(*) FROM (SELECT subtask_index FROM history WHERE task_id "
                       "= '" + id + "' AND event = 'Succeeded' GROUP BY subtask_index HAVING "
                       "count(*) > 1)"),
              0);
  }
  const auto expired = QueryInt("SELECT count(*) FROM history WHERE event = 'LeaseExpired'");
  std::cout << "faults: " << rounds << " tasks of 10,000 subtasks; " << expired.value_or(0)
            << " leases expired by the server's clock\n";
  ExpectInvariantsHold();
  Summary("worker kills (kill -9)", kills, HasFailure() ? 0 : kills);
}

}  // namespace
}  // namespace orchard::it
