// Tests of the server's HTTP side against a real SqliteStore in a temp dir:
// the store's operators' reads (counts by state, the subtask grid, the error
// list), the Router (health, readiness, metrics, the JSON API and its errors,
// the embedded dashboard), metrics fed by the store's commit observer, and
// the Beast listener over a real loopback socket.
#include "tests/testing/temp_dir.h"
#include "server/http/router.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/lifecycle/task.h"
#include "server/ops/commit_reporter.h"
#include "server/http/http_server.h"
#include "server/store/observer.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/clock.h"
#include "tests/testing/ok.h"
#include "tests/testing/specs.h"
#include "tests/testing/store_requests.h"

namespace {

namespace pb = ::orchard::v1;
using nlohmann::json;
using orchard::State;
using orchard::server::http::HttpRequest;
using orchard::server::http::HttpResponse;
using orchard::server::http::ParseTarget;

using orchard::testing::kNow;
using orchard::testing::kTtl;
using orchard::testing::Ok;

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("http");
    orchard::store::SetCommitObserver(&reporter_);
    store_ = Ok(orchard::store::SqliteStore::Open(
        orchard::store::SqliteOptions{.path = (dir_ / "orchard.db").string()}));
    router_ = std::make_unique<orchard::server::http::Router>(
        store_.get(), &metrics_, &clock_,
        orchard::server::http::RouterOptions{.alive_window_ms = kTtl});
  }
  void TearDown() override {
    router_.reset();
    store_.reset();
    orchard::store::SetCommitObserver(nullptr);
    std::filesystem::remove_all(dir_);
  }

  HttpResponse Get(const std::string& target) { return router_->Handle(ParseTarget("GET", target)); }
  json GetJson(const std::string& target, int want_status = 200) {
    HttpResponse r = Get(target);
    EXPECT_EQ(r.status, want_status) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json") << target;
    return json::parse(r.body);
  }

  pb::Task Start(uint64_t end, uint64_t subtasks, uint32_t max_attempts = 3) {
    pb::TaskSpec s = orchard::testing::Spec("sum", 0, end, subtasks);
    s.set_params_json("{}");
    s.mutable_policy()->set_max_attempts(max_attempts);
    pb::Task t = Ok(store_->CreateTask(s, kNow)).task;
    orchard::store::TaskTransition tr;
    tr.task_id = t.id();
    tr.actor = "client";
    tr.event = orchard::lifecycle::TaskEvent::kPlanned;
    tr.plan.emplace();
    tr.plan->set_uniform(true);
    return Ok(store_->TransitionTask(tr, kNow));
  }
  std::string Worker() { return Ok(store_->RegisterWorker("node-1", {"sum"}, 4, kNow)); }
  std::vector<pb::SubtaskLease> Acquire(const std::string& w, uint32_t n) {
    return Ok(store_->Acquire(w, n, 0, kNow, kTtl)).subtasks;
  }
  void Report(const std::string& w, const pb::SubtaskLease& l, const std::string& error) {
    pb::SubtaskReport r = error.empty() ? orchard::testing::Succeeded(l.lease(), R"({"sum":1})")
                                        : orchard::testing::Failed(l.lease(), error);
    auto s = Ok(store_->Report(w, {r}, kNow));
    ASSERT_TRUE(s.at(0).ok()) << s.at(0);
  }

  std::filesystem::path dir_;
  orchard::testing::FakeClock clock_ = orchard::testing::ClockAtNow();
  orchard::server::ServerMetrics metrics_;
  orchard::server::CommitReporter reporter_{&metrics_};
  std::unique_ptr<orchard::store::SqliteStore> store_;
  std::unique_ptr<orchard::server::http::Router> router_;
};

// ------------------------------------------------------------ store reads
// (CountByState and the small grid are in the Store contract suite.)

