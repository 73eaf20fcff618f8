// The exec handler: config parsing, params checking, one process per slice,
// and the reduce program. See exec.h for the contract.
// Thread-safety: immutable after construction; Run() runs concurrently.
#include "worker/handlers/exec.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "common/strcat.h"
#include "common/util.h"
#include "worker/handlers/subprocess.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;

absl::StatusOr<std::chrono::milliseconds> DurationField(const json& j, const std::string& field) {
  if (!j.is_string()) return absl::InvalidArgumentError(Cat(field, ": must be a duration like \"30s\""));
  auto ms = ParseDurationMs(j.get<std::string>(), field);
  if (!ms.ok()) return ms.status();
  return std::chrono::milliseconds(*ms);
}

absl::StatusOr<ExecProgram> ParseProgram(const json& j, const std::string& field) {
  if (!j.is_object()) return absl::InvalidArgumentError(Cat(field, ": must be an object"));
  ExecProgram p;
  for (const auto& [key, v] : j.items()) {
    const std::string f = Cat(field, ".", key);
    if (key == "argv") {
      if (!v.is_array() || v.empty()) {
        return absl::InvalidArgumentError(Cat(f, ": must be a non-empty array of strings"));
      }
      for (const auto& a : v) {
        if (!a.is_string()) return absl::InvalidArgumentError(Cat(f, ": must hold strings only"));
        p.argv.push_back(a.get<std::string>());
      }
      if (p.argv[0].empty() || p.argv[0][0] != '/') {
        return absl::InvalidArgumentError(Cat(f, "[0]: must be an absolute path (no PATH search)"));
      }
    } else if (key == "cwd") {
      if (!v.is_string()) return absl::InvalidArgumentError(Cat(f, ": must be a string"));
      p.cwd = v.get<std::string>();
    } else if (key == "timeout" || key == "grace") {
      auto d = DurationField(v, f);
      if (!d.ok()) return d.status();
      (key == "timeout" ? p.timeout : p.grace) = *d;
    } else if (key == "env") {
      if (!v.is_object()) return absl::InvalidArgumentError(Cat(f, ": must be an object of strings"));
      for (const auto& [k, val] : v.items()) {
        if (!val.is_string() || k.empty() || k.find('=') != std::string::npos) {
          return absl::InvalidArgumentError(Cat(f, ".", k, ": must be a string (and a valid name)"));
        }
        p.env[k] = val.get<std::string>();
      }
    } else if (key == "pass_env") {
      if (!v.is_array()) return absl::InvalidArgumentError(Cat(f, ": must be an array of names"));
      for (const auto& n : v) {
        if (!n.is_string()) return absl::InvalidArgumentError(Cat(f, ": must hold strings only"));
        p.pass_env.push_back(n.get<std::string>());
      }
    } else if (key == "max_stdout_bytes") {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (64 << 20)) {
        return absl::InvalidArgumentError(Cat(f, ": must be 1 to 67108864"));
      }
      p.max_stdout_bytes = v.get<size_t>();
    } else if (key == "reduce") {
      if (!v.is_string()) return absl::InvalidArgumentError(Cat(f, ": must be a program name"));
      p.reduce = v.get<std::string>();
    } else {
      return absl::InvalidArgumentError(Cat(f, ": unknown field"));
    }
  }
  if (p.argv.empty()) return absl::InvalidArgumentError(Cat(field, ".argv: required"));
  return p;
}

// The task's params resolved against the allowlist.
struct Invocation {
  const ExecProgram* program = nullptr;
  std::string name;
  std::vector<std::string> args;
  std::chrono::milliseconds timeout{0};
};

