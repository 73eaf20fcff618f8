// Router: what each HTTP path answers. Health (/healthz, /readyz), metrics
// (/metrics, Prometheus text format 0.0.4), the JSON API under /api/v1/ (see
// api.h) and the dashboard's embedded assets (/ and /assets/NAME).
//
// Every bad request gets a clear error: 404 for an unknown path or task (JSON
// under /api/, naming it), 400 naming a bad query parameter, 405 for a method
// other than GET or HEAD.
//
// Thread-safety: Handle() may be called from several threads at once (the
// store and the metrics are thread-safe; a metrics scrape refills the store
// gauges under a mutex).
#pragma once

#include <cstdint>
#include <mutex>

#include "common/clock.h"
#include "server/http/http_types.h"
#include "server/ops/metrics.h"
#include "server/store/store.h"
#include "server/waiting.h"
#include "server/worker_names.h"

namespace orchard::server::http {

struct RouterOptions {
  // A worker is alive while its last heartbeat is this recent (the lease TTL).
  int64_t alive_window_ms = 10'000;
};

class Router {
 public:
  Router(store::Store* store, ServerMetrics* metrics, const Clock* clock, RouterOptions options);

  HttpResponse Handle(const HttpRequest& request);

 private:
  HttpResponse Route(const HttpRequest& request, std::string& handler);
  HttpResponse Ready();
  HttpResponse Metrics();
  HttpResponse Asset(const std::string& path);

  store::Store* store_;
  ServerMetrics* metrics_;
  const Clock* clock_;
  RouterOptions options_;
  WaitExplainer waiting_;
  WorkerNames names_;
  std::mutex scrape_mu_;
};

}  // namespace orchard::server::http
