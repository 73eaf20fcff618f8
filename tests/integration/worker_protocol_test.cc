// The worker protocol's batched calls, spoken by a raw gRPC client to the
// real server: what a reconciler relies on when it sends several tasks'
// transitions in one TransitionTasks call, reduces a small task from the
// WaitTask answer alone, and parks all its waits on one WaitTasks stream.
//
// Main thread only; the server is a real process (tests/integration/harness.h).
#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
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

  std::string Submit(uint64_t subtasks, uint32_t parallelism = 0) {
    pb::SubmitRequest req;
    req.mutable_spec()->set_kind("sum");
    req.mutable_spec()->set_begin(0);
    req.mutable_spec()->set_end(subtasks * 10);
    req.mutable_spec()->mutable_split()->set_subtasks(subtasks);
    req.mutable_spec()->mutable_policy()->set_parallelism(parallelism);
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

  // Leases the waiting task's reconcile and plans it (leasing up to
  // lease_subtasks slices in the same call): the call's one result.
  pb::TransitionTaskResult PlanNext(uint32_t lease_subtasks = 0) {
    pb::AcquireResponse leased = Acquire(0, 1);
    EXPECT_EQ(leased.tasks_size(), 1);
    if (leased.tasks_size() != 1) return {};
    pb::TransitionTasksRequest plan;
    *plan.add_transitions() = Planned(leased.tasks(0));
    plan.mutable_transitions(0)->set_lease_subtasks(lease_subtasks);
    pb::TransitionTasksResponse planned;
    EXPECT_TRUE(Call(&pb::WorkerService::Stub::TransitionTasks, plan, &planned).ok());
    EXPECT_EQ(planned.results_size(), 1);
    if (planned.results_size() != 1) return {};
    EXPECT_EQ(planned.results(0).code(), 0) << planned.results(0).message();
    return planned.results(0);
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

// This test verifies that a plan can lease its first slices to the planner
// in the same write: each result carries up to lease_subtasks leases (fewer
// when the task's parallelism says so), the task's counts show them
// running, and the slices left are for Acquire. lease_subtasks with another
// event, or on the unary TransitionTask (whose answer has no room for
// leases), is refused naming the field, and nothing is written.
TEST_F(WorkerProtocolTest, TransitionTasksLeasesThePlannersFirstSlices) {
  const std::string wide = Submit(5);
  const std::string narrow = Submit(3, /*parallelism=*/1);
  pb::AcquireResponse leased = Acquire(0, 2);
  ASSERT_EQ(leased.tasks_size(), 2);

  pb::TransitionTasksRequest wrong;
  *wrong.add_transitions() = Planned(leased.tasks(0));
  wrong.mutable_transitions(0)->set_event("AllSucceeded");
  wrong.mutable_transitions(0)->set_lease_subtasks(2);
  pb::TransitionTasksResponse refused;
  grpc::Status s = Call(&pb::WorkerService::Stub::TransitionTasks, wrong, &refused);
  ASSERT_TRUE(s.ok()) << s.error_message();  // batches answer per item
  ASSERT_EQ(refused.results_size(), 1);
  EXPECT_EQ(refused.results(0).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(refused.results(0).message().find("transitions[0].lease_subtasks"), std::string::npos)
      << refused.results(0).message();
  pb::TransitionTaskRequest unary = Planned(leased.tasks(0));
  unary.set_lease_subtasks(2);
  pb::Task unary_answer;
  s = Call(&pb::WorkerService::Stub::TransitionTask, unary, &unary_answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("lease_subtasks"), std::string::npos) << s.error_message();

  pb::TransitionTasksRequest plan;
  for (const auto& lease : leased.tasks()) {
    *plan.add_transitions() = Planned(lease);
    plan.mutable_transitions(plan.transitions_size() - 1)->set_lease_subtasks(3);
  }
  pb::TransitionTasksResponse planned;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::TransitionTasks, plan, &planned).ok());
  ASSERT_EQ(planned.results_size(), 2);
  for (const auto& r : planned.results()) {
    ASSERT_EQ(r.code(), 0) << r.message();
    const bool is_wide = r.task().id() == wide;
    const uint64_t want = is_wide ? 3 : 1;  // the narrow task runs one at a time
    EXPECT_EQ(r.task().state(), pb::RUNNING);
    EXPECT_EQ(r.task().counts().running(), want) << r.task().id();
    EXPECT_EQ(r.task().counts().preparing(), (is_wide ? 5u : 3u) - want) << r.task().id();
    ASSERT_EQ(static_cast<uint64_t>(r.subtasks_size()), want) << r.task().id();
    for (int i = 0; i < r.subtasks_size(); ++i) {
      const pb::SubtaskLease& l = r.subtasks(i);
      EXPECT_EQ(l.lease().task_id(), r.task().id());
      EXPECT_EQ(l.lease().subtask_index(), i);  // the first slices, in order
      EXPECT_EQ(l.lease().epoch(), 1u);
      EXPECT_EQ(l.attempt(), 1u);
      EXPECT_EQ(l.kind(), "sum");
      EXPECT_EQ(l.begin(), static_cast<uint64_t>(10 * i));
      EXPECT_EQ(l.end(), static_cast<uint64_t>(10 * i + 10));
      EXPECT_GT(l.lease_expire_ms(), 0);
    }
  }
  // The rest are for Acquire: the wide task's last two, none of the narrow
  // one's while its one slice runs.
  pb::AcquireResponse rest = Acquire(8, 0);
  ASSERT_EQ(rest.subtasks_size(), 2);
  for (const auto& l : rest.subtasks()) {
    EXPECT_EQ(l.lease().task_id(), wide);
    EXPECT_GE(l.lease().subtask_index(), 3);
  }
}

// This test verifies that a Report can bring back the state of the tasks
// its worker reconciles, read after the reports' commit, as a WaitTask
// would answer it: the counts, a revision past the plan's, and every result
// once none is active. A malformed snapshot_tasks entry refuses the whole
// call naming the field, and writes nothing; an unknown task comes back
// without a task.
TEST_F(WorkerProtocolTest, ReportAnswersWithTheSnapshotsOfTasksReconciledHere) {
  const std::string id = Submit(2);
  const pb::TransitionTaskResult planned = PlanNext(2);
  ASSERT_EQ(planned.subtasks_size(), 2);
  const pb::Task running = planned.task();

  pb::ReportRequest report;
  report.set_worker_id(worker_);
  for (const auto& l : planned.subtasks()) {
    pb::SubtaskReport* r = report.add_reports();
    *r->mutable_lease() = l.lease();
    r->set_succeeded_result_json("{\"sum\":" + std::to_string(l.lease().subtask_index()) + "}");
  }
  report.set_snapshot_results_up_to(10);

  pb::ReportRequest bad = report;
  bad.add_snapshot_tasks("not a task id!");
  pb::ReportResponse refused;
  grpc::Status s = Call(&pb::WorkerService::Stub::Report, bad, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("snapshot_tasks[0]"), std::string::npos) << s.error_message();

  report.add_snapshot_tasks(id);
  report.add_snapshot_tasks("t-nosuchtask00");
  pb::ReportResponse reported;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::Report, report, &reported).ok());
  ASSERT_EQ(reported.codes_size(), 2);
  EXPECT_EQ(reported.codes(0), 0) << reported.messages(0);  // the refused call wrote nothing
  EXPECT_EQ(reported.codes(1), 0) << reported.messages(1);
  ASSERT_EQ(reported.snapshots_size(), 2);
  const pb::WaitTaskResponse& snap = reported.snapshots(0);
  EXPECT_EQ(snap.task().id(), id);
  EXPECT_EQ(snap.task().state(), pb::RUNNING);  // its reconciler ends it
  EXPECT_GT(snap.task().revision(), running.revision());
  EXPECT_EQ(snap.task().counts().succeeded(), 2u);
  EXPECT_EQ(snap.task().counts().running(), 0u);
  ASSERT_TRUE(snap.results_complete());
  ASSERT_EQ(snap.results_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(snap.results(i).index(), static_cast<uint64_t>(i));
    EXPECT_EQ(snap.results(i).result_json(), "{\"sum\":" + std::to_string(i) + "}");
  }
  EXPECT_FALSE(reported.snapshots(1).has_task());
}