// This test verifies that a task of 100,000 subtasks is aggregated into at
// most 2,000 contiguous cells whose counts add up, in one quick read.
TEST_F(Http, SubtaskGridAggregatesAHundredThousandSubtasks) {
  pb::Task t = Start(1'000'000, 100'000);
  std::string w = Worker();
  auto leases = Acquire(w, 30);  // subtasks 0..29 by priority/age order
  auto start = std::chrono::steady_clock::now();
  auto grid = Ok(store_->GetSubtaskGrid(t.id(), 2000));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start)
                .count();
  EXPECT_EQ(grid.total, 100'000u);
  EXPECT_EQ(grid.cell_size, 50u);
  ASSERT_EQ(grid.cells.size(), 2000u);
  uint64_t sum = 0, running = 0;
  for (size_t i = 0; i < grid.cells.size(); ++i) {
    EXPECT_EQ(grid.cells[i].begin, i * 50);
    EXPECT_EQ(grid.cells[i].end, i * 50 + 50);
    for (int s = 1; s <= 5; ++s) sum += grid.cells[i].by_state[s];
    running += grid.cells[i].by_state[static_cast<int>(State::kRunning)];
  }
  EXPECT_EQ(sum, 100'000u);
  EXPECT_EQ(running, 30u);
  std::printf("grid of 100,000 subtasks in %lld ms\n", static_cast<long long>(ms));

  json j = GetJson("/api/v1/tasks/" + t.id() + "/subtasks?limit=0");
  EXPECT_EQ(j["grid"]["cells"].size(), 2000u);
  EXPECT_EQ(j["grid"]["cell_size"], 50);
  EXPECT_EQ(j["grid"]["states"][0], "Preparing");
  EXPECT_TRUE(j["subtasks"].empty());
}

// This test verifies that the error list has the subtasks whose attempt
// failed (retrying, with their last error) and those in Error, by index.
TEST_F(Http, ErrorsListFailedAttemptsAndErrorSubtasks) {
  pb::Task t = Start(30, 3, /*max_attempts=*/1);
  std::string w = Worker();
  auto leases = Acquire(w, 3);
  ASSERT_EQ(leases.size(), 3u);
  Report(w, leases[0], "");
  Report(w, leases[2], "flaky: injected failure \"3\"");
  json j = GetJson("/api/v1/tasks/" + t.id() + "/errors");
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["index"], leases[2].lease().subtask_index());
  EXPECT_EQ(j["errors"][0]["state"], "Error");
  EXPECT_EQ(j["errors"][0]["attempt"], 1);
  EXPECT_EQ(j["errors"][0]["error"], "flaky: injected failure \"3\"");
  EXPECT_EQ(j["errors"][0]["worker"], "");
}

// ------------------------------------------------------------------ router

// This test verifies the health endpoints: alive, and ready while the store
// takes a write.
TEST_F(Http, HealthAndReadiness) {
  HttpResponse h = Get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok\n");
  HttpResponse r = Get("/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  store_->FailNextCommitsForTesting(1);
  HttpResponse down = Get("/readyz");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("store"), std::string::npos) << down.body;
  EXPECT_EQ(Get("/readyz").status, 200);
}

// This test verifies the task list, its filters and one task with its history.
TEST_F(Http, ListsTasksAndShowsOneWithItsHistory) {
  pb::Task a = Start(100, 10);
  pb::Task b = Start(100, 5);
  json list = GetJson("/api/v1/tasks");
  ASSERT_EQ(list["tasks"].size(), 2u);
  EXPECT_EQ(list["tasks"][0]["id"], b.id());  // newest first
  EXPECT_EQ(list["tasks"][0]["subtasks"]["total"], 5);
  EXPECT_EQ(GetJson("/api/v1/tasks?state=Error")["tasks"].size(), 0u);
  EXPECT_EQ(GetJson("/api/v1/tasks?state=running,Error&limit=1")["tasks"].size(), 1u);
  EXPECT_EQ(GetJson("/api/v1/tasks?limit=1")["next_page_token"].get<std::string>().empty(), false);

  json one = GetJson("/api/v1/tasks/" + a.id());
  EXPECT_EQ(one["task"]["id"], a.id());
  EXPECT_EQ(one["task"]["state"], "Running");
  ASSERT_EQ(one["history"].size(), 2u);  // created, planned
  EXPECT_EQ(one["history"][1]["from"], "Preparing");
  EXPECT_EQ(one["history"][1]["to"], "Running");
  EXPECT_EQ(one["history"][1]["object"], "task");
}

// This test verifies that every bad request gets a clear error that names
// the object or the parameter.
TEST_F(Http, BadRequestsGetClearErrors) {
  json nf = GetJson("/api/v1/tasks/t-doesnotexist", 404);
  EXPECT_EQ(nf["error"], "task t-doesnotexist not found");
  EXPECT_EQ(nf["status"], "NOT_FOUND");
  EXPECT_EQ(GetJson("/api/v1/tasks/t-doesnotexist/subtasks", 404)["error"],
            "task t-doesnotexist not found");
  EXPECT_EQ(GetJson("/api/v1/tasks/t-doesnotexist/errors", 404)["error"],
            "task t-doesnotexist not found");
  EXPECT_NE(GetJson("/api/v1/tasks?limit=0", 400)["error"].get<std::string>().find("limit"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/v1/tasks?limit=abc", 400)["error"].get<std::string>().find("limit"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/v1/tasks?state=Bogus", 400)["error"].get<std::string>().find("state"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/v1/tasks?colour=red", 400)["error"].get<std::string>().find("colour"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/v1/tasks?page_token=zzz", 400)["error"].get<std::string>().find(
                "page_token"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/v1/nothing", 404)["error"].get<std::string>().find("/api/v1/nothing"),
            std::string::npos);
  EXPECT_EQ(GetJson("/api/v1/tasks/%zz", 400)["status"], "INVALID_ARGUMENT");
  HttpResponse post = router_->Handle(ParseTarget("POST", "/api/v1/tasks"));
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(Get("/nope.html").status, 404);
}

// This test verifies that the dashboard's files are embedded and served with
// their content types.
TEST_F(Http, ServesTheEmbeddedDashboard) {
  HttpResponse index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("/assets/app.js"), std::string::npos);
  HttpResponse js = Get("/assets/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  // Byte-exact: the embedded file is the file in the repository.
  std::ifstream f(std::string(ORCHARD_SOURCE_DIR) + "/server/http/assets/app.js",
                  std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(js.body, on_disk);
  EXPECT_EQ(Get("/assets/app.css").content_type, "text/css; charset=utf-8");
}

// This test verifies that /metrics shows the store's counts and the
// transitions the store committed (through the commit observer), and that
// the exposition passes promtool.
TEST_F(Http, MetricsCountWhatTheStoreCommitted) {
  pb::Task t = Start(30, 3, /*max_attempts=*/2);
  std::string w = Worker();
  auto leases = Acquire(w, 3);
  Report(w, leases[0], "boom");  // attempt 1 of 2: back to Preparing
  // The store reports a batch's transitions just after answering its callers:
  // poll (with a deadline) until the last one is counted.
  HttpResponse r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    r = Get("/metrics");
  } while (r.body.find("orchard_subtask_retries_total{cause=\"failed\"} 1") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = r.body;
  EXPECT_NE(m.find("orchard_tasks{state=\"Running\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("orchard_subtasks{state=\"Running\"} 2"), std::string::npos);
  EXPECT_NE(m.find("orchard_subtasks{state=\"Preparing\"} 1"), std::string::npos);
  EXPECT_NE(m.find("orchard_transitions_total{object=\"subtask\",from=\"Preparing\",to="
                   "\"Running\"} 3"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("orchard_transitions_total{object=\"task\",from=\"Preparing\",to="
                   "\"Running\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("orchard_subtask_retries_total{cause=\"failed\"} 1"), std::string::npos);
  EXPECT_NE(m.find("orchard_tasks_created_total 1"), std::string::npos);
  EXPECT_NE(m.find("orchard_workers{alive=\"true\"} 1"), std::string::npos);
  EXPECT_NE(m.find("orchard_slots 4"), std::string::npos);
  EXPECT_EQ(m.find("orchard_store_commit_seconds_count 0"), std::string::npos);

  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  std::filesystem::path file = dir_ / "metrics.txt";
  std::ofstream(file) << m;
  std::string cmd = "promtool check metrics < " + file.string() + " > " +
                    (dir_ / "promtool.out").string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream out(dir_ / "promtool.out");
  std::string said((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(WEXITSTATUS(rc), 0) << said;
}

// ---------------------------------------------------------------- listener

// Sends one HTTP/1.1 request on `fd` and reads one response (Content-Length).
std::string Roundtrip(int fd, const std::string& target, bool close) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n" +
                    (close ? "Connection: close\r\n" : "") + "\r\n";
  EXPECT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string in;
  char buf[4096];
  while (true) {
    size_t head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) {
        size_t len = std::stoul(in.substr(cl + 16));
        if (in.size() >= head_end + 4 + len) return in.substr(0, head_end + 4 + len);
      }
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return in;
    in.append(buf, static_cast<size_t>(n));
  }
}

// This test verifies the Beast listener end to end on a loopback socket:
// port 0, two requests on one keep-alive connection, then a clean stop.
TEST_F(Http, ListenerServesOverLoopbackWithKeepAlive) {
  orchard::server::http::HttpServer server(
      {.host = "127.0.0.1", .port = 0},
      [this](const HttpRequest& req) { return router_->Handle(req); });
  uint16_t port = Ok(server.Start());
  ASSERT_NE(port, 0);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string a = Roundtrip(fd, "/healthz", false);
  EXPECT_EQ(a.rfind("HTTP/1.1 200 OK", 0), 0u) << a;
  EXPECT_NE(a.find("\r\n\r\nok\n"), std::string::npos);
  std::string b = Roundtrip(fd, "/api/v1/tasks/t-missing", true);
  EXPECT_EQ(b.rfind("HTTP/1.1 404", 0), 0u) << b;
  EXPECT_NE(b.find("application/json"), std::string::npos);
  EXPECT_NE(b.find("task t-missing not found"), std::string::npos);
  ::close(fd);
  server.Stop();
  // A host that is not an IP address is refused by name.
  orchard::server::http::HttpServer third({.host = "not-an-ip", .port = 0},
                                          [](const HttpRequest&) { return HttpResponse{}; });
  EXPECT_TRUE(absl::IsInvalidArgument(third.Start().status()));
}

// This test verifies --http's HOST:PORT parsing and its errors.
TEST(HttpFlags, ParseHostPort) {
  using orchard::server::http::ParseHostPort;
  EXPECT_EQ(Ok(ParseHostPort("127.0.0.1:8080", "--http")),
            std::make_pair(std::string("127.0.0.1"), uint16_t{8080}));
  EXPECT_EQ(Ok(ParseHostPort("[::1]:0", "--http")), std::make_pair(std::string("::1"), uint16_t{0}));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseHostPort("8080", "--http").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseHostPort("host:99999", "--http").status()));
  auto bad = ParseHostPort("host:", "--http");
  EXPECT_NE(std::string(bad.status().message()).find("--http"), std::string::npos);
}

// This test verifies the request-target parsing: path, decoded query, and a
// malformed escape.
TEST(HttpTarget, ParsesPathAndQuery) {
  HttpRequest r = ParseTarget("GET", "/api/v1/tasks?state=Running%2CError&kind=a+b&x");
  EXPECT_EQ(r.path, "/api/v1/tasks");
  EXPECT_EQ(r.query["state"], "Running,Error");
  EXPECT_EQ(r.query["kind"], "a b");
  EXPECT_EQ(r.query["x"], "");
  EXPECT_TRUE(r.target_error.empty());
  EXPECT_FALSE(ParseTarget("GET", "/a%2").target_error.empty());
  EXPECT_FALSE(ParseTarget("GET", "/a?b=%g1").target_error.empty());
}

}  // namespace
