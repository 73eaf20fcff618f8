// Zombie worker: a worker frozen with SIGSTOP while it holds leases, for
// longer than the lease TTL, then thawed with SIGCONT. Meanwhile the server
// expired its leases and another worker redid the slices; the zombie's late
// completions are refused (fencing epoch) and never counted, it stops those
// handlers, and it goes back to work.
#include <set>
#include <string>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class ZombieWorkerTest : public FaultTest {
 protected:
  // Indices of task `id`'s subtasks Running under `worker_id`.
  std::set<int64_t> Held(const std::string& id, const std::string& worker_id) {
    std::set<int64_t> held;
    for (const auto& s : Subtasks(id)) {
      if (Str(s, "state") == "Running" && Str(s, "worker") == worker_id) {
        held.insert(s["index"].get<int64_t>());
      }
    }
    return held;
  }
};

// This test verifies guarantee 3 against a zombie: its results, finished while
// it was frozen past its leases, are refused; each slice has exactly one
// Succeeded row, by the worker that took it over; the result is exact; and
// the zombie takes new leases afterwards.
TEST_F(ZombieWorkerTest, LateCompletionsAreRefusedAndTheZombieGoesBackToWork) {
  StartServer({.lease_ttl = "1s"});
  StartWorker("zombie", 4);
  const std::string zombie_id = WaitWorkerId("zombie");

  // Four slices of 2 s on the zombie's four slots: it holds all of them.
  const std::string id = Str(Submit({"--kind", "sleep", "--range", "0:4", "--subtasks", "4",
                                     "--params", R"({"ms": 2000})", "--max-attempts", "5"}),
                             "id");
  std::set<int64_t> held;
  WaitFor(
      [&](std::string& observed) {
        held = Held(id, zombie_id);
        observed = std::to_string(held.size()) + " held";
        return held.size() == 4;
      },
      30s, "the zombie to hold all four leases");

  worker("zombie").Stop();  // the fault: frozen, holding four leases
  StartWorker("rescuer", 4);
  const std::string rescuer_id = WaitWorkerId("rescuer");
  // Frozen past the TTL: the server expires the leases and the rescuer
  // takes every slice over (a condition, not a hope).
  WaitFor(
      [&](std::string& observed) {
        const auto n = QueryInt("SELECT count(DISTINCT subtask_index) FROM history WHERE "
                                "task_id = '" + id + "' AND event = 'Leased' AND actor = '" +
                                rescuer_id + "'");
        observed = std::to_string(n.value_or(0)) + " of 4 leased by the rescuer";
        return n == 4;
      },
      30s, "the rescuer to hold every slice of the frozen zombie");
  // The zombie's handlers were frozen mid-sleep: once thawed, their 2 s have
  // passed by the steady clock, so they finish at once and try to report.
  worker("zombie").Continue();

  const json done = WaitTaskEnded(id, 60s);
  EXPECT_EQ(Str(done, "state"), "Terminated") << TaskSummary(done);
  EXPECT_EQ(done["result"], (json{{"slept_ms", 8000}})) << done.dump();

  // Every late completion was refused or dropped by the zombie itself.
  const auto log = worker("zombie").stderr_path();
  int fenced = 0;
  WaitFor(
      [&](std::string& observed) {
        fenced = 0;
        for (int64_t i : held) {
          const std::string key = id + "/" + std::to_string(i) + ":";
          bool refused = false;
          for (const auto& line : LinesWith(log, key)) {
            refused = refused || line.find("report refused") != std::string::npos ||
                      line.find("lost; stopping the handler") != std::string::npos ||
                      line.find("dropping lease epoch") != std::string::npos;
          }
          fenced += refused ? 1 : 0;
        }
        observed = std::to_string(fenced) + " of 4 refused or dropped in " + log.string();
        return fenced == 4;
      },
      20s, "the zombie to log each late completion as refused or its lease as lost");

  const json history = History(id);
  for (int64_t i : held) {
    const auto rows = HistoryOf(history, json(i));
    int succeeded = 0, expired = 0;
    for (const auto& r : rows) {
      if (Str(r, "event") == "Succeeded") {
        ++succeeded;
        EXPECT_EQ(Str(r, "actor"), rescuer_id) << "subtask " << i << " committed by the zombie";
      }
      expired += Str(r, "event") == "LeaseExpired" ? 1 : 0;
    }
    EXPECT_EQ(succeeded, 1) << "subtask " << i << ": " << json(rows).dump();
    EXPECT_GE(expired, 1) << "subtask " << i << ": " << json(rows).dump();
  }

  // Back to work: with the rescuer gone, the zombie alone runs a new task.
  worker("rescuer").Kill();
  const std::string next = Str(Submit({"--kind", "sum", "--range", "0:1000", "--subtasks", "8"}),
                               "id");
  const json next_done = WaitTaskEnded(next, 30s);
  EXPECT_EQ(next_done["result"], (json{{"sum", SumOf(0, 1000)}})) << next_done.dump();
  EXPECT_EQ(QueryInt("SELECT count(*) FROM history WHERE task_id = '" + next +
                     "' AND event = 'Leased' AND actor = '" + zombie_id + "'"),
            8);
  EXPECT_TRUE(worker("zombie").Running());

  ExpectInvariantsHold();
  Summary("late completions by a SIGSTOPped zombie", static_cast<int>(held.size()), fenced);
}


// This test verifies that a worker frozen while its Acquire long polls are
// parked on the server gets no lease when work turns up later: the server
// has not heard from it for over two heartbeat intervals, so its parked
// polls return empty, and a live worker runs everything.
TEST_F(ZombieWorkerTest, ParkedPollsOfAFrozenWorkerHandOutNoLeases) {
  StartServer({.lease_ttl = "1s"});
  StartWorker("frozen", 4);
  const std::string frozen_id = WaitWorkerId("frozen");
  worker("frozen").Stop();  // its two acquire loops stay parked on the server
  WaitFor(
      [&](std::string& observed) {
        for (const auto& w : Workers()) {
          if (Str(w, "id") == frozen_id) {
            observed = w.dump();
            return !w["alive"].get<bool>();
          }
        }
        observed = "not listed";
        return false;
      },
      30s, "the server to see the frozen worker as dead");

  StartWorker("live", 2);
  const std::string live_id = WaitWorkerId("live");
  const std::string id = Str(Submit({"--kind", "sum", "--range", "0:1000", "--subtasks", "8"}),
                             "id");
  const json done = WaitTaskEnded(id, 30s);
  EXPECT_EQ(done["result"], (json{{"sum", SumOf(0, 1000)}})) << done.dump();
  EXPECT_EQ(QueryInt("SELECT count(*) FROM history WHERE task_id = '" + id +
                     "' AND event = 'Leased' AND actor = '" + frozen_id + "'"),
            0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM history WHERE task_id = '" + id +
                     "' AND event = 'Leased' AND actor = '" + live_id + "'"),
            8);
  // The parked polls were there and were turned away, not merely late.
  const auto refused = LinesWith(server().stderr_path(), frozen_id + " silent for over");
  EXPECT_FALSE(refused.empty()) << "no parked poll of " << frozen_id << " was turned away";

  worker("frozen").Continue();
  ExpectInvariantsHold();
  Summary("parked polls of a SIGSTOPped worker", 1, refused.empty() ? 0 : 1);
}

}  // namespace
}  // namespace orchard::it
