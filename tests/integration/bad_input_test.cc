// Bad input (guarantee 7): every RPC of TaskService and WorkerService, sent by
// a raw gRPC client to the real server, with each field broken in turn. Each
// gets INVALID_ARGUMENT (or NOT_FOUND / FAILED_PRECONDITION, as gRPC means
// them) with a message naming the field, and the database is unchanged
// (a digest of its tables before and after every case).
//
// Main thread only; the server is a real process (tests/integration/harness.h).
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>

#include <functional>
#include <string>
#include <vector>

#include "harness.h"
#include "tests/testing/specs.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace orchard::it {
namespace {

namespace pb = ::orchard::v1;

// Invalid UTF-8 in a proto3 string field never reaches the service code
// (protobuf refuses to parse the request); the server's interceptor answers
// INVALID_ARGUMENT naming the field, e.g. "TaskSpec.kind: not valid UTF-8".
constexpr auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
constexpr auto kNotFound = grpc::StatusCode::NOT_FOUND;
const std::string kBadUtf8 = "bad\xff\xfe";

struct Case {
  std::string name;
  std::function<grpc::Status()> call;
  grpc::StatusCode code;
  std::string field;  // the message must contain it
};

class BadInputTest : public Cluster {
 protected:
  void SetUp() override {
    StartServer({.lease_ttl = "60s"});
    channel_ = grpc::CreateChannel(server_address(), grpc::InsecureChannelCredentials());
    tasks_ = pb::TaskService::NewStub(channel_);
    workers_ = pb::WorkerService::NewStub(channel_);
    // A task nobody runs (it stays Preparing) and a worker that never
    // heartbeats: real ids for the cases that need one.
    pb::SubmitRequest submit;
    *submit.mutable_spec() = GoodSpec();
    pb::SubmitResponse submitted;
    ASSERT_TRUE(Call(&pb::TaskService::Stub::Submit, tasks_.get(), submit, &submitted).ok());
    task_id_ = submitted.task().id();
    pb::RegisterRequest reg;
    reg.set_name("idle");
    reg.add_kinds("nothing-runs-this");
    reg.set_slots(1);
    pb::RegisterResponse registered;
    ASSERT_TRUE(Call(&pb::WorkerService::Stub::Register, workers_.get(), reg, &registered).ok());
    worker_id_ = registered.worker_id();
  }

  static pb::TaskSpec GoodSpec() { return testing::GoodSpec(); }

  template <typename Stub, typename Req, typename Resp>
  static grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                           Stub* stub, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub->*method)(&ctx, req, resp);
  }
  template <typename Stub, typename Req, typename Resp>
  static std::function<grpc::Status()> Rpc(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                                         const Req&, Resp*),
                                           Stub* stub, Req req) {
    return [method, stub, req] {
      Resp resp;
      return Call(method, stub, req, &resp);
    };
  }

  // Submit with one change to a good spec.
  std::function<grpc::Status()> SubmitWith(const std::function<void(pb::TaskSpec&)>& edit) {
    pb::SubmitRequest req;
    *req.mutable_spec() = GoodSpec();
    edit(*req.mutable_spec());
    return Rpc(&pb::TaskService::Stub::Submit, tasks_.get(), req);
  }

  // What every case must leave unchanged: the rows of every table but the
  // sweeper's bookkeeping (worker liveness, the global revision).
  std::string Digest() {
    sqlite3* db = nullptr;
    std::string out;
    if (sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5000);
      const char* sql =
          "SELECT (SELECT count(*) || ':' || total(version) || ':' || group_concat(id || state) "
          "FROM tasks) || '|' || (SELECT count(*) FROM subtasks) || '|' || (SELECT count(*) "
          "FROM history) || '|' || (SELECT count(*) || ':' || group_concat(id) FROM workers) "
          "|| '|' || (SELECT count(*) FROM task_labels)";
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      } else {
        out = std::string("error: ") + sqlite3_errmsg(db);
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
  }

  void Run(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      const std::string before = Digest();
      const grpc::Status s = c.call();
      EXPECT_EQ(s.error_code(), c.code)
          << c.name << ": got " << s.error_code() << " \"" << s.error_message() << "\"";
      EXPECT_NE(s.error_message().find(c.field), std::string::npos)
          << c.name << ": the message should name '" << c.field << "': \"" << s.error_message()
          << "\"";
      EXPECT_EQ(Digest(), before) << c.name << ": the database changed";
    }
    std::cout << "bad input: " << cases.size() << " cases\n";
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::TaskService::Stub> tasks_;
  std::unique_ptr<pb::WorkerService::Stub> workers_;
  std::string task_id_, worker_id_;
};


