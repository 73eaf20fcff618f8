// The worker protocol's batched calls, spoken by a raw gRPC client to the
// real server: what a reconciler relies on when it sends several tasks'
// transitions in one TransitionTasks call and reduces a small task from the
// WaitTask answer alone.
//
// Main thread only; the server is a real process (tests/integration/harness.h).
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "harness.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::it {
namespace {

namespace pb = ::orchard::v1;

class WorkerProtocolTest : public Cluster {
 protected:
  void SetUp() override {
    StartServer({.lease_ttl = "60s"});
    auto channel = grpc::CreateChannel(server_address(), grpc::InsecureChannelCredentials());
    tasks_ = pb::TaskService::NewStub(channel);
    workers_ = pb::WorkerService::NewStub(channel);
    pb::RegisterRequest reg;
    reg.set_name("raw");
    reg.add_kinds("sum");
    reg.set_slots(8);
    pb::RegisterResponse registered;
    ASSERT_TRUE(Call(&pb::WorkerService::Stub::Register, reg, &registered).ok());
    worker_ = registered.worker_id();
  }

  template <typename Stub, typename Req, typename Resp>
  grpc::Status CallOn(Stub* stub,
                      grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                      const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub->*method)(&ctx, req, resp);
  }
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (pb::WorkerService::Stub::*method)(grpc::ClientContext*,
                                                                    const Req&, Resp*),
                    const Req& req, Resp* resp) {
    return CallOn(workers_.get(), method, req, resp);
  }

  std::string Submit(uint64_t subtasks) {
    pb::SubmitRequest req;
    req.mutable_spec()->set_kind("sum");
    req.mutable_spec()->set_begin(0);
    req.mutable_spec()->set_end(subtasks * 10);
    req.mutable_spec()->mutable_split()->set_subtasks(subtasks);
    pb::SubmitResponse resp;
    EXPECT_TRUE(CallOn(tasks_.get(), &pb::TaskService::Stub::Submit, req, &resp).ok());
    return resp.task().id();
  }

  pb::AcquireResponse Acquire(uint32_t subtasks, uint32_t tasks) {
    pb::AcquireRequest req;
    req.set_worker_id(worker_);
    req.set_max_subtasks(subtasks);
    req.set_max_tasks(tasks);
    req.set_wait_ms(5000);
    pb::AcquireResponse resp;
    EXPECT_TRUE(Call(&pb::WorkerService::Stub::Acquire, req, &resp).ok());
    return resp;
  }

  pb::TransitionTaskRequest Planned(const pb::TaskLease& lease) {
    pb::TransitionTaskRequest t;
    t.set_worker_id(worker_);
    t.set_task_id(lease.task().id());
    t.set_epoch(lease.epoch());
    t.set_expected_version(lease.task().version());
    t.set_event("Planned");
    t.mutable_plan()->set_uniform(true);
    return t;
  }

  pb::WaitTaskResponse Wait(const pb::Task& task, uint32_t results_up_to) {
    pb::WaitTaskRequest req;
    req.set_worker_id(worker_);
    req.set_task_id(task.id());
    req.set_known_version(task.version());
    req.set_errors_above(-1);
    req.set_wait_ms(5000);
    req.set_results_up_to(results_up_to);
    pb::WaitTaskResponse resp;
    EXPECT_TRUE(Call(&pb::WorkerService::Stub::WaitTask, req, &resp).ok());
    return resp;
  }

  std::unique_ptr<pb::TaskService::Stub> tasks_;
  std::unique_ptr<pb::WorkerService::Stub> workers_;
  std::string worker_;
};

// This test verifies that two tasks' Planned transitions in one call are both
// written, each answered with its task as written, in request order.
TEST_F(WorkerProtocolTest, TransitionTasksPlansSeveralTasksInOneCall) {
  const std::string a = Submit(2);
  const std::string b = Submit(3);
  pb::AcquireResponse leased = Acquire(0, 2);
  ASSERT_EQ(leased.tasks_size(), 2);
  pb::TransitionTasksRequest req;
  for (const auto& lease : leased.tasks()) *req.add_transitions() = Planned(lease);
  pb::TransitionTasksResponse resp;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::TransitionTasks, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const auto& r = resp.results(i);
    EXPECT_EQ(r.code(), 0) << r.message();
    EXPECT_EQ(r.task().id(), leased.tasks(i).task().id());
    EXPECT_EQ(r.task().state(), pb::RUNNING);
    EXPECT_EQ(r.task().counts().total(), r.task().id() == a ? 2u : 3u);
  }
  EXPECT_TRUE((resp.results(0).task().id() == a && resp.results(1).task().id() == b) ||
              (resp.results(0).task().id() == b && resp.results(1).task().id() == a));
}

// This test verifies that once no subtask is active, a WaitTask that asks
// for results up to the task's size gets every committed result (outcome and
// JSON, by index) and says they are complete; one that asks for fewer than
// the task has, or for none, gets the task alone.
TEST_F(WorkerProtocolTest, WaitTaskCarriesASmallTasksResults) {
  Submit(3);
  pb::AcquireResponse leased = Acquire(0, 1);
  ASSERT_EQ(leased.tasks_size(), 1);
  pb::TransitionTasksRequest plan;
  *plan.add_transitions() = Planned(leased.tasks(0));
  pb::TransitionTasksResponse planned;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::TransitionTasks, plan, &planned).ok());
  ASSERT_EQ(planned.results(0).code(), 0) << planned.results(0).message();
  const pb::Task running = planned.results(0).task();

  // While subtasks are active the answer (after its wait) carries no results.
  pb::AcquireResponse slices = Acquire(3, 0);
  ASSERT_EQ(slices.subtasks_size(), 3);
  pb::ReportRequest report;
  report.set_worker_id(worker_);
  for (const auto& s : slices.subtasks()) {
    pb::SubtaskReport* r = report.add_reports();
    *r->mutable_lease() = s.lease();
    r->set_succeeded_result_json("{\"sum\":" + std::to_string(100 + s.lease().subtask_index()) +
                                 "}");
  }
  pb::ReportResponse reported;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::Report, report, &reported).ok());

  pb::WaitTaskResponse all = Wait(running, 3);
  const auto& c = all.task().counts();
  EXPECT_EQ(c.preparing() + c.running() + c.terminating(), 0u);
  ASSERT_TRUE(all.results_complete());
  ASSERT_EQ(all.results_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(all.results(i).index(), static_cast<uint64_t>(i));
    EXPECT_EQ(all.results(i).outcome(), pb::SUCCEEDED);
    EXPECT_EQ(all.results(i).result_json(), "{\"sum\":" + std::to_string(100 + i) + "}");
  }

  pb::WaitTaskResponse fewer = Wait(running, 2);
  EXPECT_EQ(fewer.task().id(), running.id());
  EXPECT_FALSE(fewer.results_complete());
  EXPECT_EQ(fewer.results_size(), 0);
  pb::WaitTaskResponse none = Wait(running, 0);
  EXPECT_FALSE(none.results_complete());
  EXPECT_EQ(none.results_size(), 0);
}

}  // namespace
}  // namespace orchard::it
