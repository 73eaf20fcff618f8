// orchardctl's subcommands; see commands.h.
#include "cli/commands.h"

#include <unistd.h>

#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "cli/args.h"
#include "cli/client.h"
#include "cli/exit_codes.h"
#include "cli/format.h"
#include "cli/watch.h"
#include "common/clock.h"
#include "common/strcat.h"
#include "common/util.h"
#include "orchard/v1/orchard.pb.h"
#include "orchard/version.h"

namespace orchard::cli {

using nlohmann::json;

struct Commands::Flags {
  // Global.
  std::string server = "127.0.0.1:7070";
  std::string timeout = "10s";
  // Shared by the subcommands (only one of them runs).
  std::string output = "text";
  std::string id;
  std::vector<std::string> states;
  std::vector<std::string> labels;
  std::string kind;
  std::string limit;
  std::string page_token;
  std::string reason;
  std::string subtask;
  std::string reconnect = "60s";
  bool wait = false;  // submit --wait
  SubmitArgs submit;
};

namespace {

constexpr const char* kExitCodesHelp =
    "Exit codes:\n"
    "  0  success (watch: the task ended SUCCEEDED)\n"
    "  1  error: task not found, server unreachable, request refused\n"
    "  2  bad command line: unknown subcommand or flag, bad flag value\n"
    "  3  watch: the task ended in Error (FAILED)\n"
    "  4  watch: the task ended CANCELLED\n";

// A flag value we refused before calling anyone.
int UsageError(const absl::Status& s) {
  std::cerr << "orchardctl: error: " << s.message() << std::endl;
  return kExitUsage;
}

// A call that failed: the code name, then the server's own message.
int CallError(const absl::Status& s) {
  std::cerr << "orchardctl: error: " << absl::StatusCodeToString(s.code()) << ": " << s.message()
            << std::endl;
  return kExitError;
}

void PrintJson(const json& j) {
  // replace: a stray invalid UTF-8 byte must not turn into an exception.
  std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << std::endl;
}

bool Json(const Commands::Flags& f) { return f.output == "json"; }

int64_t NowMs() { return SystemClock::Get()->NowMs(); }

absl::StatusOr<std::unique_ptr<Client>> MakeClient(const Commands::Flags& f) {
  absl::StatusOr<uint64_t> ms = ParseDurationMs(f.timeout, "timeout");
  if (!ms.ok()) return ms.status();
  if (*ms == 0) return absl::InvalidArgumentError("timeout: must be more than 0");
  if (f.server.empty()) return absl::InvalidArgumentError("server: must not be empty");
  return std::make_unique<Client>(f.server, std::chrono::milliseconds(*ms));
}

// --limit: 0 (not given) means everything.
absl::StatusOr<uint64_t> Limit(const Commands::Flags& f) {
  if (f.limit.empty()) return 0;
  absl::StatusOr<uint64_t> n = ParseUint64(f.limit, "limit");
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::InvalidArgumentError("limit: must be at least 1");
  return *n;
}

void MorePagesNote(const std::string& what, const std::string& token) {
  if (token.empty()) return;
  std::cerr << "orchardctl: more " << what << " follow: add --page-token " << token << std::endl;
}

void PrintTask(const Commands::Flags& f, const v1::Task& t) {
  if (Json(f)) {
    PrintJson(TaskToJson(t));
  } else {
    std::cout << TaskText(t, NowMs());
  }
}

// The task is stored whatever workers exist (they may start later), but a
// kind that no live worker offers is most often a typo: say so on stderr,
// with the kinds offered now and the nearest one. Best effort: a failed
// look-up prints nothing.
void WarnIfNoWorkerRunsKind(Client& client, const std::string& kind) {
  auto workers = client.ListWorkers();
  if (!workers.ok()) return;
  std::set<std::string> live;
  for (const auto& w : workers->workers()) {
    if (w.alive()) live.insert(w.kinds().begin(), w.kinds().end());
  }
  if (live.count(kind) > 0) return;
  std::cerr << "orchardctl: warning: "
            << NoWorkerRunsKind(kind, std::vector<std::string>(live.begin(), live.end()))
            << "; the task waits until one does" << std::endl;
}

// --------------------------------------------------------------- commands

int RunSubmit(const Commands::Flags& f) {
  v1::SubmitRequest req;
  if (absl::Status s = BuildTaskSpec(f.submit, req.mutable_spec()); !s.ok()) return UsageError(s);
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  absl::StatusOr<v1::SubmitResponse> resp = (*client)->Submit(req);
  if (!resp.ok()) return CallError(resp.status());
  if (!resp->created()) {
    std::cerr << "orchardctl: note: request id '" << f.submit.request_id << "' matched task "
              << resp->task().id() << ", submitted before; nothing new was created" << std::endl;
  }
  WarnIfNoWorkerRunsKind(**client, req.spec().kind());
  if (f.wait) {
    // submit, then watch: the same output and exit codes as `watch` (with
    // -o json, the task as submitted is the first line of the NDJSON).
    if (!Json(f)) std::cout << resp->task().id() << std::endl;
    WatchOptions opts;
    opts.id = resp->task().id();
    opts.tty = isatty(STDOUT_FILENO) != 0;
    opts.json = Json(f);
    return RunWatch(**client, opts);
  }
  if (Json(f)) {
    PrintJson(TaskToJson(resp->task()));
  } else {
    std::cout << resp->task().id() << std::endl;
  }
  return kExitOk;
}

int RunGet(const Commands::Flags& f) {
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  absl::StatusOr<v1::Task> t = (*client)->GetTask(f.id);
  if (!t.ok()) return CallError(t.status());
  PrintTask(f, *t);
  return kExitOk;
}

int RunList(const Commands::Flags& f) {
  v1::ListTasksRequest req;
  absl::StatusOr<std::vector<int>> states = ParseStates(f.states);
  if (!states.ok()) return UsageError(states.status());
  for (int s : *states) req.add_states(static_cast<v1::State>(s));
  auto labels = ParseLabels(f.labels);
  if (!labels.ok()) return UsageError(labels.status());
  for (const auto& [k, v] : *labels) (*req.mutable_labels())[k] = v;
  req.set_kind(f.kind);
  absl::StatusOr<uint64_t> limit = Limit(f);
  if (!limit.ok()) return UsageError(limit.status());
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());

