// The process harness for integration and fault tests: it starts the real
// orchard-server, orchard-worker and orchardctl binaries on loopback in a fresh
// temp dir per test, and kills, stops and restarts them.
//
// Owns: child processes (Process), the per-test cluster (Cluster, a GoogleTest
// fixture), polling with a deadline (WaitFor), and small readers of the CLI's
// JSON output. Everything here runs on the test's main thread; none of it is
// thread-safe, and it need not be.
//
// Rules the harness keeps so tests stay deterministic and leave nothing behind:
//  - every child runs in its own process group with PR_SET_PDEATHSIG=SIGKILL,
//    and the Process destructor kills the group and reaps it;
//  - nothing sleeps hoping a race is over: the server's port comes from its
//    --port-file, and conditions are polled with a deadline (WaitFor);
//  - every child's stdout/stderr goes to a file in the test's temp dir; when a
//    test fails, the fixture prints the last 50 lines of each and keeps the dir.
//
// Helpers that cannot go on (a process that will not start, orchardctl failing
// where the test needs its answer, a deadline passed) throw HarnessError;
// GoogleTest reports the exception as a failure of the test that ran it, and
// TearDown still dumps the logs.
#ifndef ORCHARD_TESTS_INTEGRATION_HARNESS_H_
#define ORCHARD_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace orchard::it {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

// A harness step that cannot go on; the message says what and why.
class HarnessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A process of the cluster exited though the test did not kill or signal it
// (a crash, most often). WaitFor does not retry past it: it ends the wait.
class ProcessDied : public HarnessError {
 public:
  using HarnessError::HarnessError;
};

// Paths of the binaries under test: the build's (compile definitions
// ORCHARD_SERVER_BIN, ORCHARD_WORKER_BIN, ORCHARDCTL_BIN), overridden by the
// environment variables of the same names. Throws if neither is set.
std::string ServerBinary();
std::string WorkerBinary();
std::string CtlBinary();

// One child process, started with fork/exec in its own process group, with
// stdin from /dev/null and stdout/stderr appended to files.
class Process {
 public:
  // Starts argv[0] (a path) with argv. Throws HarnessError if fork fails;
  // an exec failure shows as exit code 127 with the reason in the stderr file.
  static std::unique_ptr<Process> Start(std::string name,
                                        std::vector<std::string> argv,
                                        std::filesystem::path stdout_path,
                                        std::filesystem::path stderr_path);

  // Kills the process group with SIGKILL (if it still runs) and reaps it.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }
  const std::filesystem::path& stdout_path() const { return stdout_path_; }
  const std::filesystem::path& stderr_path() const { return stderr_path_; }

  // SIGKILL to the whole process group, then reap; returns at once if it
  // already exited. Like `kill -9`: the process gets no chance to clean up.
  void Kill();
  // Sends `sig` to the process only (SIGTERM, SIGSTOP, SIGCONT, ...). Any
  // signal but SIGSTOP/SIGCONT marks its exit as expected.
  void Signal(int sig);
  // Marks that the process may exit on its own (a test of a clean exit), so
  // Cluster::CheckProcesses does not report it.
  void ExpectExit() { exit_expected_ = true; }
  bool exit_expected() const { return exit_expected_; }
  // SIGSTOP, then waits (waitpid WUNTRACED, up to `timeout` times
  // TimeScale()) until the kernel reports the process stopped, so the caller
  // knows it no longer runs any code.
  void Stop(Duration timeout = 10s);
  // SIGCONT after Stop().
  void Continue();

  // Waits up to `timeout` (times TimeScale()) for the process to exit.
  // Returns its exit code, or 128 + the signal number when a signal ended it
  // (the shell convention); nullopt if it still runs at the deadline.
  std::optional<int> WaitExit(Duration timeout);
  // True until the process has exited (it is reaped on the way).
  bool Running();
  // The exit code as WaitExit reports it, once the process has exited.
  std::optional<int> exit_code() const { return exit_code_; }

 private:
  Process() = default;
  // waitpid with `flags`; records the exit when it sees one. Returns the raw
  // status of a stop/exit report, or nullopt when nothing was reported.
  std::optional<int> Poll(int flags);

  std::string name_;
  std::vector<std::string> argv_;
  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  bool exit_expected_ = false;
};

// What one orchardctl run printed.
struct CtlResult {
  int exit_code = -1;  // as Process::WaitExit reports it
  std::string out;
  std::string err;
  std::string command;  // the command line, for failure messages
};

// The factor every deadline of the harness is multiplied by: the environment
// variable ORCHARD_TEST_TIME_SCALE (a number >= 1, e.g. 3 under the
// sanitizers, which make the binaries several times slower), 1 when unset or
// not a number >= 1. Deadlines stretch; nothing waits longer than it must.
double TimeScale();
// `d` multiplied by TimeScale().
Duration Scaled(Duration d);

