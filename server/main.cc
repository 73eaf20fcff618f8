// orchard-server: wires the store, the hub, the gRPC services, the lease
// sweeper and signal handling together. No logic of its own.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <fstream>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/json_config.h"
#include "common/log.h"
#include "common/process.h"
#include "common/util.h"
#include "orchard/version.h"
#include "server/ops/commit_reporter.h"
#include "server/http/http_server.h"
#include "server/http/router.h"
#include "server/hub.h"
#include "server/ops/interceptor.h"
#include "server/ops/metrics.h"
#include "server/service.h"
#include "server/store/store.h"
#include "server/sweeper.h"

int main(int argc, char** argv) {
  orchard::InitProcess();
  CLI::App app{
      "orchard-server: the Orchard API server. Stores tasks and subtasks in SQLite and serves\n"
      "the TaskService (clients) and WorkerService (workers) over gRPC."};
  app.footer(
      "Example:\n  orchard-server --listen 127.0.0.1:7070 --db /var/lib/orchard/orchard.db "
      "--lease-ttl 10s");
  std::string listen = "127.0.0.1:7070", db = "orchard.db", lease_ttl = "10s", port_file;
  std::string sync = "normal", log_level = "info", log_format = "text";
  app.add_option("--listen", listen, "address to serve gRPC on (port 0 picks a free one)");
  app.add_option("--db", db, "SQLite database file (created if missing)");
  app.add_option("--lease-ttl", lease_ttl,
                 "how long a lease lives without a heartbeat (e.g. 10s, 500ms)");
  app.add_option("--sync", sync,
                 "SQLite synchronous level: normal (survives kill -9) or full (survives power loss)")
      ->check(CLI::IsMember({"normal", "full"}));
  app.add_option("--port-file", port_file, "write the chosen port here once serving");
  std::string http_listen, http_port_file;
  app.add_option("--http", http_listen,
                 "serve the dashboard, /metrics, /healthz, /readyz and the JSON API /api/v1/ "
                 "over HTTP here (e.g. 127.0.0.1:8080; port 0 picks a free one)");
  app.add_option("--http-port-file", http_port_file,
                 "write the chosen HTTP port here once serving");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--log-format", log_format, "text|json")->check(CLI::IsMember({"text", "json"}));
  orchard::AddJsonConfig(app,
                         "read flags from this JSON file, each flag's name without the dashes as "
                         "a key: {\"listen\": \"10.0.0.5:7070\", \"lease-ttl\": \"10s\"}; a "
                         "flag on the command line wins over the file");
  app.set_version_flag("--version", "orchard-server " ORCHARD_VERSION_STRING);
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals before any thread starts (threads inherit the
  // mask), so that only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (!orchard::log::Init("server", log_level, log_format)) {
    fprintf(stderr, "orchard-server: error: --log-level: unknown level '%s'\n", log_level.c_str());
    return 2;
  }
  auto ttl = orchard::ParseDurationMs(lease_ttl, "--lease-ttl");
  if (!ttl.ok() || *ttl < 100) {
    fprintf(stderr, "orchard-server: error: %s\n",
            ttl.ok() ? "--lease-ttl: at least 100ms" : std::string(ttl.status().message()).c_str());
    return 2;
  }

  std::optional<std::pair<std::string, uint16_t>> http_addr;
  if (!http_listen.empty()) {
    auto a = orchard::server::http::ParseHostPort(http_listen, "--http");
    if (!a.ok()) {
      fprintf(stderr, "orchard-server: error: %s\n", std::string(a.status().message()).c_str());
      return 2;
    }
    http_addr = *a;
  }

  // Metrics and transition logs see every commit of the store (observer.h).
  orchard::server::ServerMetrics metrics;
  orchard::server::CommitReporter reporter(&metrics);
  orchard::store::SetCommitObserver(&reporter);

  orchard::store::SqliteOptions sopts;
  sopts.path = db;
  sopts.synchronous = sync;
  auto store = orchard::store::OpenSqliteStore(sopts);
  if (!store.ok()) {
    fprintf(stderr, "orchard-server: error: --db %s: %s\n", db.c_str(),
            std::string(store.status().message()).c_str());
    return 1;
  }
  metrics.store_info.With({"sqlite", sync}).Set(1);

  orchard::server::Hub hub;
  orchard::server::ServiceOptions options;
  options.lease_ttl_ms = static_cast<int64_t>(*ttl);
  orchard::server::Services services(store->get(), &hub, orchard::SystemClock::Get(), options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(services.task_service());
  builder.RegisterService(services.worker_service());
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.experimental().SetInterceptorCreators(orchard::server::MetricsInterceptors(&metrics));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    fprintf(stderr, "orchard-server: error: --listen %s: cannot listen there\n", listen.c_str());
    return 1;
  }
  // Health per service name as well as the server's (""): load balancers and
  // clients ask for the service they use.
  server->GetHealthCheckService()->SetServingStatus("orchard.v1.TaskService", true);
  server->GetHealthCheckService()->SetServingStatus("orchard.v1.WorkerService", true);
  std::string host = listen.substr(0, listen.rfind(':'));
  spdlog::info("listening on {}:{} (db {}, lease ttl {} ms, synchronous={})", host, port, db,
               *ttl, sync);
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }

  std::unique_ptr<orchard::server::http::Router> router;
  std::unique_ptr<orchard::server::http::HttpServer> http;
  if (http_addr) {
    router = std::make_unique<orchard::server::http::Router>(
        store->get(), &metrics, orchard::SystemClock::Get(),
        orchard::server::http::RouterOptions{.alive_window_ms = static_cast<int64_t>(*ttl)});
    http = std::make_unique<orchard::server::http::HttpServer>(
        orchard::server::http::HttpServerOptions{.host = http_addr->first,
                                                 .port = http_addr->second},
        [r = router.get()](const orchard::server::http::HttpRequest& req) {
          return r->Handle(req);
        });
    auto http_port = http->Start();
    if (!http_port.ok()) {
      fprintf(stderr, "orchard-server: error: %s\n",
              std::string(http_port.status().message()).c_str());
      server->Shutdown();
      services.Shutdown();
      return 1;
    }
    spdlog::info("dashboard and metrics on http://{}:{}/", http_addr->first, *http_port);
    if (!http_port_file.empty()) {
      std::string tmp = http_port_file + ".tmp";
      std::ofstream(tmp) << *http_port << "\n";
      std::rename(tmp.c_str(), http_port_file.c_str());
    }
  }

  orchard::server::Sweeper sweeper(store->get(), &hub, orchard::SystemClock::Get(),
                                   static_cast<int64_t>(*ttl));
  sweeper.Start();

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  sweeper.Stop();
  if (http) http->Stop();
  services.BeginShutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  services.Shutdown();
  hub.Shutdown();
  spdlog::info("stopped");
  return 0;
}
