// What the worker holds and every part of the daemon reads: its registration
// (id, lease TTL), the subtask leases it runs and the task leases it
// reconciles, its drain flags, and the wake-ups between the parts. One
// WorkerState per daemon, shared by reference; no part owns another's data,
// they meet here.
//
// Thread-safety: loop thread only, except RunningSubtask::progress and
// ::stop, which a handler reads and writes from the pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include <google/protobuf/repeated_ptr_field.h>

#include "common/clock.h"
#include "worker/daemon.h"
#include "worker/server_api.h"
#include "worker/signal.h"

namespace orchard::worker {

// A WaitTask answer (and a Report's snapshot) carries the results of a task
// this small, so its reduce needs no further call.
inline constexpr uint32_t kWaitResultsUpTo = 1000;

// A subtask lease: (task id, subtask index).
using SubtaskKey = std::pair<std::string, int64_t>;

struct RunningSubtask {
  pb::LeaseRef lease;
  std::stop_source stop;
  std::atomic<uint64_t> progress{0};
  bool lost = false;            // the lease is gone: never report
  bool stop_requested = false;  // the subtask is Terminating: report Stopped
  bool handler_done = false;
};

using Subtasks = google::protobuf::RepeatedPtrField<pb::Subtask>;

struct ReconciledTask {
  explicit ReconciledTask(asio::any_io_executor ex) : snapshot_signal(ex) {}
  pb::LeaseRef lease;
  bool lost = false;
  // The task as the newest answer to this worker's own Report saw it, for
  // a reconciler whose active slices all run here (Reconciler::LocalWait).
  std::optional<pb::WaitTaskResponse> snapshot;
  Signal snapshot_signal;
  // Every committed result, from the last WaitTask answer, valid while
  // the task is at results_version (a small task's reduce needs no
  // further call).
  std::optional<Subtasks> results;
  uint64_t results_version = 0;
};

struct WorkerState {
  WorkerState(asio::any_io_executor ex, const Clock* clock, DaemonOptions options)
      : executor(ex),
        clock(clock),
        options(std::move(options)),
        slot_signal(ex),
        report_signal(ex),
        task_signal(ex),
        transition_signal(ex) {}

  int64_t Now() const { return clock->NowMs(); }

  // True while some subtask or task lease is still ours.
  bool HoldsLeases() const;
  // The server forgot us (or we fenced ourselves): every lease is void.
  void DropAllLeases(const char* why);
  // The server says this one lease is no longer ours (subtask_index < 0: a
  // task's reconcile lease).
  void LoseLease(const pb::LeaseRef& l);

  asio::any_io_executor executor;
  const Clock* clock;
  const DaemonOptions options;

  std::string worker_id;  // empty while (re)registering
  int64_t lease_ttl_ms = 10'000;
  int64_t heartbeat_ms = 3'000;
  int64_t last_ok_heartbeat_sent = 0;
  bool draining = false;
  bool stopped = false;
  uint32_t busy = 0;  // handlers running now (at most options.slots)

  std::map<SubtaskKey, std::shared_ptr<RunningSubtask>> subtasks;
  std::map<std::string, std::shared_ptr<ReconciledTask>> tasks;

  Signal slot_signal;        // a subtask slot (or room promised to a plan) is free
  Signal report_signal;      // a subtask report waits to be sent
  Signal task_signal;        // a reconcile slot is free, or a task lease was lost
  Signal transition_signal;  // a task transition waits to be sent
};

}  // namespace orchard::worker
