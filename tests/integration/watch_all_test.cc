// WatchTasks of every task (task_id ""), from any revision, on a real server
// over a raw gRPC stub: issue 19 found that from revision 0 it sent nothing.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <set>
#include <string>

#include "harness.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::it {
namespace {

namespace pb = ::orchard::v1;

class WatchAllTest : public Cluster {
 protected:
  // Reads the watch of all tasks after `after` until `ids` were all seen or
  // 10 s (times the harness's scale) passed; returns the ids seen.
  std::set<std::string> ReadUntil(uint64_t after, const std::set<std::string>& ids) {
    auto channel = grpc::CreateChannel(server_address(), grpc::InsecureChannelCredentials());
    auto stub = pb::TaskService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + Scaled(10s));
    pb::WatchTasksRequest req;
    req.set_after_revision(after);
    auto reader = stub->WatchTasks(&ctx, req);
    std::set<std::string> seen;
    pb::WatchTasksResponse resp;
    while (reader->Read(&resp)) {
      seen.insert(resp.task().id());
      bool all = true;
      for (const auto& id : ids) all = all && seen.count(id) > 0;
      if (all) {
        ctx.TryCancel();
        break;
      }
    }
    return seen;
  }
};

// This test verifies that a watch of all tasks from revision 0 sends the
// current state of every task, then the changes that follow.
TEST_F(WatchAllTest, FromRevisionZeroSendsEveryTaskThenChanges) {
  StartServer();
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.insert(Str(Submit({"--kind", "noop", "--range", "0:10", "--subtasks", "1"}), "id"));
  }
  EXPECT_EQ(ReadUntil(0, ids), ids);
  // From the middle: the tasks changed after it (here: a cancel of one).
  const std::string cancelled = *ids.begin();
  ASSERT_EQ(Ctl({"cancel", cancelled}).exit_code, 0);
  const uint64_t rev = GetTask(cancelled)["revision"].get<uint64_t>();
  std::set<std::string> one = {cancelled};
  EXPECT_EQ(ReadUntil(rev - 1, one), one);
}

}  // namespace
}  // namespace orchard::it