// Polls `probe` every 50 ms until it returns true; when `timeout` (times
// TimeScale()) passes first, throws HarnessError naming `description` and the
// last value the probe wrote into `observed`. A probe that throws (orchardctl failing while a server
// restarts, say) counts as "not yet", with the exception text as the observed
// value; ProcessDied is the exception: it ends the wait at once.
using Probe = std::function<bool(std::string& observed)>;
void WaitFor(const Probe& probe, Duration timeout, std::string_view description);

// The last `n` lines of a file ("" if it cannot be read).
std::string TailFile(const std::filesystem::path& path, int n);

// One line that summarises a task as `get -o json` prints it:
// state/outcome, reason and the subtask counts.
std::string TaskSummary(const json& task);

// The string field `key` of `j`: "" when absent or null, the JSON text when it
// is not a string (so a wrong type shows in a failure message, not a throw).
std::string Str(const json& j, std::string_view key);

// The history rows of one object, oldest first: `object` is "task" or a
// subtask index (a JSON number).
std::vector<json> HistoryOf(const json& history, const json& object);
// The `event` field of each row.
std::vector<std::string> Events(const std::vector<json>& rows);
// The subtask with `index` from `subtasks -o json`; throws if absent.
json SubtaskAt(const json& subtasks, int64_t index);

// Options of one orchard-server start.
struct ServerOptions {
  uint16_t port = 0;              // 0: let the kernel choose
  std::string lease_ttl = "2s";   // --lease-ttl (times TimeScale())
  std::vector<std::string> extra_args;
};

// A cluster of real processes in a fresh temp dir: at most one server at a
// time (restartable on the same db file), any number of named workers, and
// orchardctl pointed at the server. Derive a fixture from it per test suite.
class Cluster : public ::testing::Test {
 protected:
  Cluster();
  ~Cluster() override;
  // Kills every process; on failure prints the last 50 lines of each log and
  // keeps the temp dir (its path is printed), else removes it.
  void TearDown() override;

 public:
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path db_path() const { return dir_ / "orchard.db"; }

  // Starts orchard-server on 127.0.0.1 with the cluster's db file and waits
  // (polling every 20 ms, up to 10 s) for the port file it writes once it
  // serves. Throws if a server is already running, or if it exits or never
  // writes the file. Restarting (after KillServer) reuses the same db file;
  // pass the old port in `opts.port` to come back on the same address.
  Process& StartServer(ServerOptions opts = {});
  // kill -9 of the server; its port stays known (server_port()).
  void KillServer();
  Process& server();
  uint16_t server_port() const { return port_; }
  std::string server_address() const;

  // Starts orchard-worker --server <address> --slots N --name NAME.
  // Does not wait for it to register; see WaitWorkerId.
  Process& StartWorker(const std::string& name, int slots = 4,
                       std::vector<std::string> extra_args = {});
  Process& worker(const std::string& name);
  // Waits until `workers -o json` lists an alive worker named `name` and
  // returns its id.
  std::string WaitWorkerId(const std::string& name, Duration timeout = 30s);

  // Throws ProcessDied if the server or a worker exited without the test
  // killing or signalling it; the message carries its exit code and the end
  // of its stderr. Ctl calls it first, so every wait notices a crash at once.
  void CheckProcesses();

  // Runs `orchardctl --server <address> args...` and waits up to `timeout`.
  // Throws HarnessError only if it does not exit in time (or ProcessDied, see
  // CheckProcesses).
  CtlResult Ctl(const std::vector<std::string>& args, Duration timeout = 30s);
  // Ctl(args + {"-o", "json"}); throws HarnessError (with stderr) on a
  // non-zero exit, or with the output on anything that is not JSON.
  json CtlJson(std::vector<std::string> args, Duration timeout = 30s);

  // Shorthands over CtlJson.
  json Submit(std::vector<std::string> args);  // `submit args...`; the task
  json GetTask(const std::string& id);
  json Subtasks(const std::string& id);
  json History(const std::string& id);
  json Workers();
  json ListTasks();

  // Waits until the task's state is one of `states`; returns the task.
  json WaitTaskState(const std::string& id, const std::vector<std::string>& states,
                     Duration timeout = 60s);
  // Waits until the task is Terminated or Error; returns the task.
  json WaitTaskEnded(const std::string& id, Duration timeout = 60s);

 private:
  std::filesystem::path LogPath(const std::string& name, const char* stream);
  void DumpLogs();

  std::filesystem::path dir_;
  uint16_t port_ = 0;
  int server_starts_ = 0;
  int worker_starts_ = 0;
  int ctl_runs_ = 0;
  std::unique_ptr<Process> server_;
  std::map<std::string, std::unique_ptr<Process>> workers_;
  // Processes that exited or were replaced (a killed server, a killed
  // worker): kept so their logs are still dumped on failure.
  std::vector<std::unique_ptr<Process>> retired_;
  // The order processes were started in, for the log dump.
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> logs_;
};

}  // namespace orchard::it

#endif  // ORCHARD_TESTS_INTEGRATION_HARNESS_H_