  std::vector<v1::Task> tasks;
  std::string token = f.page_token;
  do {
    uint64_t want = *limit == 0 ? 1000 : std::min<uint64_t>(*limit - tasks.size(), 1000);
    req.set_page_size(static_cast<uint32_t>(want));
    req.set_page_token(token);
    absl::StatusOr<v1::ListTasksResponse> resp = (*client)->ListTasks(req);
    if (!resp.ok()) return CallError(resp.status());
    for (const v1::Task& t : resp->tasks()) {
      if (*limit != 0 && tasks.size() >= *limit) break;
      tasks.push_back(t);
    }
    token = resp->next_page_token();
  } while (!token.empty() && (*limit == 0 || tasks.size() < *limit));

  if (Json(f)) {
    json arr = json::array();
    for (const v1::Task& t : tasks) arr.push_back(TaskToJson(t));
    PrintJson(arr);
  } else {
    std::cout << TaskTable(tasks, NowMs());
  }
  MorePagesNote("tasks", token);
  return kExitOk;
}

int RunWatchCommand(const Commands::Flags& f) {
  absl::StatusOr<uint64_t> budget = ParseDurationMs(f.reconnect, "reconnect_for");
  if (!budget.ok()) return UsageError(budget.status());
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  WatchOptions opts;
  opts.id = f.id;
  opts.reconnect_budget = std::chrono::milliseconds(*budget);
  opts.tty = isatty(STDOUT_FILENO) != 0;
  opts.json = Json(f);
  return RunWatch(**client, opts);
}

int RunCancel(const Commands::Flags& f) {
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  v1::CancelTaskRequest req;
  req.set_id(f.id);
  req.set_reason(f.reason);
  absl::StatusOr<v1::Task> t = (*client)->CancelTask(req);
  if (!t.ok()) return CallError(t.status());
  PrintTask(f, *t);
  return kExitOk;
}

int RunRetry(const Commands::Flags& f) {
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  absl::StatusOr<v1::Task> t = (*client)->RetryTask(f.id);
  if (!t.ok()) return CallError(t.status());
  PrintTask(f, *t);
  return kExitOk;
}

int RunSubtasks(const Commands::Flags& f) {
  v1::ListSubtasksRequest req;
  req.set_task_id(f.id);
  absl::StatusOr<std::vector<int>> states = ParseStates(f.states);
  if (!states.ok()) return UsageError(states.status());
  for (int s : *states) req.add_states(static_cast<v1::State>(s));
  absl::StatusOr<uint64_t> limit = Limit(f);
  if (!limit.ok()) return UsageError(limit.status());
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());

