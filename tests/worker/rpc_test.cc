// The worker's WaitTask over the WaitTasks stream, against a fake
// WorkerService on loopback: waits share one stream, and a server that stops
// answering is noticed (DEADLINE_EXCEEDED) and its stream replaced.
#include "worker/rpc.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::worker {
namespace {

// Answers each wait at once with its task (version + 1), except on its first
// `silent_streams` streams, where it reads the waits and never answers.
class FakeWorkers final : public pb::WorkerService::Service {
 public:
  explicit FakeWorkers(int silent_streams) : silent_streams_(silent_streams) {}

  grpc::Status WaitTasks(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::WaitTasksResponse, pb::WaitTasksRequest>* stream) override {
    const bool silent = streams_.fetch_add(1) < silent_streams_;
    pb::WaitTasksRequest in;
    while (stream->Read(&in)) {
      waits_.fetch_add(in.waits_size());
      if (silent) continue;
      pb::WaitTasksResponse out;
      for (const auto& w : in.waits()) {
        pb::TaskWaitAnswer* a = out.add_answers();
        a->set_wait_id(w.wait_id());
        a->mutable_response()->mutable_task()->set_id(w.wait().task_id());
        a->mutable_response()->mutable_task()->set_version(w.wait().known_version() + 1);
      }
      if (!stream->Write(out)) break;
    }
    return ctx->IsCancelled() ? grpc::Status::CANCELLED : grpc::Status::OK;
  }

  int streams() const { return streams_.load(); }
  int waits() const { return waits_.load(); }

 private:
  const int silent_streams_;
  std::atomic<int> streams_{0};
  std::atomic<int> waits_{0};
};

class WaitStreamTest : public ::testing::Test {
 protected:
  void Start(int silent_streams) {
    service_ = std::make_unique<FakeWorkers>(silent_streams);
    int port = 0;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port, 0);
    api_ = std::make_unique<Api>(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                     grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (api_) api_->CancelLongPolls();  // ends the open stream, so Shutdown need not wait
    api_.reset();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  // Runs WaitTask for each task at once on one loop; returns their results.
  std::vector<absl::StatusOr<pb::WaitTaskResponse>> WaitAll(
      const std::vector<std::string>& task_ids, uint32_t wait_ms) {
    boost::asio::io_context io;
    std::vector<std::optional<absl::StatusOr<pb::WaitTaskResponse>>> results(task_ids.size());
    for (size_t i = 0; i < task_ids.size(); ++i) {
      pb::WaitTaskRequest req;
      req.set_worker_id("w-1");
      req.set_task_id(task_ids[i]);
      req.set_known_version(7);
      req.set_wait_ms(wait_ms);
      boost::asio::co_spawn(
          io,
          [this, req, slot = &results[i]]() -> Awaitable<void> {
            auto r = co_await api_->WaitTask(req);
            slot->emplace(std::move(r));
          },
          boost::asio::detached);
    }
    io.run();  // returns when every WaitTask ended (each has its own deadline)
    std::vector<absl::StatusOr<pb::WaitTaskResponse>> out;
    for (auto& r : results) out.push_back(r ? std::move(*r) : absl::InternalError("not run"));
    return out;
  }

  std::unique_ptr<FakeWorkers> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Api> api_;
};

// This test verifies that every reconciler's wait goes on one stream and
// gets its own task's answer.
TEST_F(WaitStreamTest, WaitsShareOneStreamAndGetTheirOwnAnswers) {
  Start(/*silent_streams=*/0);
  auto first = WaitAll({"t-1", "t-2", "t-3"}, 1000);
  auto second = WaitAll({"t-4"}, 1000);
  ASSERT_EQ(first.size(), 3u);
  const std::vector<std::string> ids = {"t-1", "t-2", "t-3"};
  for (size_t i = 0; i < first.size(); ++i) {
    ASSERT_TRUE(first[i].ok()) << first[i].status();
    EXPECT_EQ(first[i]->task().id(), ids[i]);
    EXPECT_EQ(first[i]->task().version(), 8u);
  }
  ASSERT_TRUE(second[0].ok()) << second[0].status();
  EXPECT_EQ(second[0]->task().id(), "t-4");
  EXPECT_EQ(service_->streams(), 1);
  EXPECT_EQ(service_->waits(), 4);
}

// This test verifies that a wait the server never answers fails with
// DEADLINE_EXCEEDED (after its wait_ms plus a 5 s margin), and that the next
// wait goes on a new stream instead of the silent one, and is answered.
TEST_F(WaitStreamTest, UnansweredWaitFailsAndTheNextOneOpensANewStream) {
  Start(/*silent_streams=*/1);
  auto started = std::chrono::steady_clock::now();
  auto r = WaitAll({"t-1"}, 100);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status().code(), absl::StatusCode::kDeadlineExceeded) << r[0].status();
  EXPECT_NE(r[0].status().message().find("t-1"), std::string::npos) << r[0].status();
  EXPECT_GE(took, std::chrono::milliseconds(100));
  auto again = WaitAll({"t-2"}, 100);
  ASSERT_TRUE(again[0].ok()) << again[0].status();
  EXPECT_EQ(again[0]->task().id(), "t-2");
  EXPECT_EQ(service_->streams(), 2);
}

// This test verifies that a wait with the server down fails as a call would
// (UNAVAILABLE), whether its stream ended before or after the wait was on
// it, instead of hanging until its deadline.
TEST_F(WaitStreamTest, WaitWithTheServerDownFailsUnavailable) {
  Start(/*silent_streams=*/0);
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  for (int i = 0; i < 3; ++i) {
    auto r = WaitAll({"t-" + std::to_string(i)}, 100);
    EXPECT_EQ(r[0].status().code(), absl::StatusCode::kUnavailable) << r[0].status();
  }
}

}  // namespace
}  // namespace orchard::worker
