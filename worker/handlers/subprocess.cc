// RunProcess: fork/exec in a new process group, a poll loop over the pipes,
// and the SIGTERM/SIGKILL escalation. See subprocess.h.
// Thread-safety: reentrant; no shared state.
#include "worker/handlers/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard::worker {

namespace {

using Clock = std::chrono::steady_clock;

// Keeps the last `cap` bytes of what is appended.
void AppendTail(std::string& tail, std::string_view data, size_t cap, bool* truncated) {
  tail.append(data);
  if (tail.size() > cap) {
    if (truncated != nullptr) *truncated = true;
    tail.erase(0, tail.size() - cap);
  }
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// The child side, between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, const char* cwd, int in_fd,
                            int out_fd, int err_fd, int report_fd) {
  setpgid(0, 0);
  // If the worker dies, the program goes with it (its own children are
  // reached through the process group while the worker lives).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) sigaction(sig, &dfl, nullptr);
  dup2(in_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  int err = 0;
  if (cwd[0] != '\0' && chdir(cwd) != 0) {
    err = errno;
  } else {
    execve(argv[0], argv, envp);
    err = errno;
  }
  ssize_t ignored = write(report_fd, &err, sizeof err);
  (void)ignored;
  _exit(127);
}

// Handles complete stderr lines: progress reports, or text for the tail.
void TakeStderrLines(std::string& pending, const ProcessSpec& spec, ProcessResult& out,
                     const std::function<void(uint64_t)>& on_progress, bool flush_all) {
  static constexpr std::string_view kProgress = "ORCHARD_PROGRESS ";
  size_t start = 0;
  while (true) {
    size_t nl = pending.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending.data() + start, nl - start);
    if (line.substr(0, kProgress.size()) == kProgress) {
      std::string num(line.substr(kProgress.size()));
      char* endp = nullptr;
      errno = 0;
      unsigned long long n = strtoull(num.c_str(), &endp, 10);
      if (errno == 0 && endp != num.c_str() && on_progress) on_progress(n);
    } else {
      AppendTail(out.stderr_tail, std::string_view(pending.data() + start, nl + 1 - start),
                 spec.max_stderr, nullptr);
    }
    start = nl + 1;
  }
  pending.erase(0, start);
  // A line that never ends must not grow without bound.
  if (flush_all || pending.size() > spec.max_stderr) {
    AppendTail(out.stderr_tail, pending, spec.max_stderr, nullptr);
    pending.clear();
  }
}

}  // namespace

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && len == 2 && c < 0xC2) ok = false;  // overlong
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

absl::StatusOr<ProcessResult> RunProcess(const ProcessSpec& spec, std::stop_token stop,
                                         const std::function<void(uint64_t)>& on_progress) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("exec: empty argv");
  // Everything the child needs is built before fork.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_pair[2], out_pipe[2], err_pipe[2], report_pipe[2];
  // stdin is a socket pair so that writing to a program that closed its
  // stdin gives EPIPE via MSG_NOSIGNAL instead of a SIGPIPE to the worker.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return absl::InternalError(Cat("exec: socketpair: ", strerror(errno)));
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(report_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(Cat("exec: pipe: ", strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError(Cat("exec: fork: ", strerror(errno)));
  if (pid == 0) {
    ExecChild(argv.data(), envp.data(), spec.cwd.c_str(), in_pair[1], out_pipe[1], err_pipe[1],
              report_pipe[1]);
  }
  setpgid(pid, pid);  // also in the parent, so a kill right away reaches the group
  close(in_pair[1]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(report_pipe[1]);
  int exec_errno = 0;
  ssize_t got = read(report_pipe[0], &exec_errno, sizeof exec_errno);
  close(report_pipe[0]);
  int in_fd = in_pair[0], out_fd = out_pipe[0], err_fd = err_pipe[0];
  if (got == sizeof exec_errno) {
    waitpid(pid, nullptr, 0);
    CloseFd(in_fd);
    CloseFd(out_fd);
    CloseFd(err_fd);
    std::string why = Cat("exec: cannot start ", spec.argv[0], ": ", strerror(exec_errno));
    return exec_errno == ENOENT ? absl::NotFoundError(why) : absl::InternalError(why);
  }
  for (int fd : {in_fd, out_fd, err_fd}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t in_written = 0;
  if (spec.stdin_data.empty()) CloseFd(in_fd);

  ProcessResult out;
  std::string err_pending;
  const auto start = Clock::now();
  std::optional<Clock::time_point> term_sent, exited_at;
  bool killed = false;
  int status = 0;
  char buf[65536];
  while (true) {
    const auto now = Clock::now();
    if (!exited_at) {
      // Seen but not reaped (WNOWAIT), so the group id cannot be reused
      // before the leftovers of the group are killed.
      siginfo_t info{};
      if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        exited_at = now;
        kill(-pid, SIGKILL);  // whatever the program left behind in its group
        waitpid(pid, &status, 0);
      }
    }
    if (exited_at) {
      if (out_fd < 0 && err_fd < 0) break;
      // A process that left the group still holds the pipes: stop reading.
      if (now - *exited_at > std::chrono::seconds(2)) break;
    } else {
      if (!term_sent && (stop.stop_requested() ||
                         (spec.timeout.count() > 0 && now - start > spec.timeout))) {
        out.end = stop.stop_requested() ? ProcessResult::End::kStopped
                                        : ProcessResult::End::kTimedOut;
        kill(-pid, SIGTERM);
        term_sent = now;
      }
      if (term_sent && !killed && now - *term_sent >= spec.grace) {
        kill(-pid, SIGKILL);
        killed = true;
      }
    }
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds, n, 20) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      if (fd == in_fd) {
        ssize_t w = send(in_fd, spec.stdin_data.data() + in_written,
                         spec.stdin_data.size() - in_written, MSG_NOSIGNAL);
        if (w > 0) in_written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_written == spec.stdin_data.size()) {
          CloseFd(in_fd);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        if (fd == out_fd) CloseFd(out_fd);
        if (fd == err_fd) CloseFd(err_fd);
        continue;
      }
      if (fd == out_fd) {
        AppendTail(out.stdout_tail, std::string_view(buf, r), spec.max_stdout,
                   &out.stdout_truncated);
      } else {
        err_pending.append(buf, r);
        TakeStderrLines(err_pending, spec, out, on_progress, false);
      }
    }
  }
  TakeStderrLines(err_pending, spec, out, on_progress, true);
  CloseFd(in_fd);
  CloseFd(out_fd);
  CloseFd(err_fd);
  if (!exited_at) waitpid(pid, &status, 0);
  if (out.end == ProcessResult::End::kExited) {
    if (WIFSIGNALED(status)) {
      out.end = ProcessResult::End::kSignalled;
      out.code = WTERMSIG(status);
    } else {
      out.code = WEXITSTATUS(status);
    }
  } else {
    out.code = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
  }
  return out;
}

}  // namespace orchard::worker
