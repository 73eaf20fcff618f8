// orchard-bench: starts its own orchard-server (embedded SQLite on local disk)
// and workers, runs the workloads of the performance issue, checks every
// result is exact, and prints one JSON object per figure (JSON lines).
//
//   orchard-bench [--quick] [--only NAME,...] [--bin DIR] [--dir DIR]
//
// --quick shrinks every workload to seconds (CI runs it as a smoke test that
// the benchmark works and its results are exact; its figures mean nothing).
// Workloads: limit, throughput, latency, fanout, many, many-batched, idle; bigcancel only when named.
//
// Single-threaded except the `many` workload's client threads.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/process.h"
#include "orchard/v1/orchard.grpc.pb.h"

namespace fs = std::filesystem;
namespace pb = ::orchard::v1;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

double MsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// Every live child's process group, so that a failed run leaves no server
// or worker behind.
std::mutex g_children_mu;
std::set<pid_t> g_children;

[[noreturn]] void Die(const std::string& msg) {
  fprintf(stderr, "orchard-bench: error: %s\n", msg.c_str());
  {
    std::lock_guard lock(g_children_mu);
    for (pid_t pid : g_children) kill(-pid, SIGKILL);
  }
  exit(1);
}

// The synchronous level of this run, stated on every line (set once, in main).
std::string g_sync = "normal";

void Emit(json j) {
  j["synchronous"] = g_sync;
  j["date"] = [] {
    char buf[32];
    time_t t = time(nullptr);
    strftime(buf, sizeof buf, "%Y-%m-%d", gmtime(&t));
    return std::string(buf);
  }();
  printf("%s\n", j.dump().c_str());
  fflush(stdout);
}

void Progress(const std::string& msg) {
  fprintf(stderr, "orchard-bench: %s\n", msg.c_str());
}

// ------------------------------------------------------------------ processes

struct Child {
  pid_t pid = -1;
  std::string name;
};

Child Spawn(const std::string& name, const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  std::lock_guard lock(g_children_mu);
  g_children.insert(pid);
  return {pid, name};
}

void Stop(Child& c, int sig = SIGTERM) {
  if (c.pid <= 0) return;
  {
    std::lock_guard lock(g_children_mu);
    g_children.erase(c.pid);
  }
  kill(c.pid, sig);
  for (int i = 0; i < 500; ++i) {
    if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
      c.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-c.pid, SIGKILL);
  waitpid(c.pid, nullptr, 0);
  c.pid = -1;
}

// Peak resident set (VmHWM) and CPU time (utime + stime) of a live process.
int64_t PeakRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto close = s.rfind(')');
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (rest >> field) f.push_back(field);
  // After the command: state is field 3 (index 0 here); utime 14, stime 15.
  long ticks = sysconf(_SC_CLK_TCK);
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
}

// Bytes the process caused to be written to storage (/proc/<pid>/io
// write_bytes: the WAL and the checkpoints, for the server); -1 when the
// kernel does not say.
double WriteBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  double value = 0;
  while (in >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  return -1;
}

// ------------------------------------------------------------------- cluster

struct Options {
  bool quick = false;
  std::string sync = "normal";  // the server's --sync, and the limit's pragma
  std::set<std::string> only;
  fs::path bin;
  fs::path dir;
};