// The server reads a small task's snapshot in the reports' own commit and
// leaves a bigger one (more than 64 results) to its pool: the answer is the
// same, every result by index.
TEST_F(WorkerProtocolTest, ReportSnapshotOfATaskWithManyResultsCarriesThemAll) {
  constexpr int kSlices = 70;
  const std::string id = Submit(kSlices);
  ASSERT_EQ(PlanNext().task().state(), pb::RUNNING);
  int done = 0;
  pb::ReportResponse last;
  for (int round = 0; done < kSlices && round < 2 * kSlices; ++round) {
    pb::AcquireResponse slices = Acquire(kSlices, 0);
    ASSERT_GT(slices.subtasks_size(), 0);
    pb::ReportRequest report;
    report.set_worker_id(worker_);
    for (const auto& l : slices.subtasks()) {
      pb::SubtaskReport* r = report.add_reports();
      *r->mutable_lease() = l.lease();
      r->set_succeeded_result_json("{\"sum\":" + std::to_string(l.lease().subtask_index()) + "}");
    }
    report.add_snapshot_tasks(id);
    report.set_snapshot_results_up_to(100);
    last.Clear();
    ASSERT_TRUE(Call(&pb::WorkerService::Stub::Report, report, &last).ok());
    done += slices.subtasks_size();
    ASSERT_EQ(last.snapshots_size(), 1);
    EXPECT_EQ(last.snapshots(0).results_complete(), done == kSlices);
  }
  ASSERT_EQ(done, kSlices);
  const pb::WaitTaskResponse& snap = last.snapshots(0);
  EXPECT_EQ(snap.task().counts().succeeded(), static_cast<uint64_t>(kSlices));
  ASSERT_EQ(snap.results_size(), kSlices);
  for (int i = 0; i < kSlices; ++i) {
    EXPECT_EQ(snap.results(i).index(), static_cast<uint64_t>(i));
    EXPECT_EQ(snap.results(i).result_json(), "{\"sum\":" + std::to_string(i) + "}");
  }
}

