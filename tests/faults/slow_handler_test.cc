// Slow handler: a slice that takes longer than the lease TTL keeps its lease
// by heartbeats; a worker that hangs (SIGSTOP) stops heartbeating and loses
// it to the server's clock.
#include <string>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class SlowHandlerTest : public FaultTest {
 protected:
  int64_t Count(const std::string& id, const std::string& where) {
    return QueryInt("SELECT count(*) FROM history WHERE task_id = '" + id + "' AND " + where)
        .value_or(-1);
  }
};

// This test verifies that heartbeats, not handler speed, keep a lease: 3 s
// slices under a 1 s TTL end without a single LeaseExpired; then the same
// kind of slice on a frozen worker is expired and redone by another.
TEST_F(SlowHandlerTest, HeartbeatsKeepALongSliceLeasedAndAHungWorkerLosesIt) {
  StartServer({.lease_ttl = "1s"});
  StartWorker("slow", 2);
  const std::string slow_id = WaitWorkerId("slow");

  const std::string id = Str(Submit({"--kind", "sleep", "--range", "0:2", "--subtasks", "2",
                                     "--params", R"({"ms": 3000})"}),
                             "id");
  const json done = WaitTaskEnded(id, 30s);
  EXPECT_EQ(Str(done, "outcome"), "SUCCEEDED") << TaskSummary(done);
  EXPECT_EQ(Count(id, "event LIKE 'LeaseExpired%'"), 0) << History(id).dump(1);
  EXPECT_EQ(Count(id, "event = 'Leased'"), 2);

  // The hung worker: frozen while it runs a 3 s slice.
  const std::string hung = Str(Submit({"--kind", "sleep", "--range", "0:1", "--subtasks", "1",
                                       "--params", R"({"ms": 3000})", "--max-attempts", "3"}),
                               "id");
  WaitFor(
      [&](std::string& observed) {
        observed = "not leased yet";
        return Count(hung, "event = 'Leased' AND actor = '" + slow_id + "'") == 1;
      },
      30s, "the slow worker to lease the slice");
  worker("slow").Stop();  // the fault: hung, no more heartbeats
  StartWorker("healthy", 2);
  const std::string healthy_id = WaitWorkerId("healthy");
  const json hung_done = WaitTaskEnded(hung, 30s);
  EXPECT_EQ(Str(hung_done, "outcome"), "SUCCEEDED") << TaskSummary(hung_done);
  // At least one expiry, every one of a lease the hung worker held. (It can
  // be two: an Acquire long poll the worker sent before it froze stays
  // parked in the server and may be handed the slice again; see the report
  // of issue 3.)
  EXPECT_GE(Count(hung, "event = 'LeaseExpired' AND actor = 'server'"), 1)
      << History(hung).dump(1);
  EXPECT_EQ(Count(hung, "event = 'LeaseExpired' AND reason NOT LIKE '%" + slow_id + "%'"), 0)
      << History(hung).dump(1);
  EXPECT_EQ(Count(hung, "event = 'Succeeded' AND actor = '" + healthy_id + "'"), 1)
      << History(hung).dump(1);
  worker("slow").Kill();

  ExpectInvariantsHold();
  Summary("hangs (SIGSTOP) of a worker running a slice", 1, HasFailure() ? 0 : 1);
}

}  // namespace
}  // namespace orchard::it
