// HttpServer: the server's HTTP listener (health, metrics, JSON API,
// dashboard), on Boost.Beast. It runs on its own io_context thread, so it
// never takes a gRPC thread; each request's handler runs on a small thread
// pool of its own (handlers call the blocking Store), and the connection's
// coroutine resumes on the HTTP thread to write the answer. HTTP/1.1 with
// keep-alive; an idle connection is closed after 60 s.
//
// Beast and Asio stay in http_server.cc (heavy headers).
//
// Thread-safety: Start() and Stop() from one thread (main); the handler is
// called from the pool's threads, several at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/http/http_types.h"

namespace orchard::server::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // an IP address (v4 or v6)
  uint16_t port = 0;               // 0: the system picks a free port
  int handler_threads = 2;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // Stop()

  // Binds and starts serving; returns the bound port. INVALID_ARGUMENT for a
  // host that is not an IP address, UNAVAILABLE when the address is taken.
  absl::StatusOr<uint16_t> Start();
  // Closes the listener and every connection, waits for running handlers.
  // Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "127.0.0.1:8080" or "[::1]:0" -> host and port; INVALID_ARGUMENT naming
// `flag` otherwise.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text,
                                                               const std::string& flag);

}  // namespace orchard::server::http
