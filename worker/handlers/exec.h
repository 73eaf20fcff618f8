// The `exec` handler: runs a program from the worker operator's allowlist once
// per slice, with the slice in its environment, and the configured reduce
// program (if any) over the slices' results. Owns the allowlist (ExecConfig)
// and its parsing from the worker's JSON config file.
//
// Operator side, the worker's config file (orchard-worker --config FILE):
//   {"exec": {"programs": {
//      "NAME": {"argv": ["/abs/path", "fixed", "args"],   required, argv[0] absolute
//               "cwd": "/dir",                             default: the worker's
//               "timeout": "10m",                          default: none
//               "grace": "5s",                             SIGTERM -> SIGKILL, default 5s
//               "env": {"K": "V"},                          set for the program
//               "pass_env": ["HOME"],                       copied from the worker's env
//               "max_stdout_bytes": 1048576,               stdout tail kept, default 1 MiB
//               "reduce": "OTHER_NAME"}}}}                  a listed program, optional
// User side, the task's params:
//   {"program": "NAME", "args": ["extra", "argv"], "timeout": "30s"}
// `timeout` may only shorten the operator's. A program never runs through a
// shell, and a name that is not listed is refused when the task is planned
// (INVALID_ARGUMENT naming params.program).
//
// Per slice: the environment holds exactly PATH (/usr/local/bin:/usr/bin:/bin
// unless set or passed), the configured env and pass_env, ORCHARD_TASK_ID,
// ORCHARD_SUBTASK_INDEX, ORCHARD_RANGE_BEGIN, ORCHARD_RANGE_END and
// ORCHARD_ATTEMPT; stdin is empty. It runs in a process group of its own.
//  - exit 0: success; the last non-empty line of stdout, if it is a JSON
//    object, is the slice's result, else the result is {"stdout": TAIL}
//    (the kept tail of stdout, invalid UTF-8 replaced);
//  - exit 65 (kNoRetryExitCode, sysexits' EX_DATAERR): failed for good, no retry;
//  - any other exit, a signal, or the timeout: a failed attempt, retried by the
//    task's policy; the error carries the tail of stderr;
//  - a stderr line `ORCHARD_PROGRESS N` sets the slice's progress to N items;
//  - stop (cancel, lease lost): SIGTERM to the group, SIGKILL after `grace`.
//    When the program exits, what is left of its group is killed as well.
// Task result: {"results": [r0, r1, ...]}, the committed slice results in
// index order; with a `reduce` program, what it prints (last stdout line, a
// JSON object) when given that JSON document on stdin. The reduce program
// runs only when the task succeeded.
//
// Thread-safety: immutable after construction; Run() runs concurrently.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/handler.h"

namespace orchard::worker {

inline constexpr int kNoRetryExitCode = 65;

struct ExecProgram {
  std::vector<std::string> argv;
  std::string cwd;
  std::chrono::milliseconds timeout{0};
  std::chrono::milliseconds grace{5000};
  std::map<std::string, std::string> env;
  std::vector<std::string> pass_env;
  size_t max_stdout_bytes = 1 << 20;
  std::string reduce;  // another program's name, or ""
};

struct ExecConfig {
  std::map<std::string, ExecProgram> programs;
};

// Parses the "exec" section of a worker config document (absent = no
// programs). Errors name the field, e.g. "exec.programs.wc.argv: ...".
absl::StatusOr<ExecConfig> ParseExecConfig(const nlohmann::json& config);

class ExecHandler final : public Handler {
 public:
  explicit ExecHandler(ExecConfig config) : config_(std::move(config)) {}

  absl::StatusOr<Plan> PlanSlices(const PlanInput& in) const override;
  absl::StatusOr<nlohmann::json> Run(const SliceContext& ctx) const override;
  nlohmann::json Init() const override;
  absl::Status Fold(nlohmann::json& acc, const nlohmann::json& result) const override;
  absl::StatusOr<nlohmann::json> Finish(const FinishContext& ctx,
                                        nlohmann::json acc) const override;

 private:
  ExecConfig config_;
};

}  // namespace orchard::worker
