// The gRPC edge of the server: TaskService (clients) and WorkerService
// (workers), both on gRPC's callback API.
//
// Threads: gRPC's callback threads only parse, validate and hand work to a
// pool that calls the (blocking) Store; the pool finishes each reactor when
// the store answers. Long polls park on the Hub and re-run when the store
// changes, so no thread is held while a call waits for work.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/clock.h"
#include "orchard/v1/orchard.grpc.pb.h"
#include "server/hub.h"
#include "server/store/store.h"

namespace orchard::server {

struct ServiceOptions {
  int64_t lease_ttl_ms = 10'000;
  int pool_threads = 8;
  uint32_t max_acquire_wait_ms = 30'000;
};

class Services {
 public:
  Services(store::Store* store, Hub* hub, const Clock* clock, ServiceOptions options);
  ~Services();

  grpc::Service* task_service();
  grpc::Service* worker_service();

  // Makes every parked long poll answer now, so the gRPC server can shut
  // down without waiting for their deadlines.
  void BeginShutdown();
  // Waits for the pool's work; call after the gRPC server shut down.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::server
