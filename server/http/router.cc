// Path dispatch, health, readiness, metrics and assets; see router.h.
#include "server/http/router.h"

#include "common/strcat.h"
#include "server/http/api.h"
#include "server/http/assets.h"

namespace orchard::server::http {

namespace {

HttpResponse Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

Router::Router(store::Store* store, ServerMetrics* metrics, const Clock* clock,
               RouterOptions options)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      waiting_(store, clock, options.alive_window_ms),
      names_(store, clock) {}

HttpResponse Router::Handle(const HttpRequest& request) {
  std::string handler = "unknown";
  HttpResponse r = Route(request, handler);
  metrics_->http_requests.With({handler, std::to_string(r.status)}).Inc();
  return r;
}

HttpResponse Router::Route(const HttpRequest& req, std::string& handler) {
  const bool api = req.path.rfind("/api/", 0) == 0;
  if (!req.target_error.empty()) {
    handler = "bad_request";
    return api ? JsonError(absl::InvalidArgumentError(req.target_error))
               : Text(400, Cat("bad request: ", req.target_error, "\n"));
  }
  if (req.method != "GET" && req.method != "HEAD") {
    handler = "bad_method";
    HttpResponse r = api ? JsonError(absl::InvalidArgumentError(
                               Cat("method ", req.method, " is not allowed: use GET")))
                         : Text(405, Cat("method ", req.method, " is not allowed: use GET\n"));
    r.status = 405;
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (req.path == "/healthz") {
    handler = "healthz";
    return Text(200, "ok\n");
  }
  if (req.path == "/readyz") {
    handler = "readyz";
    return Ready();
  }
  if (req.path == "/metrics") {
    handler = "metrics";
    return Metrics();
  }
  if (req.path.rfind("/api/v1/", 0) == 0) {
    return HandleApi(*store_, *clock_, options_.alive_window_ms, waiting_, names_, req, handler);
  }
  if (api) {
    handler = "unknown";
    return JsonError(absl::NotFoundError(Cat("no such endpoint: ", req.path, " (the API is /api/v1/)")));
  }
  handler = "assets";
  return Asset(req.path);
}

HttpResponse Router::Ready() {
  absl::Status s = store_->Ping();
  if (s.ok()) return Text(200, "ready\n");
  return Text(503, Cat("not ready: store: ", s.message(), "\n"));
}

HttpResponse Router::Metrics() {
  // The gauges that come from the store are refilled at each scrape; one
  // scrape at a time, so two never interleave their Clear and refill.
  std::lock_guard lock(scrape_mu_);
  std::string warnings;
  if (auto counts = store_->CountByState(); counts.ok()) {
    for (State s : kAllStates) {
      const std::string name(StateName(s));
      metrics_->tasks.With({name}).Set(static_cast<double>(counts->tasks[static_cast<int>(s)]));
      metrics_->subtasks.With({name}).Set(
          static_cast<double>(counts->subtasks[static_cast<int>(s)]));
    }
  } else {
    warnings += Cat("# store: counts by state: ", counts.status().message(), "\n");
  }
  if (auto workers = store_->ListWorkers(clock_->NowMs(), options_.alive_window_ms);
      workers.ok()) {
    metrics_->worker_slots.Clear();
    metrics_->worker_slots_used.Clear();
    double alive = 0, dead = 0, slots = 0, used = 0;
    for (const auto& w : *workers) {
      if (!w.alive()) {
        ++dead;
        continue;
      }
      ++alive;
      slots += w.slots();
      used += w.slots_in_use();
      metrics_->worker_slots.With({w.id(), w.name()}).Set(w.slots());
      metrics_->worker_slots_used.With({w.id(), w.name()}).Set(w.slots_in_use());
    }
    metrics_->workers.With({"true"}).Set(alive);
    metrics_->workers.With({"false"}).Set(dead);
    metrics_->slots.With({}).Set(slots);
    metrics_->slots_used.With({}).Set(used);
  } else {
    warnings += Cat("# store: workers: ", workers.status().message(), "\n");
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = warnings + metrics_->registry.Render();
  return r;
}

HttpResponse Router::Asset(const std::string& path) {
  std::string name;
  if (path == "/" || path == "/index.html") {
    name = "index.html";
  } else if (path == "/favicon.ico" || path == "/favicon.svg") {
    name = "favicon.svg";
  } else if (path.rfind("/assets/", 0) == 0) {
    name = path.substr(8);
  }
  const http::Asset* a = name.empty() ? nullptr : FindAsset(name);
  if (a == nullptr) {
    return Text(404, Cat("not found: ", path, " (the dashboard is at /, the API at /api/v1/)\n"));
  }
  HttpResponse r;
  r.content_type = std::string(a->content_type);
  r.body = std::string(a->data);
  return r;
}

}  // namespace orchard::server::http
