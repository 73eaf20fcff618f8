// The one place tests build what the Store's worker-facing methods take
// (reports, heartbeats) and read what TaskSnapshot answers. These are wire
// messages today; when the Store speaks its own types, only this file
// changes, not the tests that call it. Header-only; no threads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace orchard::testing {

namespace pb = ::orchard::v1;

// ---- reports: one finished attempt of a leased subtask ----

inline pb::SubtaskReport Succeeded(const pb::LeaseRef& l, const std::string& result = "{}") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_succeeded_result_json(result);
  return r;
}
inline pb::SubtaskReport Failed(const pb::LeaseRef& l, const std::string& error = "boom") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_failed_error(error);
  return r;
}
inline pb::SubtaskReport FailedPermanently(const pb::LeaseRef& l,
                                           const std::string& error = "bad") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_failed_permanently_error(error);
  return r;
}
inline pb::SubtaskReport Stopped(const pb::LeaseRef& l) {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_stopped(true);
  return r;
}
// A report that says nothing happened: the store must refuse it.
inline pb::SubtaskReport NoOutcome(const pb::LeaseRef& l) {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  return r;
}

// A reference to a task's reconcile lease (subtask_index -1).
inline pb::LeaseRef TaskLeaseRef(const std::string& task_id, uint64_t epoch) {
  pb::LeaseRef r;
  r.set_task_id(task_id);
  r.set_subtask_index(-1);
  r.set_epoch(epoch);
  return r;
}

// ---- heartbeats ----

struct HeartbeatArgs {
  std::string worker_id;
  uint32_t slots_in_use = 0;
  bool draining = false;
  std::vector<std::pair<pb::LeaseRef, uint64_t>> subtasks;  // lease, progress
  std::vector<pb::LeaseRef> tasks;                           // reconcile leases
};

inline absl::StatusOr<store::HeartbeatResult> SendHeartbeat(store::Store& s,
                                                            const HeartbeatArgs& a,
                                                            int64_t now_ms, int64_t ttl_ms) {
  pb::HeartbeatRequest req;
  req.set_worker_id(a.worker_id);
  req.set_slots_in_use(a.slots_in_use);
  req.set_draining(a.draining);
  for (const auto& [lease, progress] : a.subtasks) {
    auto* p = req.add_subtasks();
    *p->mutable_lease() = lease;
    p->set_progress(progress);
  }
  for (const auto& t : a.tasks) *req.add_tasks() = t;
  return s.Heartbeat(req, now_ms, ttl_ms);
}

// ---- snapshots (TaskSnapshot, ReportResult::snapshots) ----

using Snapshot = pb::WaitTaskResponse;

inline bool SnapshotHasTask(const Snapshot& s) { return s.has_task(); }
inline const pb::Task& SnapshotTask(const Snapshot& s) { return s.task(); }
inline bool SnapshotComplete(const Snapshot& s) { return s.results_complete(); }
// The results as (subtask index, result JSON), by index.
inline std::vector<std::pair<uint64_t, std::string>> SnapshotResults(const Snapshot& s) {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (const auto& r : s.results()) out.emplace_back(r.index(), r.result_json());
  return out;
}

}  // namespace orchard::testing