absl::StatusOr<Invocation> Resolve(const ExecConfig& config, const json& params) {
  Invocation inv;
  auto it = params.find("program");
  if (it == params.end() || !it->is_string()) {
    return absl::InvalidArgumentError("params.program: required, the name of an allowed program");
  }
  inv.name = it->get<std::string>();
  auto p = config.programs.find(inv.name);
  if (p == config.programs.end()) {
    std::string allowed;
    for (const auto& [name, prog] : config.programs) allowed += (allowed.empty() ? "" : ", ") + name;
    return absl::InvalidArgumentError(Cat("params.program: '", SanitizeUtf8(inv.name),
                                          "' is not a program this worker may run (allowed: ",
                                          allowed.empty() ? "none" : allowed, ")"));
  }
  inv.program = &p->second;
  inv.timeout = inv.program->timeout;
  for (const auto& [key, v] : params.items()) {
    if (key == "program") continue;
    if (key == "args") {
      if (!v.is_array()) return absl::InvalidArgumentError("params.args: must be an array of strings");
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string()) {
          return absl::InvalidArgumentError(Cat("params.args[", i, "]: must be a string"));
        }
        inv.args.push_back(v[i].get<std::string>());
      }
    } else if (key == "timeout") {
      auto d = DurationField(v, "params.timeout");
      if (!d.ok()) return d.status();
      if (inv.timeout.count() == 0 || *d < inv.timeout) inv.timeout = *d;
    } else {
      return absl::InvalidArgumentError(Cat("params.", key, ": unknown (exec takes program, args, timeout)"));
    }
  }
  return inv;
}

ProcessSpec SpecFor(const ExecProgram& p, const std::vector<std::string>& extra_args) {
  ProcessSpec spec;
  spec.argv = p.argv;
  spec.argv.insert(spec.argv.end(), extra_args.begin(), extra_args.end());
  spec.cwd = p.cwd;
  spec.env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& name : p.pass_env) {
    if (const char* v = getenv(name.c_str())) spec.env[name] = v;
  }
  for (const auto& [k, v] : p.env) spec.env[k] = v;
  spec.timeout = p.timeout;
  spec.grace = p.grace;
  spec.max_stdout = p.max_stdout_bytes;
  spec.max_stderr = 2048;
  return spec;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return SanitizeUtf8(s);
}

// The outcome of one run as a status, or the parsed result on exit 0.
absl::StatusOr<json> Interpret(const std::string& name, const ProcessResult& r,
                               std::chrono::milliseconds timeout) {
  const std::string err = Trimmed(r.stderr_tail);
  const std::string tail = err.empty() ? "" : Cat(": ", err);
  switch (r.end) {
    case ProcessResult::End::kStopped:
      return absl::CancelledError(Cat("exec: ", name, " stopped"));
    case ProcessResult::End::kTimedOut:
      return absl::DeadlineExceededError(
          Cat("exec: ", name, " timed out after ", FormatDurationMs(timeout.count()), tail));
    case ProcessResult::End::kSignalled:
      return absl::UnavailableError(Cat("exec: ", name, " killed by signal ", r.code, " (",
                                        strsignal(r.code), ")", tail));
    case ProcessResult::End::kExited:
      break;
  }
  if (r.code == kNoRetryExitCode) {
    return absl::FailedPreconditionError(
        Cat("exec: ", name, " exited with code ", r.code, " (do not retry)", tail));
  }
  if (r.code != 0) {
    return absl::UnavailableError(Cat("exec: ", name, " exited with code ", r.code, tail));
  }
  // The last non-empty line of stdout.
  std::string_view out = r.stdout_tail;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.remove_suffix(1);
  size_t nl = out.rfind('\n');
  std::string_view last = nl == std::string_view::npos ? out : out.substr(nl + 1);
  json parsed = json::parse(last, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_object()) {
    if (nl == std::string_view::npos && r.stdout_truncated) {
      return absl::FailedPreconditionError(
          Cat("exec: ", name, ": the result line is longer than max_stdout_bytes"));
    }
    return parsed;
  }
  return json{{"stdout", SanitizeUtf8(r.stdout_tail)}};
}

}  // namespace

