// Worker names for what operators read: history's actor, a task's reconciler
// and a subtask's worker are stored as worker ids (w-...), and people know
// their workers by name (node-1). Filled into the answers when they are read
// (never stored), from the workers table, read at most once a second and
// again on an id not seen yet (a worker that just registered).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "server/store/store.h"

namespace orchard::server {

class WorkerNames {
 public:
  WorkerNames(store::Store* store, const Clock* clock) : store_(store), clock_(clock) {}

  // The name of worker `id`, "" when it is not a known worker id.
  std::string Name(const std::string& id);

  void Fill(orchard::v1::Task& task);
  void Fill(orchard::v1::Subtask& subtask);
  void Fill(orchard::v1::HistoryEntry& entry);

 private:
  store::Store* store_;
  const Clock* clock_;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> names_;
  int64_t read_at_ = -1;
};

}  // namespace orchard::server
