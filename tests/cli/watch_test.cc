// Tests of orchardctl's client and watch against a fake TaskService on
// loopback (port 0): error conversion, exit codes by outcome, and resuming a
// broken watch stream after the last revision seen.
#include <atomic>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "cli/client.h"
#include "cli/watch.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::cli {
namespace {

v1::Task MakeTask(uint64_t revision, v1::State state, v1::Outcome outcome, uint64_t succeeded) {
  v1::Task t;
  t.set_id("t-1");
  t.set_state(state);
  t.set_outcome(outcome);
  t.set_revision(revision);
  t.mutable_counts()->set_total(2);
  t.mutable_counts()->set_succeeded(succeeded);
  t.mutable_counts()->set_terminated(succeeded);
  return t;
}

// A scripted TaskService: GetTask answers `current`; the Nth WatchTasks call
// sends streams[N] and then ends with ends[N] (the last script repeats).
class FakeService final : public v1::TaskService::Service {
 public:
  grpc::Status GetTask(grpc::ServerContext*, const v1::GetTaskRequest* req,
                       v1::Task* resp) override {
    std::lock_guard lock(mu_);
    get_calls++;
    if (!get_error.ok()) return get_error;
    if (req->id() != "t-1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "task " + req->id() + " not found");
    *resp = current;
    return grpc::Status::OK;
  }

  grpc::Status WatchTasks(grpc::ServerContext* ctx, const v1::WatchTasksRequest* req,
                          grpc::ServerWriter<v1::WatchTasksResponse>* writer) override {
    std::vector<v1::Task> script;
    grpc::Status end;
    {
      std::lock_guard lock(mu_);
      after_revisions.push_back(req->after_revision());
      size_t n = std::min(after_revisions.size() - 1, streams.size() - 1);
      script = streams[n];
      end = ends[n];
    }
    for (const v1::Task& t : script) {
      {
        std::lock_guard lock(mu_);
        current = t;  // what a GetTask after a break would see
      }
      v1::WatchTasksResponse msg;
      *msg.mutable_task() = t;
      writer->Write(msg);
    }
    return end;
  }

  // What WatchTasks was asked for so far (read under the lock: the server's
  // threads write it).
  std::vector<uint64_t> AfterRevisions() {
    std::lock_guard lock(mu_);
    return after_revisions;
  }

  std::mutex mu_;
  v1::Task current;
  grpc::Status get_error = grpc::Status::OK;
  std::vector<std::vector<v1::Task>> streams;
  std::vector<grpc::Status> ends;
  std::vector<uint64_t> after_revisions;
  int get_calls = 0;
};

class WatchTest : public ::testing::Test {
 protected:
  void Start() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    client_ = std::make_unique<Client>("127.0.0.1:" + std::to_string(port_),
                                       std::chrono::milliseconds(2000));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Runs watch with stdout and stderr captured.
  int Watch(std::chrono::milliseconds budget = std::chrono::milliseconds(10'000)) {
    std::stringstream out, err;
    std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
    std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
    WatchOptions opts;
    opts.id = "t-1";
    opts.reconnect_budget = budget;
    opts.tty = false;
    int code = RunWatch(*client_, opts);
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    out_ = out.str();
    err_ = err.str();
    return code;
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<Client> client_;
  std::string out_, err_;
};

TEST_F(WatchTest, EndsWithExitZeroWhenTheTaskSucceeds) {
  service_.current = MakeTask(1, v1::RUNNING, v1::OUTCOME_UNSPECIFIED, 0);
  service_.streams = {{MakeTask(2, v1::RUNNING, v1::OUTCOME_UNSPECIFIED, 1),
                       MakeTask(3, v1::TERMINATED, v1::SUCCEEDED, 2)}};
  service_.ends = {grpc::Status::OK};
  Start();
  EXPECT_EQ(Watch(), 0) << out_ << err_;
  EXPECT_EQ(service_.AfterRevisions(), (std::vector<uint64_t>{1}));
  EXPECT_NE(out_.find("0/2 (0%) slices"), std::string::npos) << out_;
  EXPECT_NE(out_.find("1/2 (50%) slices"), std::string::npos) << out_;
  EXPECT_NE(out_.find("t-1 Terminated SUCCEEDED\n"), std::string::npos) << out_;
  EXPECT_EQ(err_, "");
}

TEST_F(WatchTest, ExitCodesTellFailedAndCancelled) {
  service_.current = MakeTask(5, v1::ERROR, v1::FAILED, 1);
  service_.current.set_reason("budget: 1 subtask failed, 0 allowed");
  Start();
  EXPECT_EQ(Watch(), 3);
  EXPECT_NE(out_.find("t-1 Error FAILED: budget: 1 subtask failed, 0 allowed"), std::string::npos)
      << out_;
  EXPECT_TRUE(service_.AfterRevisions().empty());  // ended already: no stream needed

  service_.current = MakeTask(6, v1::TERMINATED, v1::CANCELLED, 1);
  EXPECT_EQ(Watch(), 4);
  EXPECT_NE(out_.find("t-1 Terminated CANCELLED"), std::string::npos) << out_;
}

// This test verifies that a watch whose stream breaks (the server restarts)
// notes it, reconnects, and resumes after the last revision it saw.
TEST_F(WatchTest, BrokenStreamReconnectsAndResumesAfterTheLastRevision) {
  service_.current = MakeTask(1, v1::RUNNING, v1::OUTCOME_UNSPECIFIED, 0);
  service_.streams = {{MakeTask(4, v1::RUNNING, v1::OUTCOME_UNSPECIFIED, 1)},
                      {MakeTask(9, v1::TERMINATED, v1::SUCCEEDED, 2)}};
  service_.ends = {grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"),
                   grpc::Status::OK};
  Start();
  EXPECT_EQ(Watch(), 0) << out_ << err_;
  EXPECT_EQ(service_.AfterRevisions(), (std::vector<uint64_t>{1, 4}));
  EXPECT_NE(err_.find("reconnecting"), std::string::npos) << err_;
  EXPECT_NE(err_.find("server shutting down"), std::string::npos) << err_;
  EXPECT_NE(out_.find("t-1 Terminated SUCCEEDED"), std::string::npos) << out_;
}

TEST_F(WatchTest, UnknownTaskIsAnErrorAtOnce) {
  Start();
  WatchOptions opts;
  std::stringstream err;
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  opts.id = "t-missing";
  int code = RunWatch(*client_, opts);
  std::cerr.rdbuf(old_err);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(err.str(), "orchardctl: error: NOT_FOUND: task t-missing not found\n");
}

TEST_F(WatchTest, GivesUpWhenTheServerStaysAwayLongerThanTheBudget) {
  service_.get_error = grpc::Status(grpc::StatusCode::UNAVAILABLE, "store is down");
  Start();
  EXPECT_EQ(Watch(std::chrono::milliseconds(600)), 1);
  EXPECT_GE(service_.get_calls, 2);
  EXPECT_NE(err_.find("orchardctl: error: UNAVAILABLE: lost the server"), std::string::npos)
      << err_;
}

TEST(Client, ServerMessagesPassThroughWithTheirCode) {
  FakeService service;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  Client client("127.0.0.1:" + std::to_string(port), std::chrono::milliseconds(2000));
  absl::StatusOr<v1::Task> t = client.GetTask("t-nope");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(t.status().message()), "task t-nope not found");
  server->Shutdown();
}

TEST(Client, UnreachableServerIsUnavailableNamingTheAddress) {
  // Bind a port, then close it, so nothing listens there.
  int port = 0;
  {
    FakeService service;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    server->Shutdown();
  }
  std::string address = "127.0.0.1:" + std::to_string(port);
  Client client(address, std::chrono::milliseconds(300));
  absl::StatusOr<v1::Task> t = client.GetTask("t-1");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(t.status().message()).rfind("cannot reach server " + address, 0), 0u)
      << t.status();
}

}  // namespace
}  // namespace orchard::cli