  std::vector<v1::Subtask> subtasks;
  std::string token;
  do {
    uint64_t want = *limit == 0 ? 10000 : std::min<uint64_t>(*limit - subtasks.size(), 10000);
    req.set_page_size(static_cast<uint32_t>(want));
    req.set_page_token(token);
    absl::StatusOr<v1::ListSubtasksResponse> resp = (*client)->ListSubtasks(req);
    if (!resp.ok()) return CallError(resp.status());
    for (const v1::Subtask& s : resp->subtasks()) {
      if (*limit != 0 && subtasks.size() >= *limit) break;
      subtasks.push_back(s);
    }
    token = resp->next_page_token();
  } while (!token.empty() && (*limit == 0 || subtasks.size() < *limit));

  if (Json(f)) {
    json arr = json::array();
    for (const v1::Subtask& s : subtasks) arr.push_back(SubtaskToJson(s));
    PrintJson(arr);
  } else {
    std::cout << SubtaskTable(subtasks);
  }
  if (!token.empty()) {
    std::cerr << "orchardctl: showing the first " << subtasks.size()
              << " subtasks; raise --limit for more" << std::endl;
  }
  return kExitOk;
}

int RunHistory(const Commands::Flags& f) {
  v1::GetHistoryRequest req;
  req.set_task_id(f.id);
  if (!f.subtask.empty()) {
    absl::StatusOr<int64_t> idx = ParseInt64(f.subtask, "subtask");
    if (!idx.ok()) return UsageError(idx.status());
    if (*idx < -1) {
      return UsageError(absl::InvalidArgumentError(
          "subtask: must be a subtask index, or -1 for the task's own rows"));
    }
    req.set_subtask_index(*idx);
  }
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());

  std::vector<v1::HistoryEntry> entries;
  std::string token;
  do {
    req.set_page_size(10000);
    req.set_page_token(token);
    absl::StatusOr<v1::GetHistoryResponse> resp = (*client)->GetHistory(req);
    if (!resp.ok()) return CallError(resp.status());
    entries.insert(entries.end(), resp->entries().begin(), resp->entries().end());
    token = resp->next_page_token();
  } while (!token.empty());

  if (Json(f)) {
    json arr = json::array();
    for (const v1::HistoryEntry& e : entries) arr.push_back(HistoryToJson(e));
    PrintJson(arr);
  } else {
    std::cout << HistoryText(entries);
  }
  return kExitOk;
}

