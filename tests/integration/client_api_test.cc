// The TaskService additions the client libraries rely on (issue 22), from a
// raw gRPC client against the real server: SubmitTasks (a batch where one bad
// spec does not refuse the others, idempotent by request_id, the documented
// maximum), GetServerInfo, the google.rpc.BadRequest detail on
// INVALID_ARGUMENT, and --version of every binary.
//
// Main thread only; the server is a real process (tests/integration/harness.h).
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include <string>
#include <vector>

#include "harness.h"
#include "orchard/v1/error_details.pb.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::it {
namespace {

namespace pb = ::orchard::v1;

class ClientApiTest : public Cluster {
 protected:
  void SetUp() override {
    StartServer({.lease_ttl = "60s"});
    stub_ = pb::TaskService::NewStub(
        grpc::CreateChannel(server_address(), grpc::InsecureChannelCredentials()));
  }

  static pb::TaskSpec Spec(const std::string& kind, uint64_t end) {
    pb::TaskSpec s;
    s.set_kind(kind);
    s.set_begin(0);
    s.set_end(end);
    s.mutable_split()->set_subtasks(1);
    return s;
  }

  grpc::Status SubmitTasks(const pb::SubmitTasksRequest& req, pb::SubmitTasksResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->SubmitTasks(&ctx, req, resp);
  }

  std::unique_ptr<pb::TaskService::Stub> stub_;
};

// This test verifies that a batch with one bad spec stores the others, and
// answers the bad one with INVALID_ARGUMENT naming its field.
TEST_F(ClientApiTest, SubmitTasksOneBadSpecDoesNotRefuseTheOthers) {
  pb::SubmitTasksRequest req;
  *req.add_specs() = Spec("noop", 10);
  *req.add_specs() = Spec("noop", 0);  // end must be greater than begin
  *req.add_specs() = Spec("sum", 20);
  pb::SubmitTasksResponse resp;
  ASSERT_TRUE(SubmitTasks(req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).code(), 0) << resp.results(0).message();
  EXPECT_TRUE(resp.results(0).created());
  EXPECT_EQ(resp.results(0).task().spec().end(), 10u);
  EXPECT_EQ(resp.results(1).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(resp.results(1).field(), "range") << resp.results(1).message();
  EXPECT_FALSE(resp.results(1).has_task());
  EXPECT_EQ(resp.results(2).code(), 0) << resp.results(2).message();
  EXPECT_EQ(resp.results(2).task().spec().kind(), "sum");
  EXPECT_NE(resp.results(0).task().id(), resp.results(2).task().id());
  EXPECT_EQ(ListTasks().size(), 2u);
}

// This test verifies that a batch sent again with the same request ids
// returns the same tasks and stores no new one.
TEST_F(ClientApiTest, SubmitTasksIsIdempotentByRequestId) {
  pb::SubmitTasksRequest req;
  for (int i = 0; i < 5; ++i) {
    pb::TaskSpec s = Spec("noop", 5);
    s.set_request_id("batch-" + std::to_string(i));
    *req.add_specs() = s;
  }
  pb::SubmitTasksResponse first, second;
  ASSERT_TRUE(SubmitTasks(req, &first).ok());
  ASSERT_TRUE(SubmitTasks(req, &second).ok());
  ASSERT_EQ(second.results_size(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(first.results(i).created());
    EXPECT_FALSE(second.results(i).created());
    EXPECT_EQ(first.results(i).task().id(), second.results(i).task().id());
  }
  EXPECT_EQ(ListTasks().size(), 5u);
}

// This test verifies that a batch over the documented maximum is refused as
// a whole with INVALID_ARGUMENT naming `specs` (and a BadRequest detail), and
// stores nothing; the maximum itself is accepted.
TEST_F(ClientApiTest, SubmitTasksOverTheMaximumIsRefusedAndStoresNothing) {
  pb::GetServerInfoRequest ireq;
  pb::ServerInfo info;
  grpc::ClientContext ictx;
  ASSERT_TRUE(stub_->GetServerInfo(&ictx, ireq, &info).ok());
  ASSERT_EQ(info.max_submit_batch(), 1000u);

  pb::SubmitTasksRequest req;
  for (uint32_t i = 0; i <= info.max_submit_batch(); ++i) *req.add_specs() = Spec("noop", 1);
  pb::SubmitTasksResponse resp;
  grpc::Status s = SubmitTasks(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("specs"), std::string::npos) << s.error_message();
  pb::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  pb::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad) ||
              bad.ParseFromString(details.details(0).value()));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "specs");
  EXPECT_EQ(ListTasks().size(), 0u);

  req.mutable_specs()->RemoveLast();
  ASSERT_TRUE(SubmitTasks(req, &resp).ok());
  EXPECT_EQ(resp.results_size(), 1000);
  EXPECT_EQ(ListTasks().size(), 1000u);
}