// This test verifies that once no subtask is active, a WaitTask that asks
// for results up to the task's size gets every committed result (outcome and
// JSON, by index) and says they are complete; one that asks for fewer than
// the task has, or for none, gets the task alone.
TEST_F(WorkerProtocolTest, WaitTaskCarriesASmallTasksResults) {
  Submit(3);
  const pb::Task running = PlanNext().task();
  ASSERT_EQ(running.state(), pb::RUNNING);

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

// This test verifies the WaitTasks stream: each wait is answered on its own,
// when its own task is ready (or its wait_ms passes), whatever order the
// waits came in; a bad wait is refused alone, naming its field; the stream
// ends cleanly when the worker closes it.
TEST_F(WorkerProtocolTest, WaitTasksAnswersEachWaitWhenItsTaskIsReady) {
  const std::string a = Submit(2);
  const std::string b = Submit(1);
  pb::AcquireResponse leased = Acquire(0, 2);
  ASSERT_EQ(leased.tasks_size(), 2);
  pb::TransitionTasksRequest plan;
  for (const auto& lease : leased.tasks()) *plan.add_transitions() = Planned(lease);
  pb::TransitionTasksResponse planned;
  ASSERT_TRUE(Call(&pb::WorkerService::Stub::TransitionTasks, plan, &planned).ok());
  std::map<std::string, pb::Task> running;
  for (const auto& r : planned.results()) {
    ASSERT_EQ(r.code(), 0) << r.message();
    running[r.task().id()] = r.task();
  }

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = workers_->WaitTasks(&ctx);
  auto wait = [&](pb::WaitTasksRequest* msg, uint64_t id, const std::string& task_id,
                  uint32_t wait_ms) {
    pb::TaskWait* w = msg->add_waits();
    w->set_wait_id(id);
    pb::WaitTaskRequest* r = w->mutable_wait();
    r->set_worker_id(worker_);
    r->set_task_id(task_id);
    r->set_known_version(task_id.empty() ? 0 : running[task_id].version());
    r->set_errors_above(-1);
    r->set_wait_ms(wait_ms);
    r->set_results_up_to(10);
  };
  std::deque<pb::TaskWaitAnswer> inbox;
  auto next = [&]() -> pb::TaskWaitAnswer {
    while (inbox.empty()) {
      pb::WaitTasksResponse msg;
      if (!stream->Read(&msg)) {
        ADD_FAILURE() << "the stream ended before the next answer";
        return {};
      }
      for (auto& ans : *msg.mutable_answers()) inbox.push_back(std::move(ans));
    }
    pb::TaskWaitAnswer ans = std::move(inbox.front());
    inbox.pop_front();
    return ans;
  };

  pb::WaitTasksRequest first;
  wait(&first, 1, a, 30'000);
  wait(&first, 2, b, 30'000);
  wait(&first, 3, "", 30'000);
  ASSERT_TRUE(stream->Write(first));
  // Only the bad wait is answered now: nothing changed either task.
  pb::TaskWaitAnswer bad = next();
  EXPECT_EQ(bad.wait_id(), 3u);
  EXPECT_EQ(bad.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(bad.message().find("waits[2].wait.task_id"), std::string::npos) << bad.message();

  // A short wait on a: answered when its wait_ms passes, with a as it was.
  pb::WaitTasksRequest second;
  wait(&second, 4, a, 300);
  ASSERT_TRUE(stream->Write(second));
  pb::TaskWaitAnswer timed_out = next();
  EXPECT_EQ(timed_out.wait_id(), 4u);
  EXPECT_EQ(timed_out.code(), 0) << timed_out.message();
  EXPECT_EQ(timed_out.response().task().id(), a);
  EXPECT_EQ(timed_out.response().task().version(), running[a].version());
  EXPECT_FALSE(timed_out.response().results_complete());

  // b's only subtask ends: b's wait is answered, with its result; a's is not.
  pb::AcquireResponse slices = Acquire(3, 0);
  ASSERT_EQ(slices.subtasks_size(), 3);
  auto report = [&](const std::string& task_id) {
    pb::ReportRequest req;
    req.set_worker_id(worker_);
    for (const auto& s : slices.subtasks()) {
      if (s.lease().task_id() != task_id) continue;
      pb::SubtaskReport* r = req.add_reports();
      *r->mutable_lease() = s.lease();
      r->set_succeeded_result_json("{\"sum\":" + std::to_string(s.lease().subtask_index()) + "}");
    }
    pb::ReportResponse resp;
    ASSERT_TRUE(Call(&pb::WorkerService::Stub::Report, req, &resp).ok());
  };
  report(b);
  pb::TaskWaitAnswer b_done = next();
  EXPECT_EQ(b_done.wait_id(), 2u);
  EXPECT_EQ(b_done.code(), 0) << b_done.message();
  EXPECT_EQ(b_done.response().task().id(), b);
  ASSERT_TRUE(b_done.response().results_complete());
  EXPECT_EQ(b_done.response().results_size(), 1);

  report(a);
  pb::TaskWaitAnswer a_done = next();
  EXPECT_EQ(a_done.wait_id(), 1u);
  EXPECT_EQ(a_done.response().task().id(), a);
  ASSERT_TRUE(a_done.response().results_complete());
  EXPECT_EQ(a_done.response().results_size(), 2);

  ASSERT_TRUE(stream->WritesDone());
  pb::WaitTasksResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  grpc::Status end = stream->Finish();
  EXPECT_TRUE(end.ok()) << end.error_message();
}

}  // namespace
}  // namespace orchard::it