class Cluster {
 public:
  Cluster(const Options& o, const std::string& name, int workers, int slots) : o_(o) {
    dir_ = o.dir / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    server_ = Spawn("server",
                    {(o.bin / "server/orchard-server").string(), "--listen", "127.0.0.1:0", "--db",
                     (dir_ / "orchard.db").string(), "--port-file", (dir_ / "port").string(),
                     "--http", "127.0.0.1:0", "--http-port-file", (dir_ / "http-port").string(),
                     "--log-level", "warn", "--sync", o.sync},
                    dir_ / "server.log");
    // Both ports are written once served (gRPC first, then HTTP).
    for (int i = 0; i < 500 && !(fs::exists(dir_ / "port") && fs::exists(dir_ / "http-port"));
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream pf(dir_ / "port");
    int port = 0;
    pf >> port;
    if (port == 0) Die("server did not start; see " + (dir_ / "server.log").string());
    address_ = "127.0.0.1:" + std::to_string(port);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::TaskService::NewStub(channel_);
    // The figures are stated at the server's own level, not the one asked for.
    const std::string info = "orchard_store_info{backend=\"sqlite\",synchronous=\"" + o.sync + "\"}";
    auto level = Metrics({"orchard_store_info"});
    if (level.count(info) == 0 || level[info] != 1) {
      Die("the server does not say it runs at synchronous=" + o.sync + " (" + info +
          " missing from /metrics)");
    }
    for (int i = 0; i < workers; ++i) {
      workers_.push_back(Spawn("worker",
                               {(o.bin / "worker/orchard-worker").string(), "--server", address_,
                                "--slots", std::to_string(slots), "--name",
                                "bench-" + std::to_string(i), "--log-level", "warn"},
                               dir_ / ("worker" + std::to_string(i) + ".log")));
    }
    WaitWorkers(workers);
  }
  ~Cluster() {
    for (auto& w : workers_) Stop(w);
    Stop(server_);
  }

  pb::TaskService::Stub* stub() { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const Child& server() const { return server_; }
  const std::vector<Child>& workers() const { return workers_; }
  const fs::path& dir() const { return dir_; }
  const std::string& address() const { return address_; }

  void WaitWorkers(int n) {
    auto start = SteadyClock::now();
    while (MsSince(start) < 20000) {
      grpc::ClientContext ctx;
      pb::ListWorkersRequest req;
      pb::ListWorkersResponse resp;
      if (stub_->ListWorkers(&ctx, req, &resp).ok()) {
        int alive = 0;
        for (const auto& w : resp.workers()) alive += w.alive();
        if (alive >= n) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Die("workers did not register");
  }

  pb::Task Submit(const std::string& kind, uint64_t begin, uint64_t end, uint64_t subtasks,
                  pb::TaskService::Stub* stub = nullptr) {
    pb::SubmitRequest req;
    req.mutable_spec()->set_kind(kind);
    req.mutable_spec()->set_begin(begin);
    req.mutable_spec()->set_end(end);
    req.mutable_spec()->mutable_split()->set_subtasks(subtasks);
    pb::SubmitResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto s = (stub ? stub : stub_.get())->Submit(&ctx, req, &resp);
    if (!s.ok()) Die("submit: " + s.error_message());
    return resp.task();
  }

  // Follows the task's watch stream until it is terminal; `on_update` sees
  // every snapshot. Returns the final task.
  template <typename Fn>
  pb::Task WaitTerminal(const std::string& id, Fn on_update, pb::TaskService::Stub* stub = nullptr) {
    uint64_t after = 0;
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::ClientContext ctx;
      pb::WatchTasksRequest req;
      req.set_task_id(id);
      req.set_after_revision(after);
      auto reader = (stub ? stub : stub_.get())->WatchTasks(&ctx, req);
      pb::WatchTasksResponse resp;
      while (reader->Read(&resp)) {
        after = resp.task().revision();
        on_update(resp.task());
        if (resp.task().state() == pb::ERROR || resp.task().state() == pb::TERMINATED) {
          ctx.TryCancel();
          reader->Finish();
          return resp.task();
        }
      }
      reader->Finish();
    }
    Die("watch of " + id + " kept failing");
  }

  // The server's counters from /metrics: "name{labels}" -> value, for the
  // families asked for (e.g. "orchard_rpcs_total").
  std::map<std::string, double> Metrics(const std::vector<std::string>& families) {
    std::ifstream pf(dir_ / "http-port");
    int port = 0;
    pf >> port;
    if (port == 0) Die("server wrote no http port");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("metrics: connect");
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      Die("metrics: write");
    }
    std::string body;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) body.append(buf, static_cast<size_t>(n));
    close(fd);
    std::map<std::string, double> out;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
      for (const auto& f : families) {
        if (line.rfind(f, 0) != 0) continue;
        const size_t space = line.rfind(' ');
        if (space != std::string::npos) out[line.substr(0, space)] = std::stod(line.substr(space + 1));
      }
    }
    return out;
  }

  pb::Task Get(const std::string& id) {
    pb::GetTaskRequest req;
    req.set_id(id);
    pb::Task t;
    grpc::ClientContext ctx;
    if (!stub_->GetTask(&ctx, req, &t).ok()) Die("get " + id);
    return t;
  }

 private:
  const Options& o_;
  fs::path dir_;
  Child server_;
  std::vector<Child> workers_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::TaskService::Stub> stub_;
};