// This test verifies that Submit's INVALID_ARGUMENT carries a
// google.rpc.BadRequest detail naming the field, so a client need not parse
// the message.
TEST_F(ClientApiTest, InvalidArgumentCarriesBadRequestWithTheField) {
  pb::SubmitRequest req;
  *req.mutable_spec() = Spec("noop", 10);
  req.mutable_spec()->mutable_policy()->set_max_attempts(1000);
  pb::SubmitResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->Submit(&ctx, req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), s.error_message());
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.BadRequest");
  pb::rpc::BadRequest bad;
  ASSERT_TRUE(bad.ParseFromString(details.details(0).value()));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "policy.max_attempts");
  EXPECT_FALSE(bad.field_violations(0).description().empty());

  // A field the server cannot even parse (invalid UTF-8) is named the same way.
  pb::SubmitRequest bad_utf8;
  *bad_utf8.mutable_spec() = Spec("bad\xff\xfe", 10);
  grpc::ClientContext uctx;
  grpc::Status u = stub_->Submit(&uctx, bad_utf8, &resp);
  ASSERT_EQ(u.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << u.error_message();
  pb::rpc::Status udetails;
  ASSERT_TRUE(udetails.ParseFromString(u.error_details())) << u.error_message();
  ASSERT_EQ(udetails.details_size(), 1) << u.error_message();
  pb::rpc::BadRequest ubad;
  ASSERT_TRUE(ubad.ParseFromString(udetails.details(0).value()));
  ASSERT_EQ(ubad.field_violations_size(), 1);
  EXPECT_EQ(ubad.field_violations(0).field(), "TaskSpec.kind") << u.error_message();

  // NOT_FOUND carries no BadRequest.
  pb::GetTaskRequest get;
  get.set_id("t-doesnotexist0000");
  pb::Task t;
  grpc::ClientContext gctx;
  grpc::Status g = stub_->GetTask(&gctx, get, &t);
  EXPECT_NE(g.error_code(), grpc::StatusCode::OK);
  EXPECT_NE(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(g.error_details().empty());
}

// This test verifies that GetServerInfo answers the build's version, the API
// level and the features, and that orchardctl version shows both sides.
TEST_F(ClientApiTest, ServerInfoAndOrchardctlVersion) {
  pb::GetServerInfoRequest req;
  pb::ServerInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetServerInfo(&ctx, req, &info).ok());
  EXPECT_FALSE(info.version().empty());
  EXPECT_GE(info.api_version(), 2u);
  EXPECT_EQ(info.store(), "sqlite");
  std::vector<std::string> features(info.features().begin(), info.features().end());
  EXPECT_NE(std::find(features.begin(), features.end(), "submit_tasks"), features.end());

  const json v = CtlJson({"version"});
  EXPECT_EQ(Str(v["server"], "version"), info.version()) << v.dump();
  EXPECT_EQ(Str(v["client"], "version"), info.version()) << v.dump();
  EXPECT_EQ(v["server"]["api_version"], info.api_version()) << v.dump();
  EXPECT_EQ(Str(v["server"], "git_commit"), info.git_commit()) << v.dump();
}

// This test verifies that every binary answers --version with its name and
// the release, and exits 0.
TEST_F(ClientApiTest, EveryBinaryPrintsItsVersion) {
  pb::GetServerInfoRequest req;
  pb::ServerInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetServerInfo(&ctx, req, &info).ok());
  const std::string check =
      (std::filesystem::path(ServerBinary()).parent_path() / "orchard-check").string();
  const std::vector<std::pair<std::string, std::string>> bins = {
      {ServerBinary(), "orchard-server"},
      {WorkerBinary(), "orchard-worker"},
      {CtlBinary(), "orchardctl"},
      {check, "orchard-check"}};
  int n = 0;
  for (const auto& [bin, name] : bins) {
    auto out = dir() / ("version" + std::to_string(n) + ".out");
    auto err = dir() / ("version" + std::to_string(n++) + ".err");
    auto p = Process::Start(name, {bin, "--version"}, out, err);
    p->ExpectExit();
    auto code = p->WaitExit(10s);
    ASSERT_TRUE(code.has_value()) << name;
    EXPECT_EQ(*code, 0) << name << ": " << TailFile(err, 5);
    const std::string text = TailFile(out, 5);
    EXPECT_NE(text.find(name + " " + info.version()), std::string::npos) << name << ": " << text;
    EXPECT_NE(text.find(info.git_commit().empty() ? "unknown" : info.git_commit()),
              std::string::npos)
        << name << ": " << text;
  }
}

}  // namespace
}  // namespace orchard::it