// The client's own version, then the server's (GetServerInfo). A server
// too old to answer GetServerInfo is reported as such, not as a failure.
int RunVersion(const Commands::Flags& f) {
  json client = {{"version", ORCHARD_VERSION},
                 {"git_commit", ORCHARD_GIT_COMMIT},
                 {"api_version", ORCHARD_API_VERSION}};
  auto c = MakeClient(f);
  if (!c.ok()) return UsageError(c.status());
  // The client's own line first, so an unreachable server still leaves it.
  if (!Json(f)) {
    std::cout << "client: orchardctl " << ORCHARD_VERSION_STRING << ", API " << ORCHARD_API_VERSION
              << std::endl;
  }
  absl::StatusOr<v1::ServerInfo> info = (*c)->GetServerInfo();
  json server;
  if (info.ok()) {
    server = {{"address", (*c)->address()},
              {"version", info->version()},
              {"git_commit", info->git_commit()},
              {"api_version", info->api_version()},
              {"store", info->store()},
              {"features", std::vector<std::string>(info->features().begin(),
                                                    info->features().end())},
              {"max_submit_batch", info->max_submit_batch()}};
  } else if (info.status().code() == absl::StatusCode::kUnimplemented) {
    server = {{"address", (*c)->address()},
              {"error", "older than GetServerInfo (API version 1)"}};
  } else {
    return CallError(info.status());
  }
  if (Json(f)) {
    PrintJson(json{{"client", client}, {"server", server}});
    return kExitOk;
  }
  if (server.contains("error")) {
    std::cout << "server: " << (*c)->address() << ": " << server["error"].get<std::string>()
              << "\n";
  } else {
    std::cout << "server: " << (*c)->address() << ": orchard-server " << info->version()
              << " (commit " << (info->git_commit().empty() ? "unknown" : info->git_commit())
              << "), API " << info->api_version() << ", store " << info->store() << "\n";
  }
  return kExitOk;
}

int RunWorkers(const Commands::Flags& f) {
  auto client = MakeClient(f);
  if (!client.ok()) return UsageError(client.status());
  absl::StatusOr<v1::ListWorkersResponse> resp = (*client)->ListWorkers();
  if (!resp.ok()) return CallError(resp.status());
  std::vector<v1::WorkerInfo> workers(resp->workers().begin(), resp->workers().end());
  if (Json(f)) {
    json arr = json::array();
    for (const v1::WorkerInfo& w : workers) arr.push_back(WorkerToJson(w));
    PrintJson(arr);
  } else {
    std::cout << WorkerTable(workers, NowMs());
  }
  return kExitOk;
}

// ------------------------------------------------------------ registration

void AddOutput(CLI::App* sub, Commands::Flags& f) {
  sub->add_option("-o,--output", f.output, "output format: text or json (one JSON document)")
      ->check(CLI::IsMember({"text", "json"}));
}

void AddId(CLI::App* sub, Commands::Flags& f) {
  sub->add_option("id", f.id, "task id (as printed by submit)")->required();
}

}  // namespace

