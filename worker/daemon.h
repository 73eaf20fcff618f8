// The worker daemon: registers, keeps leases alive by heartbeat, leases
// subtasks and runs them, and reconciles the tasks it holds leases on.
//
// Threads: everything here runs on one io_context thread as C++20 coroutines
// (the heartbeat loop, two acquire loops, the reporter, one coroutine per
// running subtask and per reconciled task); handlers' Run() goes to a thread
// pool, so a slow handler never stalls the loop.
#pragma once

#include <memory>
#include <string>

#include "worker/handler.h"

namespace orchard::worker {

struct DaemonOptions {
  std::string server = "127.0.0.1:7070";
  std::string name = "worker";
  uint32_t slots = 4;
  uint32_t max_reconcilers = 64;
  uint32_t acquire_wait_ms = 20'000;
  // Self-fencing: stop a handler when no heartbeat succeeded for this share
  // of the lease TTL (the server expires it at 100%).
  double fence_fraction = 0.8;
  int64_t drain_timeout_ms = 30'000;
};

class Daemon {
 public:
  Daemon(DaemonOptions options, const Registry* registry);
  ~Daemon();

  // Runs until SIGTERM/SIGINT drains it; returns the process exit code.
  int Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::worker
