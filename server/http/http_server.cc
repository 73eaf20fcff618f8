// The Beast listener and connection coroutines; see http_server.h.
// Threads: one io_context thread (accept, read, write) and a thread pool for
// the handlers.
#include "server/http/http_server.h"

#include <charconv>
#include <chrono>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "common/strcat.h"

namespace orchard::server::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

struct HttpServer::Impl {
  Impl(HttpServerOptions o, HttpHandler h)
      : options(std::move(o)), handler(std::move(h)), pool(std::max(1, options.handler_threads)) {}

  HttpServerOptions options;
  HttpHandler handler;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::thread_pool pool;
  std::thread thread;
  bool started = false, stopped = false;

  asio::awaitable<void> Accept() {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(kAwait);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;  // e.g. too many open files: the next accept may work
      asio::co_spawn(io, Session(std::move(socket)), asio::detached);
    }
  }

  // The handler's answer; exceptions become a 500. Runs on a pool thread.
  HttpResponse Answer(const HttpRequest& request) {
    try {
      return handler(request);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {}: {}", request.method, request.path, e.what());
      HttpResponse r;
      r.status = 500;
      r.body = Cat("internal error: ", e.what(), "\n");
      return r;
    }
  }

  // Runs the handler on the pool and resumes the calling coroutine on its
  // own executor (the HTTP thread) with the answer. Plain lambdas, not
  // coroutine lambdas: GCC 12 destroys a coroutine lambda's init-captures twice.
  asio::awaitable<HttpResponse> Handle(HttpRequest request) {
    auto initiate = [this](auto completion, HttpRequest req) {
      asio::post(pool, [this, req = std::move(req), completion = std::move(completion)]() mutable {
        HttpResponse answer = Answer(req);
        auto ex = asio::get_associated_executor(completion);
        asio::dispatch(ex, [completion = std::move(completion),
                            answer = std::move(answer)]() mutable {
          std::move(completion)(std::move(answer));
        });
      });
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(HttpResponse)>(
        initiate, asio::use_awaitable, std::move(request));
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    while (true) {
      stream.expires_after(std::chrono::seconds(60));
      bhttp::request<bhttp::string_body> req;
      auto [rec, rn] = co_await bhttp::async_read(stream, buffer, req, kAwait);
      if (rec) break;  // closed, timed out, or not HTTP
      HttpResponse out =
          co_await Handle(ParseTarget(std::string(req.method_string()), req.target()));
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status),
                                              req.version()};
      res.set(bhttp::field::server, "orchard");
      res.set(bhttp::field::content_type, out.content_type);
      res.set(bhttp::field::cache_control, "no-store");
      for (const auto& [k, v] : out.headers) res.set(k, v);
      res.keep_alive(req.keep_alive());
      if (req.method() == bhttp::verb::head) {
        res.content_length(out.body.size());
      } else {
        res.body() = std::move(out.body);
        res.prepare_payload();
      }
      stream.expires_after(std::chrono::seconds(60));
      auto [wec, wn] = co_await bhttp::async_write(stream, res, kAwait);
      if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<uint16_t> HttpServer::Start() {
  Impl& m = *impl_;
  if (m.started) return absl::FailedPreconditionError("http: already started");
  beast::error_code ec;
  const std::string host = m.options.host == "localhost" ? "127.0.0.1" : m.options.host;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        Cat("--http: '", m.options.host, "' is not an IP address"));
  }
  const tcp::endpoint endpoint(address, m.options.port);
  m.acceptor.open(endpoint.protocol(), ec);
  if (!ec) m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(endpoint, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        Cat("--http: cannot listen on ", m.options.host, ":", m.options.port, ": ", ec.message()));
  }
  const uint16_t port = m.acceptor.local_endpoint().port();
  asio::co_spawn(m.io, m.Accept(), asio::detached);
  m.started = true;
  m.thread = std::thread([&m] { m.io.run(); });
  return port;
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  asio::post(m.io, [&m] {
    beast::error_code ignored;
    m.acceptor.close(ignored);
  });
  // Open keep-alive connections would wait for their idle timeout: stop now.
  m.io.stop();
  m.thread.join();
  m.pool.join();
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text,
                                                               const std::string& flag) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        Cat(flag, ": '", text, "' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:0)"));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad();
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

}  // namespace orchard::server::http