absl::StatusOr<ExecConfig> ParseExecConfig(const json& config) {
  ExecConfig out;
  if (!config.is_object()) return absl::InvalidArgumentError("config: must be a JSON object");
  auto exec = config.find("exec");
  if (exec == config.end()) return out;
  if (!exec->is_object()) return absl::InvalidArgumentError("exec: must be an object");
  for (const auto& [key, v] : exec->items()) {
    if (key != "programs") return absl::InvalidArgumentError(Cat("exec.", key, ": unknown field"));
    if (!v.is_object()) return absl::InvalidArgumentError("exec.programs: must be an object");
    for (const auto& [name, pj] : v.items()) {
      auto p = ParseProgram(pj, Cat("exec.programs.", name));
      if (!p.ok()) return p.status();
      out.programs[name] = std::move(*p);
    }
  }
  for (const auto& [name, p] : out.programs) {
    if (!p.reduce.empty() && out.programs.count(p.reduce) == 0) {
      return absl::InvalidArgumentError(
          Cat("exec.programs.", name, ".reduce: '", p.reduce, "' is not a listed program"));
    }
  }
  return out;
}

absl::StatusOr<Plan> ExecHandler::PlanSlices(const PlanInput& in) const {
  auto inv = Resolve(config_, *in.params);
  if (!inv.ok()) return inv.status();
  return Plan{};
}

absl::StatusOr<json> ExecHandler::Run(const SliceContext& ctx) const {
  auto inv = Resolve(config_, *ctx.params);
  // Planned on a worker that allows it, but not this one: another may.
  if (!inv.ok()) return absl::UnavailableError(inv.status().message());
  ProcessSpec spec = SpecFor(*inv->program, inv->args);
  spec.timeout = inv->timeout;
  spec.env["ORCHARD_TASK_ID"] = ctx.task_id;
  spec.env["ORCHARD_SUBTASK_INDEX"] = std::to_string(ctx.index);
  spec.env["ORCHARD_RANGE_BEGIN"] = std::to_string(ctx.begin);
  spec.env["ORCHARD_RANGE_END"] = std::to_string(ctx.end);
  spec.env["ORCHARD_ATTEMPT"] = std::to_string(ctx.attempt);
  auto on_progress = [&ctx](uint64_t n) {
    if (ctx.progress != nullptr) ctx.progress->store(std::min(n, ctx.end - ctx.begin));
  };
  auto r = RunProcess(spec, ctx.stop, on_progress);
  if (!r.ok()) return r.status();
  auto result = Interpret(inv->name, *r, spec.timeout);
  if (result.ok() && ctx.progress != nullptr) ctx.progress->store(ctx.end - ctx.begin);
  return result;
}

json ExecHandler::Init() const { return json{{"results", json::array()}}; }

absl::Status ExecHandler::Fold(json& acc, const json& result) const {
  // The daemon folds committed results in index order.
  acc["results"].push_back(result);
  return absl::OkStatus();
}

absl::StatusOr<json> ExecHandler::Finish(const FinishContext& ctx, json acc) const {
  if (!ctx.succeeded || ctx.params == nullptr) return acc;
  auto inv = Resolve(config_, *ctx.params);
  if (!inv.ok() || inv->program->reduce.empty()) return acc;
  const std::string& name = inv->program->reduce;
  const ExecProgram& reduce = config_.programs.at(name);
  ProcessSpec spec = SpecFor(reduce, {});
  spec.env["ORCHARD_TASK_ID"] = ctx.task_id;
  spec.stdin_data = acc["results"].dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  auto r = RunProcess(spec, std::stop_token{}, nullptr);
  if (!r.ok()) return r.status();
  auto out = Interpret(name, *r, spec.timeout);
  if (out.ok() && out->contains("stdout") && out->size() == 1) {
    return absl::FailedPreconditionError(
        Cat("exec: reduce program ", name, " did not print a JSON object on its last line"));
  }
  return out;
}

}  // namespace orchard::worker