uint64_t Count(const pb::Task& t) {
  json r = json::parse(t.result_json(), nullptr, false);
  if (r.is_discarded() || !r.contains("count")) return 0;
  return r["count"].get<uint64_t>();
}

void CheckNoop(const pb::Task& t, uint64_t items, const std::string& what) {
  if (t.state() != pb::TERMINATED || t.outcome() != pb::SUCCEEDED || Count(t) != items) {
    Die(what + ": task " + t.id() + " ended " + pb::State_Name(t.state()) + "/" +
        pb::Outcome_Name(t.outcome()) + " result " + t.result_json() + ", expected count " +
        std::to_string(items));
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ------------------------------------------------------------------ workloads

// The store's own ceiling: committed row updates/s on a subtasks-like table
// with the store's pragmas (WAL, the run's synchronous level) and its batch size.
double RunLimit(const Options& o) {
  fs::path dir = o.dir / "limit";
  fs::remove_all(dir);
  fs::create_directories(dir);
  sqlite3* db = nullptr;
  sqlite3_open((dir / "limit.db").c_str(), &db);
  const std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=" + o.sync + ";";
  sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, nullptr);
  sqlite3_exec(db,
               "CREATE TABLE s(task_id TEXT, idx INTEGER, state INTEGER, epoch INTEGER,"
               " result TEXT, PRIMARY KEY(task_id, idx)) WITHOUT ROWID;",
               nullptr, nullptr, nullptr);
  const int rows = o.quick ? 20'000 : 200'000;
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* ins;
  sqlite3_prepare_v2(db, "INSERT INTO s VALUES('t-bench', ?1, 1, 0, NULL)", -1, &ins, nullptr);
  for (int i = 0; i < rows; ++i) {
    sqlite3_bind_int(ins, 1, i);
    sqlite3_step(ins);
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_stmt* up;
  sqlite3_prepare_v2(db, "UPDATE s SET state=5, epoch=epoch+1, result='{\"count\":1}' "
                         "WHERE task_id='t-bench' AND idx=?1 AND state=1",
                     -1, &up, nullptr);
  const int batch = 256;  // the store's max_batch
  auto start = SteadyClock::now();
  for (int i = 0; i < rows;) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (int j = 0; j < batch && i < rows; ++j, ++i) {
      sqlite3_bind_int(up, 1, i);
      sqlite3_step(up);
      sqlite3_reset(up);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double secs = MsSince(start) / 1000.0;
  sqlite3_finalize(up);
  sqlite3_close(db);
  double per_sec = rows / secs;
  Emit({{"workload", "limit"}, {"row_updates_per_s", static_cast<int64_t>(per_sec)},
        {"rows", rows}, {"batch", batch}});
  return per_sec;
}

void RunThroughput(const Options& o, double limit) {
  std::vector<uint64_t> sizes = o.quick ? std::vector<uint64_t>{2'000}
                                        : std::vector<uint64_t>{20'000, 200'000};
  for (uint64_t n : sizes) {
    Cluster c(o, "throughput-" + std::to_string(n), 2, 4);
    Progress("throughput: " + std::to_string(n) + " noop subtasks, 2 workers x 4 slots");
    auto start = SteadyClock::now();
    pb::Task t = c.Submit("noop", 0, n, n);
    pb::Task end = c.WaitTerminal(t.id(), [](const pb::Task&) {});
    double secs = MsSince(start) / 1000.0;
    CheckNoop(end, n, "throughput");
    double rate = n / secs;
    Emit({{"workload", "throughput"}, {"subtasks", n}, {"seconds", secs},
          {"subtasks_per_s", static_cast<int64_t>(rate)},
          // Each subtask makes two durable transitions (Leased, Succeeded).
          {"store_fraction", limit > 0 ? 2 * rate / limit : 0}});
  }
}

void RunLatency(const Options& o) {
  Cluster c(o, "latency", 2, 4);
  int n = o.quick ? 20 : 200;
  Progress("latency: " + std::to_string(n) + " one-subtask tasks, one after another");
  std::vector<double> total, first_running;
  for (int i = 0; i < n; ++i) {
    auto start = SteadyClock::now();
    pb::Task t = c.Submit("noop", 0, 1, 1);
    std::optional<double> running;
    pb::Task end = c.WaitTerminal(t.id(), [&](const pb::Task& u) {
      if (!running && u.state() != pb::PREPARING) running = MsSince(start);
    });
    total.push_back(MsSince(start));
    CheckNoop(end, 1, "latency");
    // The watch stream is throttled; the server's own clock gives the exact
    // submit-to-Running interval.
    first_running.push_back(static_cast<double>(end.start_time_ms() - end.create_time_ms()));
  }
  Emit({{"workload", "latency"}, {"tasks", n}, {"p50_ms", Percentile(total, 50)},
        {"p99_ms", Percentile(total, 99)},
        {"first_running_p50_ms", Percentile(first_running, 50)},
        {"first_running_p99_ms", Percentile(first_running, 99)}});
}

void RunFanout(const Options& o) {
  uint64_t n = o.quick ? 20'000 : 1'000'000;
  Cluster c(o, "fanout", 2, 4);
  Progress("fan-out: one task of " + std::to_string(n) + " noop subtasks");
  auto start = SteadyClock::now();
  pb::Task t = c.Submit("noop", 0, n, n);
  std::optional<double> planned_ms;
  std::vector<double> get_ms, page_ms;
  int64_t last_sample = 0;
  uint64_t last_done = 0;
  pb::Task end = c.WaitTerminal(t.id(), [&](const pb::Task& u) {
    if (!planned_ms && u.state() != pb::PREPARING) planned_ms = MsSince(start);
    if (u.counts().succeeded() != last_done) {
      last_done = u.counts().succeeded();
      int64_t now = static_cast<int64_t>(MsSince(start));
      if (now - last_sample >= 500 && u.state() == pb::RUNNING) {
        last_sample = now;
        auto g = SteadyClock::now();
        c.Get(t.id());
        get_ms.push_back(MsSince(g));
        auto p = SteadyClock::now();
        pb::ListSubtasksRequest req;
        req.set_task_id(t.id());
        req.set_page_size(100);
        pb::ListSubtasksResponse resp;
        grpc::ClientContext ctx;
        c.stub()->ListSubtasks(&ctx, req, &resp);
        page_ms.push_back(MsSince(p));
        if (last_done > 0) {
          Progress("fan-out: " + std::to_string(last_done) + "/" + std::to_string(n) + " done");
        }
      }
    }
  });
  double secs = MsSince(start) / 1000.0;
  CheckNoop(end, n, "fan-out");
  json rss = json::object();
  rss["server_kb"] = PeakRssKb(c.server().pid);
  for (size_t i = 0; i < c.workers().size(); ++i) {
    rss["worker" + std::to_string(i) + "_kb"] = PeakRssKb(c.workers()[i].pid);
  }
  uintmax_t db_bytes = 0;
  for (const auto& e : fs::directory_iterator(c.dir())) {
    if (e.path().filename().string().rfind("orchard.db", 0) == 0) db_bytes += e.file_size();
  }
  Emit({{"workload", "fanout"}, {"subtasks", n},
        // The task's own clock: start_time is when its Planned call reached
        // the server, before the plan's rows were written; the client sees
        // Running once they are committed (submit_to_running_seen_s).
        {"plan_requested_s", static_cast<double>(end.start_time_ms() - end.create_time_ms()) / 1000.0},
        {"submit_to_running_seen_s", planned_ms.value_or(-1) / 1000.0},
        {"finish_seconds", secs}, {"peak_rss", rss}, {"db_bytes", db_bytes},
        {"get_p50_ms", Percentile(get_ms, 50)}, {"get_max_ms", Percentile(get_ms, 100)},
        {"subtasks_page_p50_ms", Percentile(page_ms, 50)},
        {"subtasks_page_max_ms", Percentile(page_ms, 100)}, {"samples", get_ms.size()}});
}

// bigcancel (issue 19): one task of 2,000,000 `sleep` subtasks, 2 of them
// running, is cancelled while one client submits a small task every 50 ms
// and one (fake) worker heartbeats every 100 ms; prints their latencies
// during the cancel, the time from the cancel to Terminated, and the
// server's peak RSS. Runs only when named (--only bigcancel).
void RunBigCancel(const Options& o) {
  const uint64_t n = o.quick ? 50'000 : 2'000'000;
  Cluster c(o, "bigcancel", 1, 2);
  Progress("bigcancel: planning one task of " + std::to_string(n) + " sleep subtasks");
  pb::SubmitRequest big;
  big.mutable_spec()->set_kind("sleep");
  big.mutable_spec()->set_begin(0);
  big.mutable_spec()->set_end(n);
  big.mutable_spec()->mutable_split()->set_subtasks(n);
  big.mutable_spec()->set_params_json(R"({"ms": 600000})");
  pb::SubmitResponse submitted;
  {
    grpc::ClientContext ctx;
    if (!c.stub()->Submit(&ctx, big, &submitted).ok()) Die("bigcancel: submit");
  }
  const std::string id = submitted.task().id();
  const auto plan_start = SteadyClock::now();
  for (;;) {
    pb::Task t = c.Get(id);
    if (t.state() == pb::RUNNING && t.counts().running() > 0) break;
    if (MsSince(plan_start) > 120'000) Die("bigcancel: the task did not start running");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double plan_s = MsSince(plan_start) / 1000.0;

  // The fake worker: registered, heartbeating, asking for nothing.
  auto workers = pb::WorkerService::NewStub(c.channel());
  std::string fake_id;
  {
    pb::RegisterRequest reg;
    reg.set_name("bench-heartbeats");
    reg.add_kinds("bench-none");
    reg.set_slots(1);
    pb::RegisterResponse resp;
    grpc::ClientContext ctx;
    if (!workers->Register(&ctx, reg, &resp).ok()) Die("bigcancel: register");
    fake_id = resp.worker_id();
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> cancelling{false};
  std::mutex mu;
  std::vector<double> submit_ms, heartbeat_ms;
  int submit_errors = 0, heartbeat_errors = 0;
  std::thread submitter([&] {
    auto stub = pb::TaskService::NewStub(c.channel());
    while (!stop) {
      pb::SubmitRequest req;
      req.mutable_spec()->set_kind("noop");
      req.mutable_spec()->set_begin(0);
      req.mutable_spec()->set_end(1);
      req.mutable_spec()->mutable_split()->set_subtasks(1);
      pb::SubmitResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      auto t0 = SteadyClock::now();
      const bool ok = stub->Submit(&ctx, req, &resp).ok();
      const double ms = MsSince(t0);
      {
        std::lock_guard lock(mu);
        if (!ok) ++submit_errors;
        if (cancelling) submit_ms.push_back(ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::thread heartbeater([&] {
    while (!stop) {
      pb::HeartbeatRequest req;
      req.set_worker_id(fake_id);
      pb::HeartbeatResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      auto t0 = SteadyClock::now();
      const bool ok = workers->Heartbeat(&ctx, req, &resp).ok();
      const double ms = MsSince(t0);
      {
        std::lock_guard lock(mu);
        if (!ok) ++heartbeat_errors;
        if (cancelling) heartbeat_ms.push_back(ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Progress("bigcancel: cancelling");
  cancelling = true;
  const auto cancel_start = SteadyClock::now();
  {
    pb::CancelTaskRequest req;
    req.set_id(id);
    req.set_reason("bigcancel");
    pb::Task t;
    grpc::ClientContext ctx;
    if (!c.stub()->CancelTask(&ctx, req, &t).ok()) Die("bigcancel: cancel");
  }
  pb::Task end = c.WaitTerminal(id, [](const pb::Task&) {});
  const double cancel_s = MsSince(cancel_start) / 1000.0;
  cancelling = false;
  stop = true;
  submitter.join();
  heartbeater.join();
  if (end.state() != pb::TERMINATED || end.outcome() != pb::CANCELLED) {
    Die("bigcancel: the task ended " + std::to_string(end.state()) + "/" +
        std::to_string(end.outcome()) + ", not Terminated/CANCELLED");
  }
  if (end.counts().cancelled() != n) {
    Die("bigcancel: " + std::to_string(end.counts().cancelled()) + " of " + std::to_string(n) +
        " subtasks cancelled");
  }
  std::lock_guard lock(mu);
  Emit({{"workload", "bigcancel"}, {"subtasks", n}, {"plan_s", plan_s},
        {"cancel_to_terminated_s", cancel_s},
        {"submit_p50_ms", Percentile(submit_ms, 50)}, {"submit_p99_ms", Percentile(submit_ms, 99)},
        {"submit_max_ms", Percentile(submit_ms, 100)}, {"submits", submit_ms.size()},
        {"heartbeat_p50_ms", Percentile(heartbeat_ms, 50)},
        {"heartbeat_p99_ms", Percentile(heartbeat_ms, 99)},
        {"heartbeat_max_ms", Percentile(heartbeat_ms, 100)}, {"heartbeats", heartbeat_ms.size()},
        {"errors", submit_errors + heartbeat_errors},
        {"server_peak_rss_kb", PeakRssKb(c.server().pid)}});
}

void RunMany(const Options& o) {
  int total = o.quick ? 400 : 10'000;
  const int clients = 8;
  Cluster c(o, "many", 2, 4);
  Progress("many tasks: " + std::to_string(total) + " one-subtask tasks from " +
           std::to_string(clients) + " clients");
  // One watch of every task, as a dashboard would hold, sees each task end;
  // the clock stops at the last one.
  std::atomic<bool> watching{false};
  std::set<std::string> ended;
  std::thread watcher([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    pb::WatchTasksRequest req;
    auto reader = c.stub()->WatchTasks(&ctx, req);
    pb::WatchTasksResponse resp;
    watching = true;
    while (reader->Read(&resp)) {
      const auto& t = resp.task();
      if (t.state() == pb::ERROR || t.state() == pb::TERMINATED) ended.insert(t.id());
      if (static_cast<int>(ended.size()) == total) {
        ctx.TryCancel();
        break;
      }
    }
    reader->Finish();
    if (static_cast<int>(ended.size()) < total) {
      Die("many: only " + std::to_string(ended.size()) + " of " + std::to_string(total) +
          " tasks ended within 10 minutes");
    }
  });
  while (!watching) std::this_thread::yield();
  auto cpu = [&c] {
    std::vector<double> v{CpuSeconds(c.server().pid)};
    for (const auto& w : c.workers()) v.push_back(CpuSeconds(w.pid));
    return v;
  };
  const std::vector<std::string> families = {"orchard_rpcs_total", "orchard_stream_messages_total",
                                             "orchard_store_commit_batch_ops_count",
                                             "orchard_store_commit_batch_ops_sum",
                                             "orchard_store_commit_seconds_sum",
                                             "orchard_rpc_duration_seconds_sum",
                                             "orchard_rpc_duration_seconds_count"};
  const auto metrics_before = c.Metrics(families);
  const std::vector<double> cpu_before = cpu();
  const double written_before = WriteBytes(c.server().pid);
  std::atomic<int> next{0};
  std::vector<std::vector<std::string>> ids(clients);
  auto start = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int k = 0; k < clients; ++k) {
    threads.emplace_back([&, k] {
      // Each client has its own channel, as separate client processes would.
      grpc::ChannelArguments args;
      args.SetInt("orchard.bench.client", k);  // a distinct channel per client
      auto stub = pb::TaskService::NewStub(
          grpc::CreateCustomChannel(c.address(), grpc::InsecureChannelCredentials(), args));
      while (next.fetch_add(1) < total) ids[k].push_back(c.Submit("noop", 0, 1, 1, stub.get()).id());
    });
  }
  for (auto& t : threads) t.join();
  double submit_secs = MsSince(start) / 1000.0;
  watcher.join();
  double secs = MsSince(start) / 1000.0;
  const std::vector<double> cpu_after = cpu();
  const double written_after = WriteBytes(c.server().pid);
  // Where the time went: CPU seconds per task of the server and the workers.
  json cpu_ms_per_task = json::array();
  for (size_t i = 0; i < cpu_after.size(); ++i) {
    cpu_ms_per_task.push_back(1000.0 * (cpu_after[i] - cpu_before[i]) / total);
  }
  // Calls per task by method, and commits per task: what the CPU goes on.
  const auto metrics_after = c.Metrics(families);
  std::map<std::string, double> rpcs_per_task, stream_messages_per_task;
  // Server-side latency by method (seconds and calls), as the histogram sums give it.
  std::map<std::string, std::pair<double, double>> rpc_latency;
  double commits = 0, writes = 0, commit_seconds = 0;
  for (const auto& [key, value] : metrics_after) {
    auto it = metrics_before.find(key);
    const double delta = value - (it == metrics_before.end() ? 0 : it->second);
    if (key.rfind("orchard_store_commit_batch_ops_sum", 0) == 0) {
      writes += delta;
      continue;
    }
    if (key.rfind("orchard_store_commit_seconds_sum", 0) == 0) {
      commit_seconds += delta;
      continue;
    }
    if (key.rfind("orchard_rpc_duration_seconds_", 0) == 0) {
      const size_t m = key.find("method=\"");
      if (m == std::string::npos) continue;
      const size_t start = key.find('/', m) + 1;
      const std::string method = key.substr(start, key.find('"', start) - start);
      auto& [sum, count] = rpc_latency[method];
      (key.rfind("orchard_rpc_duration_seconds_sum", 0) == 0 ? sum : count) += delta;
      continue;
    }
    if (key.rfind("orchard_store_commit_batch_ops_count", 0) == 0) {
      commits += delta;
      continue;
    }
    const size_t m = key.find("method=\"");
    if (m == std::string::npos) continue;
    const size_t start = key.find('/', m) + 1;
    const std::string method = key.substr(start, key.find('"', start) - start);
    if (key.rfind("orchard_stream_messages_total", 0) == 0) {
      const size_t d = key.find("direction=\"");
      if (d == std::string::npos) continue;
      const size_t from = d + 11;
      stream_messages_per_task[method + " " + key.substr(from, key.find('"', from) - from)] +=
          delta / total;
      continue;
    }
    if (method == "WatchTasks" || method == "WaitTasks") continue;
    rpcs_per_task[method] += delta / total;
  }
  double server_submit_ms = 0;
  for (const auto& [method, sc] : rpc_latency) {
    if (method == "Submit" && sc.second > 0) server_submit_ms = 1000.0 * sc.first / sc.second;
  }
  // Not timed: every task ended with the exact result.
  for (auto& list : ids) {
    for (auto& id : list) CheckNoop(c.Get(id), 1, "many");
  }
  Emit({{"workload", "many"},
        {"tasks", total},
        {"clients", clients},
        {"submit_seconds", submit_secs},
        {"seconds", secs},
        {"submits_per_s", static_cast<int64_t>(total / submit_secs)},
        {"tasks_per_s", static_cast<int64_t>(total / secs)},
        {"cpu_ms_per_task_server_workers", cpu_ms_per_task},
        {"rpcs_per_task", rpcs_per_task},
        {"stream_messages_per_task", stream_messages_per_task},
        {"commits_per_task", commits / total},
        // Where a submit's time goes: as the client saw it (8 in flight),
        // as the server's handler held it, and the COMMIT statements' share
        // of the run.
        {"submit_mean_ms", 1000.0 * submit_secs * clients / total},
        {"server_submit_mean_ms", server_submit_ms},
        {"commit_mean_ms", commits > 0 ? 1000.0 * commit_seconds / commits : 0.0},
        {"commit_busy_fraction", commit_seconds / secs},
        {"store_writes_per_task", writes / total},
        {"server_write_bytes_per_task", written_before < 0 || written_after < 0
                                            ? -1.0
                                            : (written_after - written_before) / total}});
}

// many-batched: the same tasks as `many`, from one client submitting them
// with SubmitTasks in batches of 100, as the Python client's submit_many does.
void RunManyBatched(const Options& o) {
  const int total = o.quick ? 400 : 10'000;
  const int batch = 100;
  Cluster c(o, "many-batched", 2, 4);
  Progress("many tasks, batched: " + std::to_string(total) +
           " one-subtask tasks from one client, SubmitTasks of " + std::to_string(batch));
  std::atomic<bool> watching{false};
  std::set<std::string> ended;
  std::thread watcher([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    pb::WatchTasksRequest req;
    auto reader = c.stub()->WatchTasks(&ctx, req);
    pb::WatchTasksResponse resp;
    watching = true;
    while (reader->Read(&resp)) {
      const auto& t = resp.task();
      if (t.state() == pb::ERROR || t.state() == pb::TERMINATED) ended.insert(t.id());
      if (static_cast<int>(ended.size()) == total) {
        ctx.TryCancel();
        break;
      }
    }
    reader->Finish();
    if (static_cast<int>(ended.size()) < total) {
      Die("many-batched: only " + std::to_string(ended.size()) + " of " +
          std::to_string(total) + " tasks ended within 10 minutes");
    }
  });
  while (!watching) std::this_thread::yield();
  std::vector<std::string> ids;
  ids.reserve(total);
  auto start = SteadyClock::now();
  for (int done = 0; done < total; done += batch) {
    pb::SubmitTasksRequest req;
    for (int i = done; i < std::min(total, done + batch); ++i) {
      pb::TaskSpec* s = req.add_specs();
      s->set_kind("noop");
      s->set_begin(0);
      s->set_end(1);
      s->mutable_split()->set_subtasks(1);
    }
    pb::SubmitTasksResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto s = c.stub()->SubmitTasks(&ctx, req, &resp);
    if (!s.ok()) Die("SubmitTasks: " + s.error_message());
    for (const auto& r : resp.results()) {
      if (r.code() != 0) Die("SubmitTasks refused a spec: " + r.message());
      ids.push_back(r.task().id());
    }
  }
  const double submit_secs = MsSince(start) / 1000.0;
  watcher.join();
  const double secs = MsSince(start) / 1000.0;
  // Not timed: every task ended with the exact result.
  for (const auto& id : ids) CheckNoop(c.Get(id), 1, "many-batched");
  Emit({{"workload", "many-batched"},
        {"tasks", total},
        {"batch", batch},
        {"clients", 1},
        {"submit_seconds", submit_secs},
        {"seconds", secs},
        {"submits_per_s", static_cast<int64_t>(total / submit_secs)},
        {"tasks_per_s", static_cast<int64_t>(total / secs)}});
}

void RunIdle(const Options& o) {
  Cluster c(o, "idle", 2, 4);
  int secs = o.quick ? 2 : 10;
  Progress("idle: " + std::to_string(secs) + " s with nothing to do");
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let start-up settle
  std::vector<pid_t> pids{c.server().pid};
  for (const auto& w : c.workers()) pids.push_back(w.pid);
  double before = 0;
  for (pid_t p : pids) before += CpuSeconds(p);
  std::this_thread::sleep_for(std::chrono::seconds(secs));
  double after = 0;
  for (pid_t p : pids) after += CpuSeconds(p);
  Emit({{"workload", "idle"}, {"seconds", secs}, {"processes", pids.size()},
        {"cpu_percent", 100.0 * (after - before) / secs}});
}

}  // namespace

int main(int argc, char** argv) {
  orchard::InitProcess();
  Options o;
  o.bin = fs::path(argv[0]).parent_path().parent_path();
  o.dir = fs::temp_directory_path() / ("orchard-bench-" + std::to_string(getpid()));
  const std::set<std::string> workloads = {"limit", "throughput", "latency",      "fanout",
                                            "many",  "idle",       "many-batched", "bigcancel"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      std::string w;
      while (std::getline(ss, w, ',')) {
        if (workloads.count(w) == 0) {
          fprintf(stderr,
                  "orchard-bench: error: --only: unknown workload '%s' (limit, throughput, "
                  "latency, fanout, many, many-batched, idle, bigcancel)\n",
                  w.c_str());
          return 2;
        }
        o.only.insert(w);
      }
    } else if (a == "--sync" && i + 1 < argc) {
      o.sync = argv[++i];
      if (o.sync != "normal" && o.sync != "full") {
        fprintf(stderr, "orchard-bench: error: --sync: '%s' is not normal or full\n",
                o.sync.c_str());
        return 2;
      }
    } else if (a == "--bin" && i + 1 < argc) {
      o.bin = argv[++i];
    } else if (a == "--dir" && i + 1 < argc) {
      o.dir = argv[++i];
    } else if (a == "--help" || a == "-h") {
      printf("orchard-bench [--quick] [--only limit,throughput,latency,fanout,many,many-batched,"
             "idle,bigcancel] "
             "[--sync normal|full] [--bin BUILD_DIR] [--dir WORK_DIR]\n"
             "Starts its own server and workers, runs each workload, checks results are "
             "exact and prints JSON lines.\n");
      return 0;
    } else {
      fprintf(stderr, "orchard-bench: error: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  g_sync = o.sync;
  signal(SIGPIPE, SIG_IGN);
  fs::create_directories(o.dir);
  auto want = [&](const char* w) { return o.only.empty() || o.only.count(w) > 0; };
  double limit = 0;
  if (want("limit")) limit = RunLimit(o);
  if (want("throughput")) RunThroughput(o, limit);
  if (want("latency")) RunLatency(o);
  if (want("fanout")) RunFanout(o);
  if (want("many")) RunMany(o);
  if (want("many-batched")) RunManyBatched(o);
  if (want("idle")) RunIdle(o);
  // Not in the default run (it plans 2,000,000 subtasks): only when named.
  if (o.only.count("bigcancel") > 0) RunBigCancel(o);
  // ORCHARD_BENCH_KEEP=1 keeps the servers' and workers' logs and databases.
  if (getenv("ORCHARD_BENCH_KEEP") == nullptr) fs::remove_all(o.dir);
  Progress("done");
  return 0;
}
