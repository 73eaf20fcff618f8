// Implementation of the integration-test process harness (see harness.h).
// Runs on the test's main thread only.
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#ifndef ORCHARD_SERVER_BIN
#define ORCHARD_SERVER_BIN ""
#endif
#ifndef ORCHARD_WORKER_BIN
#define ORCHARD_WORKER_BIN ""
#endif
#ifndef ORCHARDCTL_BIN
#define ORCHARDCTL_BIN ""
#endif

namespace orchard::it {
namespace fs = std::filesystem;

namespace {

std::string Binary(const char* env_name, const char* built) {
  if (const char* env = std::getenv(env_name); env != nullptr && *env != '\0') {
    return env;
  }
  if (*built == '\0') {
    throw HarnessError(std::string(env_name) +
                       " is not set and the binary was not built with these tests");
  }
  return built;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A lease TTL ("2s", "1500ms", "1m") times TimeScale(), in ms: under the
// sanitizers heartbeats are late by the same factor as everything else, so a
// worker that is merely slow is not declared lost. Text it cannot read is
// passed on unchanged (the server names the problem).
std::string ScaledTtl(const std::string& ttl) {
  if (TimeScale() == 1.0) return ttl;
  size_t digits = 0;
  while (digits < ttl.size() && std::isdigit(static_cast<unsigned char>(ttl[digits]))) ++digits;
  const std::string unit = ttl.substr(digits);
  const int64_t per = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : 0;
  if (digits == 0 || digits > 9 || per == 0) return ttl;
  return std::to_string(Scaled(Duration(std::stoll(ttl.substr(0, digits)) * per)).count()) + "ms";
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ' ';
    // Quote what a shell would split, so the line can be pasted to reproduce.
    if (p.find_first_of(" \"'{}[]*$") != std::string::npos || p.empty()) {
      out += '\'' + p + '\'';
    } else {
      out += p;
    }
  }
  return out;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string Clip(const std::string& s, size_t max = 2000) {
  if (s.size() <= max) return s;
  return s.substr(0, max) + "...[" + std::to_string(s.size() - max) + " more bytes]";
}

}  // namespace

std::string ServerBinary() { return Binary("ORCHARD_SERVER_BIN", ORCHARD_SERVER_BIN); }
std::string WorkerBinary() { return Binary("ORCHARD_WORKER_BIN", ORCHARD_WORKER_BIN); }
std::string CtlBinary() { return Binary("ORCHARDCTL_BIN", ORCHARDCTL_BIN); }

// ------------------------------------------------------------------ Process

std::unique_ptr<Process> Process::Start(std::string name, std::vector<std::string> argv,
                                        fs::path stdout_path, fs::path stderr_path) {
  if (argv.empty()) throw HarnessError("Process::Start: empty argv for " + name);
  std::unique_ptr<Process> p(new Process());
  p->name_ = std::move(name);
  p->argv_ = std::move(argv);
  p->stdout_path_ = std::move(stdout_path);
  p->stderr_path_ = std::move(stderr_path);

  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed (the test may have threads).
  std::vector<char*> cargv;
  for (auto& a : p->argv_) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = ::open(p->stdout_path_.c_str(),
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err_fd = ::open(p->stderr_path_.c_str(),
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    const int e = errno;
    for (int fd : {in_fd, out_fd, err_fd}) {
      if (fd >= 0) ::close(fd);
    }
    throw HarnessError("Process::Start(" + p->name_ + "): cannot open log files: " +
                       std::strerror(e));
  }
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(in_fd);
    ::close(out_fd);
    ::close(err_fd);
    throw HarnessError("fork failed for " + p->name_ + ": " + std::strerror(e));
  }
  if (pid == 0) {
    // Child: own process group (so Kill() takes any grandchildren too), and
    // die with the test process even if it is killed itself.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl
    ::dup2(in_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    // Restore default dispositions the test runner may have changed.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(cargv[0], cargv.data());
    const char* msg = "harness: execv failed: ";
    (void)!::write(STDERR_FILENO, msg, std::strlen(msg));
    const char* why = std::strerror(errno);
    (void)!::write(STDERR_FILENO, why, std::strlen(why));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(127);
  }
  // Parent: set the group here too, so Kill() works even if the child has
  // not run yet.
  ::setpgid(pid, pid);
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  p->pid_ = pid;
  return p;
}

Process::~Process() { Kill(); }

std::optional<int> Process::Poll(int flags) {
  if (exit_code_ || pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, flags);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(status) || WIFSIGNALED(status)) exit_code_ = DecodeStatus(status);
    return status;
  }
  if (r < 0 && errno == ECHILD) exit_code_ = -1;  // reaped elsewhere; treat as gone
  return std::nullopt;
}

void Process::Kill() {
  exit_expected_ = true;
  if (pid_ <= 0 || exit_code_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);  // in case the child never got to setpgid
  while (!exit_code_) {
    if (!Poll(0)) break;  // nothing reported: ECHILD handled in Poll
  }
}

void Process::Signal(int sig) {
  if (pid_ <= 0 || exit_code_) {
    throw HarnessError("cannot signal " + name_ + ": it has exited");
  }
  if (sig != SIGSTOP && sig != SIGCONT) exit_expected_ = true;
  ::kill(pid_, sig);
}

void Process::Stop(Duration timeout) {
  Signal(SIGSTOP);
  const auto deadline = Clock::now() + Scaled(timeout);
  while (Clock::now() < deadline) {
    if (auto status = Poll(WNOHANG | WUNTRACED)) {
      if (WIFSTOPPED(*status)) return;
    }
    if (exit_code_) {
      throw ProcessDied(name_ + " exited (code " + std::to_string(*exit_code_) +
                        ") before it could be stopped; last lines of its stderr:\n" +
                        TailFile(stderr_path_, 20));
    }
    std::this_thread::sleep_for(1ms);
  }
  throw HarnessError(name_ + " did not stop within the deadline after SIGSTOP");
}

void Process::Continue() { Signal(SIGCONT); }

std::optional<int> Process::WaitExit(Duration timeout) {
  const auto deadline = Clock::now() + Scaled(timeout);
  while (true) {
    Poll(WNOHANG);
    if (exit_code_) return exit_code_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

bool Process::Running() {
  Poll(WNOHANG);
  return !exit_code_;
}

// ------------------------------------------------------------------ helpers

double TimeScale() {
  static const double scale = [] {
    const char* env = std::getenv("ORCHARD_TEST_TIME_SCALE");
    if (env == nullptr) return 1.0;
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    return (end != env && v >= 1.0 && v <= 100.0) ? v : 1.0;
  }();
  return scale;
}

Duration Scaled(Duration d) {
  return Duration(static_cast<Duration::rep>(static_cast<double>(d.count()) * TimeScale()));
}

void WaitFor(const Probe& probe, Duration timeout, std::string_view description) {
  timeout = Scaled(timeout);
  const auto deadline = Clock::now() + timeout;
  std::string observed;
  while (true) {
    try {
      if (probe(observed)) return;
    } catch (const ProcessDied&) {
      throw;
    } catch (const std::exception& e) {
      observed = std::string("(probe threw) ") + e.what();
    }
    if (Clock::now() >= deadline) {
      throw HarnessError("timed out after " + std::to_string(timeout.count()) +
                         " ms waiting for: " + std::string(description) +
                         "\n  last observed: " + Clip(observed));
    }
    std::this_thread::sleep_for(50ms);
  }
}

std::string TailFile(const fs::path& path, int n) {
  std::ifstream in(path);
  if (!in) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (static_cast<int>(lines.size()) > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += l + '\n';
  return out;
}

std::string TaskSummary(const json& task) {
  std::ostringstream s;
  s << Str(task, "state") << "/" << Str(task, "outcome");
  if (!Str(task, "reason").empty()) s << " reason=\"" << Str(task, "reason") << "\"";
  if (task.contains("subtasks")) s << " subtasks=" << task["subtasks"].dump();
  return s.str();
}

std::string Str(const json& j, std::string_view key) {
  if (!j.is_object()) return "";
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::vector<json> HistoryOf(const json& history, const json& object) {
  if (!history.is_array()) throw HarnessError("history is not an array: " + Clip(history.dump()));
  std::vector<json> rows;
  for (const auto& row : history) {
    if (row.contains("object") && row["object"] == object) rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> Events(const std::vector<json>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(Str(r, "event"));
  return out;
}

json SubtaskAt(const json& subtasks, int64_t index) {
  if (!subtasks.is_array()) {
    throw HarnessError("subtasks is not an array: " + Clip(subtasks.dump()));
  }
  for (const auto& s : subtasks) {
    if (s.contains("index") && s["index"] == index) return s;
  }
  throw HarnessError("no subtask with index " + std::to_string(index) + " in " +
                     Clip(subtasks.dump()));
}

// ------------------------------------------------------------------ Cluster

Cluster::Cluster() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                     "/orchard-it-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw HarnessError("mkdtemp(" + tmpl + ") failed: " + std::strerror(errno));
  }
  dir_ = tmpl;
}

Cluster::~Cluster() {
  // TearDown normally did this; a fixture whose SetUp threw still cleans up.
  workers_.clear();
  server_.reset();
  retired_.clear();
}

void Cluster::TearDown() {
  // Kill workers first so they do not log a storm of reconnects while the
  // server goes away; SIGKILL keeps teardown fast and logs are unbuffered.
  for (auto& [name, w] : workers_) w->Kill();
  if (server_) server_->Kill();
  for (auto& p : retired_) p->Kill();
  const char* keep = std::getenv("ORCHARD_KEEP_TEST_DIR");  // for a look at a passing run
  if (HasFailure() || (keep != nullptr && *keep != '\0')) {
    if (HasFailure()) DumpLogs();
    std::cerr << "[harness] kept the test dir: " << dir_ << "\n";
  } else {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void Cluster::DumpLogs() {
  for (const auto& [out, err] : logs_) {
    for (const auto& path : {out, err}) {
      std::error_code ec;
      if (!fs::exists(path, ec)) continue;
      if (fs::file_size(path, ec) == 0) {
        // An empty stderr is evidence too (a crash before the first log line).
        if (path == err) std::cerr << "----- " << path.filename().string() << " is empty -----\n";
        continue;
      }
      std::cerr << "----- last 50 lines of " << path.filename().string() << " -----\n"
                << TailFile(path, 50) << "----- end of " << path.filename().string()
                << " -----\n";
    }
  }
}

fs::path Cluster::LogPath(const std::string& name, const char* stream) {
  return dir_ / (name + "." + stream + ".log");
}

std::string Cluster::server_address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

Process& Cluster::StartServer(ServerOptions opts) {
  if (server_ && server_->Running()) {
    throw HarnessError("StartServer: a server is already running (pid " +
                       std::to_string(server_->pid()) + ")");
  }
  if (server_) retired_.push_back(std::move(server_));
  const int n = ++server_starts_;
  const std::string name = "server-" + std::to_string(n);
  const fs::path port_file = dir_ / ("port-" + std::to_string(n));
  std::vector<std::string> argv = {
      ServerBinary(),
      "--listen", "127.0.0.1:" + std::to_string(opts.port),
      "--db", db_path().string(),
      "--lease-ttl", ScaledTtl(opts.lease_ttl),
      "--port-file", port_file.string(),
  };
  argv.insert(argv.end(), opts.extra_args.begin(), opts.extra_args.end());
  const auto out = LogPath(name, "stdout");
  const auto err = LogPath(name, "stderr");
  logs_.emplace_back(out, err);
  server_ = Process::Start(name, std::move(argv), out, err);

  // The server writes "PORT\n" once it serves; a partial write shows as a
  // line without its newline, so wait for the newline.
  const auto deadline = Clock::now() + Scaled(10s);
  while (true) {
    const std::string text = ReadFile(port_file);
    if (!text.empty() && text.back() == '\n') {
      try {
        const unsigned long v = std::stoul(text);
        if (v == 0 || v > 65535) throw std::out_of_range("port");
        port_ = static_cast<uint16_t>(v);
      } catch (const std::exception&) {
        throw HarnessError(name + " wrote a bad port file: \"" + Clip(text, 100) + "\"");
      }
      if (opts.port != 0 && port_ != opts.port) {
        throw HarnessError(name + " was asked for port " + std::to_string(opts.port) +
                           " but wrote " + std::to_string(port_));
      }
      return *server_;
    }
    if (!server_->Running()) {
      throw HarnessError(name + " exited with code " + std::to_string(*server_->exit_code()) +
                         " before writing its port file; stderr:\n" + TailFile(err, 20));
    }
    if (Clock::now() >= deadline) {
      throw HarnessError(name + " did not write its port file " + port_file.string() +
                         " within " + std::to_string(Scaled(10s).count()) +
                         " ms; stderr:\n" + TailFile(err, 20));
    }
    std::this_thread::sleep_for(20ms);
  }
}

void Cluster::KillServer() { server().Kill(); }

Process& Cluster::server() {
  if (!server_) throw HarnessError("no server was started");
  return *server_;
}

Process& Cluster::StartWorker(const std::string& name, int slots,
                              std::vector<std::string> extra_args) {
  if (port_ == 0) throw HarnessError("StartWorker(" + name + ") before StartServer");
  if (auto it = workers_.find(name); it != workers_.end()) {
    if (it->second->Running()) {
      throw HarnessError("StartWorker: worker " + name + " is already running");
    }
    retired_.push_back(std::move(it->second));
    workers_.erase(it);
  }
  std::vector<std::string> argv = {
      WorkerBinary(), "--server", server_address(),
      "--slots", std::to_string(slots), "--name", name,
  };
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  const std::string log_name = "worker-" + name + "-" + std::to_string(++worker_starts_);
  const auto out = LogPath(log_name, "stdout");
  const auto err = LogPath(log_name, "stderr");
  logs_.emplace_back(out, err);
  auto& slot = workers_[name];
  slot = Process::Start("worker " + name, std::move(argv), out, err);
  return *slot;
}

Process& Cluster::worker(const std::string& name) {
  auto it = workers_.find(name);
  if (it == workers_.end()) throw HarnessError("no worker named " + name);
  return *it->second;
}

std::string Cluster::WaitWorkerId(const std::string& name, Duration timeout) {
  std::string id;
  WaitFor(
      [&](std::string& observed) {
        const json ws = Workers();
        observed = ws.dump();
        for (const auto& w : ws) {
          if (Str(w, "name") == name && w.contains("alive") && w["alive"] == true) {
            id = w.at("id").get<std::string>();
            return true;
          }
        }
        return false;
      },
      timeout, "worker " + name + " to be registered and alive in `workers -o json`");
  return id;
}

void Cluster::CheckProcesses() {
  auto check = [](Process& p) {
    if (p.Running() || p.exit_expected()) return;
    const int code = *p.exit_code();
    std::string how = "exit code " + std::to_string(code);
    if (code > 128) how += " (" + std::string(::strsignal(code - 128)) + ")";
    throw ProcessDied(p.name() + " died unexpectedly with " + how +
                      "; last lines of its stderr:\n" + TailFile(p.stderr_path(), 20));
  };
  if (server_) check(*server_);
  for (auto& [name, w] : workers_) check(*w);
}

CtlResult Cluster::Ctl(const std::vector<std::string>& args, Duration timeout) {
  if (port_ == 0) throw HarnessError("Ctl before StartServer");
  CheckProcesses();
  std::vector<std::string> argv = {CtlBinary(), "--server", server_address()};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string command = Join(argv);
  const std::string base = "ctl-" + std::to_string(++ctl_runs_);
  const auto out_path = dir_ / (base + ".out");
  const auto err_path = dir_ / (base + ".err");
  auto p = Process::Start(base, std::move(argv), out_path, err_path);
  const auto code = p->WaitExit(timeout);
  if (!code) {
    p->Kill();
    throw HarnessError("orchardctl did not exit within " +
                       std::to_string(Scaled(timeout).count()) +
                       " ms: " + command + "\nstderr:\n" + TailFile(err_path, 20));
  }
  CtlResult r{*code, ReadFile(out_path), ReadFile(err_path), command};
  std::error_code ec;
  fs::remove(out_path, ec);
  fs::remove(err_path, ec);
  return r;
}

json Cluster::CtlJson(std::vector<std::string> args, Duration timeout) {
  args.push_back("-o");
  args.push_back("json");
  const CtlResult r = Ctl(args, timeout);
  if (r.exit_code != 0) {
    throw HarnessError("`" + r.command + "` exited " + std::to_string(r.exit_code) +
                       "\nstderr: " + Clip(r.err) + "\nstdout: " + Clip(r.out));
  }
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    throw HarnessError("`" + r.command + "` printed something that is not JSON (" +
                       e.what() + "):\n" + Clip(r.out));
  }
}

json Cluster::Submit(std::vector<std::string> args) {
  args.insert(args.begin(), "submit");
  return CtlJson(std::move(args));
}

json Cluster::GetTask(const std::string& id) { return CtlJson({"get", id}); }
json Cluster::Subtasks(const std::string& id) { return CtlJson({"subtasks", id}); }
json Cluster::History(const std::string& id) { return CtlJson({"history", id}); }
json Cluster::Workers() { return CtlJson({"workers"}); }
json Cluster::ListTasks() { return CtlJson({"list"}); }

json Cluster::WaitTaskState(const std::string& id, const std::vector<std::string>& states,
                            Duration timeout) {
  json task;
  std::string wanted;
  for (const auto& s : states) wanted += (wanted.empty() ? "" : "|") + s;
  WaitFor(
      [&](std::string& observed) {
        task = GetTask(id);
        observed = TaskSummary(task);
        const std::string state = Str(task, "state");
        for (const auto& s : states) {
          if (state == s) return true;
        }
        return false;
      },
      timeout, "task " + id + " to reach state " + wanted);
  return task;
}

json Cluster::WaitTaskEnded(const std::string& id, Duration timeout) {
  return WaitTaskState(id, {"Terminated", "Error"}, timeout);
}

}  // namespace orchard::it
