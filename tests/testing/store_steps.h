// The steps store tests take over and over (submit, plan, register, lease,
// report, read back), written once against the Store interface so the
// SQLite tests and the Store contract suite share them. A fixture mixes
// StoreSteps in and says which store it drives by overriding store().
//
// The checks at the bottom read only through the Store interface, so they
// hold for any implementation. Steps throw (see ok.h) when a call that
// must succeed fails; GoogleTest reports that as the test's failure.
// Thread-safety: as the store's; the steps keep no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lifecycle/task.h"
#include "server/store/store.h"
#include "tests/testing/clock.h"

namespace orchard::testing {

class StoreSteps {
 public:
  virtual ~StoreSteps() = default;

 protected:
  using Task = ::orchard::v1::Task;
  using TaskSpec = ::orchard::v1::TaskSpec;

  virtual store::Store& store() = 0;

  // A new task in Preparing.
  Task Submit(const TaskSpec& spec, int64_t now = kNow);
  // A client's transition (no lease, any version).
  absl::StatusOr<Task> Transition(const std::string& id, lifecycle::TaskEvent e,
                                  int64_t now = kNow, const std::string& reason = "");
  // Submits and plans (uniformly) a task; returns it Running.
  Task Start(const TaskSpec& spec, int64_t now = kNow);
  // A registered worker of `kinds`, 8 slots.
  std::string Worker(const std::vector<std::string>& kinds, int64_t now = kNow);
  store::AcquireResult Acquire(const std::string& w, uint32_t n, int64_t now = kNow,
                               uint32_t tasks = 0);
  // One report; its own status (the call itself must succeed).
  absl::Status ReportOne(const std::string& w, const ::orchard::v1::SubtaskReport& r,
                         int64_t now = kNow);
  Task Get(const std::string& id);
  std::vector<::orchard::v1::Subtask> Subtasks(const std::string& id);
  // index: -1 the task's own rows, a subtask's, or nullopt for all.
  std::vector<::orchard::v1::HistoryEntry> History(const std::string& id,
                                                   std::optional<int64_t> index);

  // Every counter of the task equals what its subtasks say (ListSubtasks).
  void ExpectCountersMatchSubtasks(const std::string& id);
  // Every subtask history row is an edge of the subtask table, and each
  // subtask's rows chain (one row's target is the next row's source).
  void ExpectSubtaskHistoryIsLegal(const std::string& id);
};

}  // namespace orchard::testing
