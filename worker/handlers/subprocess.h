// RunProcess: runs one program (no shell) in its own process group, feeds it
// stdin, captures the tail of its stdout and stderr (bounded), reports
// `ORCHARD_PROGRESS N` lines from stderr, and stops it — the whole group,
// SIGTERM then SIGKILL after a grace period — when asked or when it runs past
// its timeout. Used by the exec handler (slices and the reduce program).
//
// Thread-safety: RunProcess is reentrant; it blocks the calling thread (a
// handler pool thread) until the process group is gone. It forks, so it only
// calls async-signal-safe functions between fork and exec.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace orchard::worker {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is the program's absolute path
  std::string cwd;                // "" = the worker's working directory
  std::map<std::string, std::string> env;  // the whole environment
  std::string stdin_data;                  // written to stdin, then closed
  std::chrono::milliseconds timeout{0};    // 0 = none
  std::chrono::milliseconds grace{5000};   // SIGTERM -> SIGKILL
  size_t max_stdout = 1 << 20;             // bytes kept: the tail
  size_t max_stderr = 4096;                // bytes kept: the tail
};

struct ProcessResult {
  enum class End { kExited, kSignalled, kStopped, kTimedOut };
  End end = End::kExited;
  int code = 0;  // exit code, or the signal number
  std::string stdout_tail;
  bool stdout_truncated = false;  // more was written than max_stdout
  std::string stderr_tail;        // without the ORCHARD_PROGRESS lines
};

// Runs the process to its end. `on_progress` gets N from each
// `ORCHARD_PROGRESS N` line of stderr. When the main process exits, whatever
// is left of its process group is killed too, so no orphan survives (a child
// that called setsid() has left the group and is out of reach). Errors: the
// program could not be started (INTERNAL/NOT_FOUND naming it).
absl::StatusOr<ProcessResult> RunProcess(const ProcessSpec& spec, std::stop_token stop,
                                         const std::function<void(uint64_t)>& on_progress);

// Replaces bytes that are not valid UTF-8 with U+FFFD, so the text can go
// into JSON and proto strings.
std::string SanitizeUtf8(std::string_view s);

}  // namespace orchard::worker