// This test verifies that every broken field of a submitted spec is refused
// with INVALID_ARGUMENT naming the field, and creates no task.
TEST_F(BadInputTest, SubmitRefusesEachBrokenFieldAndChangesNothing) {
  using S = pb::TaskSpec;
  Run({
      {"kind empty", SubmitWith([](S& s) { s.set_kind(""); }), kInvalid, "kind"},
      {"kind too long", SubmitWith([](S& s) { s.set_kind(std::string(65, 'k')); }), kInvalid,
       "kind"},
      {"kind with a blank", SubmitWith([](S& s) { s.set_kind("s um"); }), kInvalid, "kind"},
      {"kind invalid UTF-8", SubmitWith([](S& s) { s.set_kind(kBadUtf8); }), kInvalid, "kind"},
      {"range empty", SubmitWith([](S& s) { s.set_end(0); }), kInvalid, "range"},
      {"range reversed", SubmitWith([](S& s) { s.set_begin(200); }), kInvalid, "range"},
      {"split not set", SubmitWith([](S& s) { s.clear_split(); }), kInvalid, "split"},
      {"subtasks zero", SubmitWith([](S& s) { s.mutable_split()->set_subtasks(0); }), kInvalid,
       "subtasks"},
      {"too many subtasks",
       SubmitWith([](S& s) {
         s.set_end(100'000'000);
         s.mutable_split()->set_subtasks(3'000'000);
       }),
       kInvalid, "subtasks"},
      {"chunk zero", SubmitWith([](S& s) { s.mutable_split()->set_chunk(0); }), kInvalid, "chunk"},
      {"range overflowing into too many chunks",
       SubmitWith([](S& s) {
         s.set_end(UINT64_MAX);
         s.mutable_split()->set_chunk(1);
       }),
       kInvalid, "chunk"},
      {"params an array", SubmitWith([](S& s) { s.set_params_json("[1, 2]"); }), kInvalid,
       "params"},
      {"params a number", SubmitWith([](S& s) { s.set_params_json("12"); }), kInvalid, "params"},
      {"params a string", SubmitWith([](S& s) { s.set_params_json("\"x\""); }), kInvalid,
       "params"},
      {"params not JSON", SubmitWith([](S& s) { s.set_params_json("{\"a\":"); }), kInvalid,
       "params"},
      {"params over 64 KiB",
       SubmitWith([](S& s) { s.set_params_json("{\"a\":\"" + std::string(65 * 1024, 'x') + "\"}"); }),
       kInvalid, "params"},
      {"params invalid UTF-8",
       SubmitWith([](S& s) { s.set_params_json("{\"a\":\"" + kBadUtf8 + "\"}"); }), kInvalid,
       "params"},
      {"params nested too deep",
       SubmitWith([](S& s) { s.set_params_json("{\"a\":" + std::string(20'000, '[') +
                                               std::string(20'000, ']') + "}"); }),
       kInvalid, "params"},
      {"max_attempts over 100", SubmitWith([](S& s) { s.mutable_policy()->set_max_attempts(101); }),
       kInvalid, "policy.max_attempts"},
      {"max_failed_subtasks -2",
       SubmitWith([](S& s) { s.mutable_policy()->set_max_failed_subtasks(-2); }), kInvalid,
       "policy.max_failed_subtasks"},
      {"deadline over a year",
       SubmitWith([](S& s) { s.mutable_policy()->set_deadline_ms(UINT64_MAX); }), kInvalid,
       "policy.deadline"},
      {"backoff_max below backoff_initial",
       SubmitWith([](S& s) {
         s.mutable_policy()->set_backoff_initial_ms(1000);
         s.mutable_policy()->set_backoff_max_ms(10);
       }),
       kInvalid, "policy.backoff_max"},
      {"backoff_initial overflowing",
       SubmitWith([](S& s) { s.mutable_policy()->set_backoff_initial_ms(UINT64_MAX); }),
       kInvalid, "policy.backoff"},
      {"priority too high", SubmitWith([](S& s) { s.mutable_policy()->set_priority(5000); }),
       kInvalid, "policy.priority"},
      {"priority too low", SubmitWith([](S& s) { s.mutable_policy()->set_priority(-5000); }),
       kInvalid, "policy.priority"},
      {"too many labels",
       SubmitWith([](S& s) {
         for (int i = 0; i < 40; ++i) (*s.mutable_labels())["k" + std::to_string(i)] = "v";
       }),
       kInvalid, "labels"},
      {"label key empty", SubmitWith([](S& s) { (*s.mutable_labels())[""] = "v"; }), kInvalid,
       "labels"},
      {"label key with a blank", SubmitWith([](S& s) { (*s.mutable_labels())["a b"] = "v"; }),
       kInvalid, "labels"},
      {"label value too long",
       SubmitWith([](S& s) { (*s.mutable_labels())["k"] = std::string(300, 'v'); }), kInvalid,
       "labels"},
      {"label key invalid UTF-8", SubmitWith([](S& s) { (*s.mutable_labels())[kBadUtf8] = "v"; }),
       kInvalid, "labels.key"},
      {"label value invalid UTF-8", SubmitWith([](S& s) { (*s.mutable_labels())["k"] = kBadUtf8; }),
       kInvalid, "labels"},
      {"request_id too long", SubmitWith([](S& s) { s.set_request_id(std::string(200, 'r')); }),
       kInvalid, "request_id"},
      {"request_id invalid UTF-8", SubmitWith([](S& s) { s.set_request_id(kBadUtf8); }), kInvalid,
       "request_id"},
  });
}

// This test verifies the other TaskService RPCs: broken ids, page sizes,
// unknown enum values and page tokens, and unknown ids.
TEST_F(BadInputTest, TaskReadsAndWritesRefuseBrokenFields) {
  auto* t = tasks_.get();
  using T = pb::TaskService::Stub;
  pb::GetTaskRequest get_empty, get_long, get_bad, get_unknown;
  get_long.set_id(std::string(100, 'a'));
  get_bad.set_id("t-1; DROP TABLE tasks");
  get_unknown.set_id("t-doesnotexist");
  pb::GetTaskRequest get_utf8;
  get_utf8.set_id(kBadUtf8);
  pb::ListTasksRequest list_big, list_state, list_token, list_kind;
  list_big.set_page_size(5000);
  list_state.add_states(static_cast<pb::State>(99));
  list_token.set_page_token("garbage");
  list_kind.set_kind("a b");
  pb::CancelTaskRequest cancel_empty, cancel_unknown, cancel_reason;
  cancel_unknown.set_id("t-doesnotexist");
  cancel_reason.set_id(task_id_);
  cancel_reason.set_reason(std::string(5000, 'r'));
  pb::CancelTaskRequest cancel_utf8;
  cancel_utf8.set_id(task_id_);
  cancel_utf8.set_reason(kBadUtf8);
  pb::RetryTaskRequest retry_empty, retry_unknown, retry_preparing;
  retry_unknown.set_id("t-doesnotexist");
  retry_preparing.set_id(task_id_);
  pb::ListSubtasksRequest subs_empty, subs_big, subs_state, subs_unknown, subs_token;
  subs_big.set_task_id(task_id_);
  subs_big.set_page_size(20000);
  subs_state.set_task_id(task_id_);
  subs_state.add_states(static_cast<pb::State>(-3));
  subs_unknown.set_task_id("t-doesnotexist");
  subs_token.set_task_id(task_id_);
  subs_token.set_page_token("zz");
  pb::GetHistoryRequest hist_empty, hist_big, hist_index, hist_unknown;
  hist_big.set_task_id(task_id_);
  hist_big.set_page_size(20000);
  hist_index.set_task_id(task_id_);
  hist_index.set_subtask_index(-5);
  hist_unknown.set_task_id("t-doesnotexist");
  Run({
      {"GetTask id empty", Rpc(&T::GetTask, t, get_empty), kInvalid, "id"},
      {"GetTask id too long", Rpc(&T::GetTask, t, get_long), kInvalid, "id"},
      {"GetTask id with bad characters", Rpc(&T::GetTask, t, get_bad), kInvalid, "id"},
      {"GetTask unknown id", Rpc(&T::GetTask, t, get_unknown), kNotFound, "t-doesnotexist"},
      {"GetTask id invalid UTF-8", Rpc(&T::GetTask, t, get_utf8), kInvalid, "GetTaskRequest.id"},
      {"ListTasks page_size too big", Rpc(&T::ListTasks, t, list_big), kInvalid, "page_size"},
      {"ListTasks unknown state", Rpc(&T::ListTasks, t, list_state), kInvalid, "states"},
      {"ListTasks bad page_token", Rpc(&T::ListTasks, t, list_token), kInvalid, "page_token"},
      {"ListTasks bad kind", Rpc(&T::ListTasks, t, list_kind), kInvalid, "kind"},
      {"CancelTask id empty", Rpc(&T::CancelTask, t, cancel_empty), kInvalid, "id"},
      {"CancelTask unknown id", Rpc(&T::CancelTask, t, cancel_unknown), kNotFound,
       "t-doesnotexist"},
      {"CancelTask reason too long", Rpc(&T::CancelTask, t, cancel_reason), kInvalid, "reason"},
      {"CancelTask reason invalid UTF-8", Rpc(&T::CancelTask, t, cancel_utf8), kInvalid,
       "CancelTaskRequest.reason: not valid UTF-8"},
      {"RetryTask id empty", Rpc(&T::RetryTask, t, retry_empty), kInvalid, "id"},
      {"RetryTask unknown id", Rpc(&T::RetryTask, t, retry_unknown), kNotFound, "t-doesnotexist"},
      {"RetryTask of a task that did not fail", Rpc(&T::RetryTask, t, retry_preparing),
       grpc::StatusCode::FAILED_PRECONDITION, task_id_},
      {"ListSubtasks task_id empty", Rpc(&T::ListSubtasks, t, subs_empty), kInvalid, "task_id"},
      {"ListSubtasks page_size too big", Rpc(&T::ListSubtasks, t, subs_big), kInvalid,
       "page_size"},
      {"ListSubtasks unknown state", Rpc(&T::ListSubtasks, t, subs_state), kInvalid, "states"},
      {"ListSubtasks unknown task", Rpc(&T::ListSubtasks, t, subs_unknown), kNotFound,
       "t-doesnotexist"},
      {"ListSubtasks bad page_token", Rpc(&T::ListSubtasks, t, subs_token), kInvalid,
       "page_token"},
      {"GetHistory task_id empty", Rpc(&T::GetHistory, t, hist_empty), kInvalid, "task_id"},
      {"GetHistory page_size too big", Rpc(&T::GetHistory, t, hist_big), kInvalid, "page_size"},
      {"GetHistory negative subtask_index", Rpc(&T::GetHistory, t, hist_index), kInvalid,
       "subtask_index"},
      {"GetHistory unknown task", Rpc(&T::GetHistory, t, hist_unknown), kNotFound,
       "t-doesnotexist"},
  });
}

// This test verifies that a watch of a broken or unknown task id ends with
// the right code naming it.
TEST_F(BadInputTest, WatchRefusesBrokenAndUnknownIds) {
  auto watch = [this](const std::string& id) {
    return [this, id] {
      pb::WatchTasksRequest req;
      req.set_task_id(id);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      auto reader = tasks_->WatchTasks(&ctx, req);
      pb::WatchTasksResponse resp;
      while (reader->Read(&resp)) {
      }
      return reader->Finish();
    };
  };
  Run({
      {"WatchTasks task_id with bad characters", watch("a b"), kInvalid, "task_id"},
      {"WatchTasks unknown task", watch("t-doesnotexist"), kNotFound, "t-doesnotexist"},
  });
}

// This test verifies every WorkerService RPC with broken fields and unknown
// ids; none may change the database.
TEST_F(BadInputTest, WorkerCallsRefuseBrokenFieldsAndUnknownIds) {
  auto* w = workers_.get();
  using W = pb::WorkerService::Stub;
  auto reg = [](std::function<void(pb::RegisterRequest&)> edit) {
    pb::RegisterRequest r;
    r.set_name("n");
    r.add_kinds("sum");
    r.set_slots(2);
    edit(r);
    return r;
  };
  pb::HeartbeatRequest hb_empty;
  pb::AcquireRequest acq_empty, acq_subtasks, acq_tasks, acq_unknown;
  acq_subtasks.set_worker_id(worker_id_);
  acq_subtasks.set_max_subtasks(UINT32_MAX);
  acq_tasks.set_worker_id(worker_id_);
  acq_tasks.set_max_tasks(UINT32_MAX);
  acq_unknown.set_worker_id("w-doesnotexist");
  acq_unknown.set_max_subtasks(1);
  auto report = [this](std::function<void(pb::SubtaskReport&)> edit) {
    pb::ReportRequest r;
    r.set_worker_id(worker_id_);
    pb::SubtaskReport* s = r.add_reports();
    s->mutable_lease()->set_task_id(task_id_);
    s->mutable_lease()->set_subtask_index(0);
    s->mutable_lease()->set_epoch(1);
    s->set_succeeded_result_json("{}");
    edit(*s);
    return r;
  };
  auto transition = [this](std::function<void(pb::TransitionTaskRequest&)> edit) {
    pb::TransitionTaskRequest r;
    r.set_worker_id(worker_id_);
    r.set_task_id(task_id_);
    r.set_epoch(1);
    r.set_event("Planned");
    edit(r);
    return r;
  };
  pb::StopSubtasksRequest stop_empty, stop_unknown, stop_not_held;
  stop_unknown.set_worker_id(worker_id_);
  stop_unknown.set_task_id("t-doesnotexist");
  stop_not_held.set_worker_id(worker_id_);
  stop_not_held.set_task_id(task_id_);
  pb::WaitTaskRequest wait_empty, wait_unknown;
  wait_unknown.set_worker_id(worker_id_);
  wait_unknown.set_task_id("t-doesnotexist");
  pb::WaitTaskRequest wait_results = wait_unknown;
  wait_results.set_task_id(task_id_);
  wait_results.set_results_up_to(1'000'000);
  // Batches answer per item (issue 19): the call succeeds, and the case's
  // answer is the first item that was refused. A broken item is refused on
  // its own; here the good ones are refused too, for their lease.
  auto transitions = [&](int n, std::function<void(pb::TransitionTasksRequest&)> edit) {
    pb::TransitionTasksRequest r;
    for (int i = 0; i < n; ++i) *r.add_transitions() = transition([](auto&) {});
    edit(r);
    return r;
  };
  auto first_refused_transition = [this](pb::TransitionTasksRequest req,
                                          std::string wanted) -> std::function<grpc::Status()> {
    return [this, req, wanted] {
      pb::TransitionTasksResponse resp;
      grpc::Status s = Call(&pb::WorkerService::Stub::TransitionTasks, workers_.get(), req, &resp);
      if (!s.ok()) return s;
      for (const auto& r : resp.results()) {
        if (r.code() != 0 && r.message().find(wanted) != std::string::npos) {
          return grpc::Status(static_cast<grpc::StatusCode>(r.code()), r.message());
        }
      }
      return grpc::Status::OK;
    };
  };
  auto report_item = [this](pb::ReportRequest req) -> std::function<grpc::Status()> {
    return [this, req] {
      pb::ReportResponse resp;
      grpc::Status s = Call(&pb::WorkerService::Stub::Report, workers_.get(), req, &resp);
      if (!s.ok() || resp.codes_size() == 0 || resp.codes(0) == 0) return s;
      return grpc::Status(static_cast<grpc::StatusCode>(resp.codes(0)), resp.messages(0));
    };
  };
  pb::ReleaseTaskRequest rel_empty, rel_unknown, rel_not_held;
  rel_unknown.set_worker_id(worker_id_);
  rel_unknown.set_task_id("t-doesnotexist");
  rel_not_held.set_worker_id(worker_id_);
  rel_not_held.set_task_id(task_id_);
  rel_not_held.set_epoch(7);
  pb::DeregisterRequest dereg_empty, dereg_unknown;
  dereg_unknown.set_worker_id("w-doesnotexist");
  const auto precondition = grpc::StatusCode::FAILED_PRECONDITION;
  Run({
      {"Register name with a blank",
       Rpc(&W::Register, w, reg([](auto& r) { r.set_name("a b"); })), kInvalid, "name"},
      {"Register name invalid UTF-8",
       Rpc(&W::Register, w, reg([](auto& r) { r.set_name(kBadUtf8); })), kInvalid, "name"},
      {"Register no kinds", Rpc(&W::Register, w, reg([](auto& r) { r.clear_kinds(); })), kInvalid,
       "kinds"},
      {"Register kind empty", Rpc(&W::Register, w, reg([](auto& r) { r.add_kinds(""); })),
       kInvalid, "kinds"},
      {"Register too many kinds",
       Rpc(&W::Register, w,
           reg([](auto& r) {
             for (int i = 0; i < 2000; ++i) r.add_kinds("k" + std::to_string(i));
           })),
       kInvalid, "kinds"},
      {"Register slots zero", Rpc(&W::Register, w, reg([](auto& r) { r.set_slots(0); })),
       kInvalid, "slots"},
      {"Register slots too many", Rpc(&W::Register, w, reg([](auto& r) { r.set_slots(5000); })),
       kInvalid, "slots"},
      {"Heartbeat worker_id empty", Rpc(&W::Heartbeat, w, hb_empty), kInvalid, "worker_id"},
      {"Acquire worker_id empty", Rpc(&W::Acquire, w, acq_empty), kInvalid, "worker_id"},
      {"Acquire max_subtasks overflowing", Rpc(&W::Acquire, w, acq_subtasks), kInvalid,
       "max_subtasks"},
      {"Acquire max_tasks overflowing", Rpc(&W::Acquire, w, acq_tasks), kInvalid, "max_tasks"},
      {"Acquire unknown worker", Rpc(&W::Acquire, w, acq_unknown), kNotFound, "w-doesnotexist"},
      {"Report outcome unset", report_item(report([](auto& s) { s.clear_outcome(); })),
       kInvalid, "reports[0].outcome"},
      {"Report negative subtask_index",
       report_item(report([](auto& s) { s.mutable_lease()->set_subtask_index(-1); })), kInvalid,
       "reports[0].lease.subtask_index"},
      // A result the store cannot keep fails the slice for good (it would
      // be the same on a retry); here the task is not planned, so nothing moves.
      {"Report result not JSON",
       report_item(report([](auto& s) { s.set_succeeded_result_json("{nope"); })), kNotFound,
       "not found"},
      {"Report result over the size limit",
       report_item(report([](auto& s) {
         s.set_succeeded_result_json("\"" + std::string(2 << 20, 'x') + "\"");
       })),
       kNotFound, "not found"},
      {"Report error too long",
       report_item(report([](auto& s) { s.set_failed_error(std::string(1 << 20, 'e')); })),
       kNotFound, "not found"},
      {"Report task_id with bad characters",
       report_item(report([](auto& s) { s.mutable_lease()->set_task_id("a b"); })), kInvalid,
       "reports[0].lease.task_id"},
      {"TransitionTask unknown event",
       Rpc(&W::TransitionTask, w, transition([](auto& r) { r.set_event("Exploded"); })), kInvalid,
       "event"},
      {"TransitionTask unknown outcome",
       Rpc(&W::TransitionTask, w,
           transition([](auto& r) { r.set_outcome(static_cast<pb::Outcome>(42)); })),
       kInvalid, "outcome"},
      // A result the store cannot keep turns the end into FinalizedFailed;
      // here the lease is not held, so nothing moves.
      {"TransitionTask result not JSON",
       Rpc(&W::TransitionTask, w,
           transition([](auto& r) {
             r.set_event("Finalized");
             r.set_result_json("{nope");
           })),
       precondition, "lease"},
      {"TransitionTask then_finalize with Planned",
       Rpc(&W::TransitionTask, w, transition([](auto& r) { r.set_then_finalize(true); })),
       kInvalid, "then_finalize"},
      {"TransitionTask reason too long",
       Rpc(&W::TransitionTask, w, transition([](auto& r) { r.set_reason(std::string(1 << 20, 'r')); })),
       kInvalid, "reason"},
      {"TransitionTask unknown task",
       Rpc(&W::TransitionTask, w, transition([](auto& r) { r.set_task_id("t-doesnotexist"); })),
       kNotFound, "t-doesnotexist"},
      {"TransitionTask lease not held", Rpc(&W::TransitionTask, w, transition([](auto&) {})),
       precondition, "lease"},
      {"TransitionTasks unknown event in the second",
       first_refused_transition(
           transitions(2, [](auto& r) { r.mutable_transitions(1)->set_event("Exploded"); }),
           "transitions[1]."),
       kInvalid, "transitions[1].event"},
      {"TransitionTasks worker_id empty",
       first_refused_transition(
           transitions(1, [](auto& r) { r.mutable_transitions(0)->clear_worker_id(); }),
           "transitions[0]."),
       kInvalid, "transitions[0].worker_id"},
      {"TransitionTasks then_finalize with Planned",
       first_refused_transition(
           transitions(3, [](auto& r) { r.mutable_transitions(2)->set_then_finalize(true); }),
           "transitions[2]."),
       kInvalid, "transitions[2].then_finalize"},
      {"TransitionTasks too many", Rpc(&W::TransitionTasks, w, transitions(1001, [](auto&) {})),
       kInvalid, "transitions: at most 1000"},
      {"StopSubtasks ids empty", Rpc(&W::StopSubtasks, w, stop_empty), kInvalid, "worker_id"},
      {"StopSubtasks unknown task", Rpc(&W::StopSubtasks, w, stop_unknown), kNotFound,
       "t-doesnotexist"},
      {"StopSubtasks task not Terminating", Rpc(&W::StopSubtasks, w, stop_not_held), precondition,
       "Terminating"},
      {"WaitTask ids empty", Rpc(&W::WaitTask, w, wait_empty), kInvalid, "worker_id"},
      {"WaitTask unknown task", Rpc(&W::WaitTask, w, wait_unknown), kNotFound, "t-doesnotexist"},
      {"WaitTask results_up_to over the limit", Rpc(&W::WaitTask, w, wait_results), kInvalid,
       "results_up_to"},
      {"ReleaseTask ids empty", Rpc(&W::ReleaseTask, w, rel_empty), kInvalid, "worker_id"},
      {"ReleaseTask unknown task", Rpc(&W::ReleaseTask, w, rel_unknown), kNotFound,
       "t-doesnotexist"},
      {"ReleaseTask lease not held", Rpc(&W::ReleaseTask, w, rel_not_held), precondition,
       "lease"},
      {"Deregister worker_id empty", Rpc(&W::Deregister, w, dereg_empty), kInvalid, "worker_id"},
      // Deregister is idempotent (a retried call after success): OK, no write.
      {"Deregister unknown worker", Rpc(&W::Deregister, w, dereg_unknown), grpc::StatusCode::OK,
       ""},
  });
}

// This test verifies that a batch of transitions answers each on its own:
// the call succeeds, a transition whose lease is not held gets
// FAILED_PRECONDITION and one of an unknown task NOT_FOUND, each in its place,
// and the database is unchanged.
TEST_F(BadInputTest, TransitionTasksAnswersEachTransitionOnItsOwn) {
  const std::string before = Digest();
  pb::TransitionTasksRequest req;
  for (const std::string id : {task_id_, std::string("t-doesnotexist")}) {
    pb::TransitionTaskRequest* t = req.add_transitions();
    t->set_worker_id(worker_id_);
    t->set_task_id(id);
    t->set_epoch(1);
    t->set_event("Planned");
  }
  pb::TransitionTasksResponse resp;
  grpc::Status s = Call(&pb::WorkerService::Stub::TransitionTasks, workers_.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION))
      << resp.results(0).message();
  EXPECT_NE(resp.results(0).message().find("lease"), std::string::npos)
      << resp.results(0).message();
  EXPECT_FALSE(resp.results(0).has_task());
  EXPECT_EQ(resp.results(1).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_NE(resp.results(1).message().find("t-doesnotexist"), std::string::npos);
  EXPECT_EQ(Digest(), before);
}

// This test verifies the documented answer to a heartbeat from a worker the
// server does not know: OK with unknown_worker set (register again), and no
// write.
TEST_F(BadInputTest, HeartbeatOfAnUnknownWorkerSaysSoAndChangesNothing) {
  const std::string before = Digest();
  pb::HeartbeatRequest req;
  req.set_worker_id("w-doesnotexist");
  req.add_subtasks()->mutable_lease()->set_task_id(task_id_);
  pb::HeartbeatResponse resp;
  const grpc::Status s = Call(&pb::WorkerService::Stub::Heartbeat, workers_.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.unknown_worker());
  EXPECT_EQ(Digest(), before);
}

}  // namespace
}  // namespace orchard::it
