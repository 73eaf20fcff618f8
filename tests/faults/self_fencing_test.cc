// Self-fencing: a worker cut off from the server (a proxy that black-holes its
// traffic) stops its handlers before the server's clock expires its leases;
// once the network is back it carries on, and the task ends exact.
#include <iostream>
#include <string>

#include "fault_fixture.h"
#include "tcp_proxy.h"

namespace orchard::it {
namespace {

class SelfFencingTest : public FaultTest {};

// This test verifies guarantee 4: the worker's "self-fencing" line and its
// handlers' end come before the server's LeaseExpired rows for those slices,
// comparing the worker's log times with the history's times (one machine,
// one wall clock).
TEST_F(SelfFencingTest, CutOffWorkerStopsItsHandlersBeforeTheServerExpiresItsLeases) {
  StartServer({.lease_ttl = "2s"});
  TcpProxy proxy(server_port());
  // The cut worker talks to the proxy, not the server, so it is started here
  // rather than by StartWorker (which points workers at the server).
  auto cut_process = Process::Start(
      "worker cut",
      {WorkerBinary(), "--server", "127.0.0.1:" + std::to_string(proxy.port()), "--slots", "4",
       "--name", "cut", "--log-format", "json"},
      dir() / "worker-cut.stdout.log", dir() / "worker-cut.stderr.log");
  Process& cut = *cut_process;
  const std::string cut_id = WaitWorkerId("cut");

  const std::string id = Str(Submit({"--kind", "sleep", "--range", "0:4", "--subtasks", "4",
                                     "--params", R"({"ms": 4000})", "--max-attempts", "5"}),
                             "id");
  // Leased on the server is not enough: the Acquire answer may still be on
  // its way, and a black hole now would swallow it. A lease the worker's own
  // heartbeat renewed (expiry past its lease time + TTL) is one it holds.
  WaitFor(
      [&](std::string& observed) {
        const auto n = QueryInt(
            "SELECT count(*) FROM subtasks s WHERE task_id = '" + id +
            "' AND state = 2 AND worker = '" + cut_id +
            "' AND lease_expire_ms > 2000 + (SELECT max(time_ms) FROM history h WHERE "
            "h.task_id = s.task_id AND h.subtask_index = s.idx AND h.event = 'Leased')");
        observed = std::to_string(n.value_or(0)) + " held and renewed by the cut worker";
        return n == 4;
      },
      30s, "the cut worker to hold all four slices");

  proxy.BlackHole();  // the fault: a silent network
  const std::string expired_sql = "SELECT min(time_ms) FROM history WHERE task_id = '" + id +
                                  "' AND event = 'LeaseExpired'";
  WaitFor(
      [&](std::string& observed) {
        observed = "no LeaseExpired yet";
        return QueryInt(expired_sql).has_value();
      },
      20s, "the server to expire the cut worker's leases");
  const int64_t expired_ms = *QueryInt(expired_sql);
  WaitFor(
      [&](std::string& observed) {
        observed = "no self-fencing line";
        return !LinesWith(cut.stderr_path(), "self-fencing").empty();
      },
      10s, "the cut worker to log self-fencing");
  const auto fence_lines = LinesWith(cut.stderr_path(), "self-fencing");
  const int64_t fenced_ms = JsonLogTimeMs(fence_lines.front());
  EXPECT_LT(fenced_ms, expired_ms) << "fenced at " << fenced_ms << " ms, the server expired at "
                                   << expired_ms << " ms: " << fence_lines.front();
  // Each handler ended (its result dropped) before the server's expiry too.
  const auto dropped = LinesWith(cut.stderr_path(), "result dropped");
  int stopped_in_time = 0;
  for (const auto& line : dropped) {
    if (line.find(id) != std::string::npos && JsonLogTimeMs(line) < expired_ms) ++stopped_in_time;
  }
  EXPECT_EQ(stopped_in_time, 4) << "handlers that ended before the server's expiry";

  proxy.Restore();
  const json done = WaitTaskEnded(id, 45s);
  EXPECT_EQ(Str(done, "state"), "Terminated") << TaskSummary(done);
  EXPECT_EQ(Str(done, "outcome"), "SUCCEEDED") << TaskSummary(done);
  EXPECT_EQ(done["result"], (json{{"slept_ms", 16000}})) << done.dump();

  if (HasFailure()) std::cerr << "cut worker's log:\n" << TailFile(cut.stderr_path(), 60);
  ExpectInvariantsHold();
  Summary("network black-holes with four leases held", 1, HasFailure() ? 0 : 1);
}

}  // namespace
}  // namespace orchard::it
