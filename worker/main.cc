// orchard-worker: parses flags, registers the built-in handlers and runs the
// daemon. No logic of its own.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <spdlog/spdlog.h>

#include "common/log.h"
#include "common/json_config.h"
#include "common/process.h"
#include "orchard/version.h"
#include "worker/daemon.h"
#include "worker/handler.h"
#include "worker/handlers/exec.h"

int main(int argc, char** argv) {
  orchard::InitProcess();
  CLI::App app{
      "orchard-worker: the Orchard worker daemon. Registers with the server, leases subtasks\n"
      "and runs them with its handlers (noop, sleep, sum, flaky, csv.aggregate, and exec\n"
      "with --config), and reconciles tasks.\n"
      "SIGTERM drains: no new work, running subtasks finish, then it exits 0."};
  app.footer("Example:\n  orchard-worker --server 127.0.0.1:7070 --slots 4 --name node-1");
  orchard::worker::DaemonOptions options;
  std::string log_level = "info", log_format = "text";
  app.add_option("--server", options.server, "the server's address")
      ->envname("ORCHARD_SERVER");
  app.add_option("--slots", options.slots, "subtasks run at once")->check(CLI::Range(1, 1024));
  app.add_option("--name", options.name, "a name for operators (letters, digits, . _ -)");
  app.add_option("--max-reconcilers", options.max_reconcilers, "tasks reconciled at once")
      ->check(CLI::Range(1, 100));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--log-format", log_format, "text|json")->check(CLI::IsMember({"text", "json"}));
  CLI::Option* config = orchard::AddJsonConfig(
      app,
      "a JSON config file: any flag, its name without the dashes as a key "
      "({\"server\": \"10.0.0.5:7070\", \"slots\": 8}; a flag on the command line wins), "
      "and the \"exec\" section listing the programs the exec handler may run (see "
      "worker/handlers/exec.h)",
      {"exec"});
  app.set_version_flag("--version", "orchard-worker " ORCHARD_VERSION_STRING);
  CLI11_PARSE(app, argc, argv);
  const std::string config_path = config->count() > 0 ? config->results().front() : "";
  if (!orchard::log::Init("worker", log_level, log_format)) {
    fprintf(stderr, "orchard-worker: error: --log-level: unknown level '%s'\n", log_level.c_str());
    return 2;
  }
  orchard::worker::Registry registry;
  orchard::worker::AddBuiltinHandlers(registry);
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    auto config = nlohmann::json::parse(in, nullptr, false);
    auto exec = config.is_discarded()
                    ? absl::StatusOr<orchard::worker::ExecConfig>(
                          absl::InvalidArgumentError("not valid JSON"))
                    : orchard::worker::ParseExecConfig(config);
    if (!exec.ok()) {
      fprintf(stderr, "orchard-worker: error: --config %s: %s\n", config_path.c_str(),
              std::string(exec.status().message()).c_str());
      return 2;
    }
    // Only a worker with programs to run offers the exec kind.
    if (!exec->programs.empty()) {
      registry.Add("exec", std::make_unique<orchard::worker::ExecHandler>(std::move(*exec)));
    }
  }
  // The daemon is never destroyed: its destructor joins the handler
  // threads, and a handler stuck in a call that ignores its stop token (a
  // read of a hung mount, say) would keep a drained worker from exiting.
  // Run() returns once the drain is over (or its timeout passed); what is
  // left to a stuck thread is lost with the process, as its lease expires.
  auto* daemon = new orchard::worker::Daemon(options, &registry);
  const int code = daemon->Run();
  spdlog::shutdown();
  std::fflush(nullptr);
  std::_Exit(code);
}