Commands::Commands(CLI::App& app) : flags_(std::make_unique<Flags>()) {
  Flags& f = *flags_;
  // No require_subcommand(): with it CLI11 answers "A subcommand is required"
  // even to a misspelt one; without it, a stray word is "not expected: frobnicate".
  // Global flags may also follow the subcommand: `orchardctl get ID --server X`.
  app.fallthrough();
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    std::string hint;
    // A misspelt subcommand is a stray word to CLI11: name the nearest one.
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr && a->get_subcommands().empty()) {
      std::vector<std::string> names;
      for (const CLI::App* sub : a->get_subcommands({})) names.push_back(sub->get_name());
      for (const std::string& word : a->remaining()) {
        if (auto near = Nearest(word, names)) {
          hint = Cat("Did you mean '", *near, "'?\n");
          break;
        }
      }
    }
    return Cat("orchardctl: error: ", e.what(), "\n", hint,
               "Run with --help for more information.\n");
  });
  app.add_option("--server", f.server, "API server address host:port")
      ->envname("ORCHARD_SERVER")
      ->capture_default_str();
  app.add_option("--timeout", f.timeout,
                 "deadline of each call, e.g. 10s or 500ms (also how long to wait for an "
                 "unreachable server)")
      ->capture_default_str();
  app.footer(Cat("Examples:\n"
                 "  orchardctl submit --kind sum --range 0:1000000 --subtasks 100\n"
                 "  orchardctl watch t-1m8ye5hqm3kq9x0b2\n"
                 "  orchardctl --server 10.0.0.5:7070 list --state Running -o json\n\n"
                 "The server address comes from --server, else $ORCHARD_SERVER, else "
                 "127.0.0.1:7070.\n\n",
                 kExitCodesHelp));

  auto choose = [this](CLI::App* sub, int (*run)(const Flags&)) {
    sub->fallthrough();
    sub->callback([this, run] { chosen_ = [this, run] { return run(*flags_); }; });
  };

  // submit
  CLI::App* submit = app.add_subcommand(
      "submit", "Submit a task: run handler KIND over the items [BEGIN, END), cut into slices");
  submit->add_option("--kind", f.submit.kind, "handler kind, e.g. sum, sleep, noop")->required();
  submit->add_option("--range", f.submit.range, "items BEGIN:END (END excluded), e.g. 0:1000")
      ->required();
  submit->add_option("--subtasks", f.submit.subtasks, "cut the range into N near-equal slices");
  submit->add_option("--chunk", f.submit.chunk, "cut the range into slices of SIZE items");
  submit->add_option("--params", f.submit.params, "handler parameters, a JSON object");
  submit->add_option("--max-attempts", f.submit.max_attempts,
                     "attempts per subtask before it fails (server default 3)");
  submit->add_option("--max-failed-subtasks", f.submit.max_failed_subtasks,
                     "subtasks that may fail before the task fails (default 0; -1 = no limit)");
  submit->add_option("--deadline", f.submit.deadline,
                     "fail the task this long after submit, e.g. 30s, 5m (default none)");
  submit->add_option("--parallelism", f.submit.parallelism,
                     "most subtasks running at once (default no limit)");
  submit->add_option("--priority", f.submit.priority, "higher runs first (default 0)");
  submit->add_option("--backoff", f.submit.backoff, "first retry backoff, e.g. 500ms");
  submit->add_option("--backoff-max", f.submit.backoff_max, "retry backoff cap, e.g. 30s");
  submit->add_option("--label", f.submit.labels, "label KEY=VALUE (repeatable)");
  submit->add_option("--request-id", f.submit.request_id,
                     "idempotency key: submitting again with it returns the same task");
  submit->add_flag("--wait", f.wait,
                   "then watch the task until it ends; exit codes as for watch");
  AddOutput(submit, f);
  submit->footer(
      "Give exactly one of --subtasks and --chunk. Prints the new task's id (or the task "
      "with -o json).\n\n"
      "Examples:\n"
      "  orchardctl submit --kind sum --range 0:1000000 --subtasks 100\n"
      "  orchardctl submit --kind sleep --range 0:50 --chunk 5 --params '{\"ms\": 200}' \\\n"
      "      --max-attempts 5 --deadline 10m --label team=data --request-id nightly-2024-05-01");
  choose(submit, RunSubmit);

  // get
  CLI::App* get = app.add_subcommand("get", "Show one task: state, progress, result");
  AddId(get, f);
  AddOutput(get, f);
  get->footer("Example:\n  orchardctl get t-1m8ye5hqm3kq9x0b2 -o json");
  choose(get, RunGet);

  // list
  CLI::App* list = app.add_subcommand("list", "List tasks, newest first");
  list->add_option("--state", f.states,
                   "only tasks in these states: a comma-separated list, or repeated")
      ->delimiter(',');
  list->add_option("--label", f.labels, "only tasks with label KEY=VALUE (repeatable, all match)");
  list->add_option("--kind", f.kind, "only tasks of this handler kind");
  list->add_option("--limit", f.limit, "at most N tasks (default: all)");
  list->add_option("--page-token", f.page_token, "continue where an earlier --limit stopped");
  AddOutput(list, f);
  list->footer("Example:\n  orchardctl list --state Running,Preparing --label team=data");
  choose(list, RunList);

  // watch
  CLI::App* watch = app.add_subcommand(
      "watch", "Follow a task's progress until it ends; the exit code tells the outcome");
  AddId(watch, f);
  watch->add_option("--reconnect-for", f.reconnect,
                    "keep reconnecting to a lost server this long before giving up")
      ->capture_default_str();
  watch->add_option("-o,--output", f.output,
                    "output format: text, or json (one JSON object per change, NDJSON)")
      ->check(CLI::IsMember({"text", "json"}));
  watch->footer(Cat(
      "On a terminal a progress bar is redrawn in place; on a pipe one line is printed per "
      "change.\nIf the server goes away, watch reconnects with backoff and resumes.\n\n"
      "Example:\n  orchardctl watch t-1m8ye5hqm3kq9x0b2 && echo done\n\n",
      kExitCodesHelp));
  choose(watch, RunWatchCommand);

  // cancel
  CLI::App* cancel = app.add_subcommand("cancel", "Cancel a task: stop its running subtasks");
  AddId(cancel, f);
  cancel->add_option("--reason", f.reason, "why, kept in the task's history");
  AddOutput(cancel, f);
  cancel->footer("Example:\n  orchardctl cancel t-1m8ye5hqm3kq9x0b2 --reason 'wrong input file'");
  choose(cancel, RunCancel);

  // retry
  CLI::App* retry =
      app.add_subcommand("retry", "Retry a failed task: re-run only the slices that did not succeed");
  AddId(retry, f);
  AddOutput(retry, f);
  retry->footer("Example:\n  orchardctl retry t-1m8ye5hqm3kq9x0b2 && orchardctl watch t-1m8ye5hqm3kq9x0b2");
  choose(retry, RunRetry);

  // subtasks
  CLI::App* subtasks = app.add_subcommand("subtasks", "List a task's subtasks (slices)");
  AddId(subtasks, f);
  subtasks->add_option("--state", f.states,
                       "only subtasks in these states: a comma-separated list, or repeated")
      ->delimiter(',');
  subtasks->add_option("--limit", f.limit, "at most N subtasks (default: all)");
  AddOutput(subtasks, f);
  subtasks->footer("Example:\n  orchardctl subtasks t-1m8ye5hqm3kq9x0b2 --state Error -o json");
  choose(subtasks, RunSubtasks);

  // history
  CLI::App* history =
      app.add_subcommand("history", "Show a task's transitions and its subtasks', oldest first");
  AddId(history, f);
  history->add_option("--subtask", f.subtask, "only this subtask's rows (-1: the task's own)");
  AddOutput(history, f);
  history->footer("Example:\n  orchardctl history t-1m8ye5hqm3kq9x0b2 --subtask 7");
  choose(history, RunHistory);

  // workers
  CLI::App* workers = app.add_subcommand("workers", "List registered workers and their slots");
  AddOutput(workers, f);
  workers->footer("Example:\n  orchardctl workers -o json");
  choose(workers, RunWorkers);

  // version
  CLI::App* version =
      app.add_subcommand("version", "Show orchardctl's version and the server's (GetServerInfo)");
  AddOutput(version, f);
  version->footer("Example:\n  orchardctl version -o json");
  choose(version, RunVersion);
  app.set_version_flag("--version", "orchardctl " ORCHARD_VERSION_STRING);
}

Commands::~Commands() = default;

int Commands::Run() {
  if (!chosen_) {
    std::cerr << "orchardctl: error: a subcommand is required\n"
                 "Run with --help for more information."
              << std::endl;
    return kExitUsage;
  }
  return chosen_();
}

int HandleParseError(CLI::App& app, const CLI::Error& e) {
  int code = app.exit(e);  // prints help, or the failure message on stderr
  return code == 0 ? kExitOk : kExitUsage;
}

}  // namespace orchard::cli
