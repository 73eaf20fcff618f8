#include "server/store/faulty_store.h"

#include <utility>

namespace orchard::store {

bool FaultyStore::IsWrite(Op op) {
  switch (op) {
    case Op::kCreateTask:
    case Op::kTransitionTask:
    case Op::kTransitionTasks:
    case Op::kStopSubtasks:
    case Op::kRegisterWorker:
    case Op::kDeregisterWorker:
    case Op::kHeartbeat:
    case Op::kAcquire:
    case Op::kReport:
    case Op::kReleaseTask:
    case Op::kExpireLeases:
    case Op::kPing:
      return true;
    case Op::kGetTask:
    case Op::kTaskSnapshot:
    case Op::kListTasks:
    case Op::kTasksChangedAfter:
    case Op::kListSubtasks:
    case Op::kGetHistory:
    case Op::kListWorkers:
    case Op::kLiveKinds:
    case Op::kUnreconciledTasks:
    case Op::kCountByState:
    case Op::kGetSubtaskGrid:
    case Op::kAnyWrite:
    case Op::kAny:
      return false;
  }
  return false;
}

const char* FaultyStore::OpName(Op op) {
  switch (op) {
    case Op::kCreateTask: return "CreateTask";
    case Op::kGetTask: return "GetTask";
    case Op::kTaskSnapshot: return "TaskSnapshot";
    case Op::kListTasks: return "ListTasks";
    case Op::kTasksChangedAfter: return "TasksChangedAfter";
    case Op::kListSubtasks: return "ListSubtasks";
    case Op::kGetHistory: return "GetHistory";
    case Op::kTransitionTask: return "TransitionTask";
    case Op::kTransitionTasks: return "TransitionTasks";
    case Op::kStopSubtasks: return "StopSubtasks";
    case Op::kRegisterWorker: return "RegisterWorker";
    case Op::kDeregisterWorker: return "DeregisterWorker";
    case Op::kListWorkers: return "ListWorkers";
    case Op::kHeartbeat: return "Heartbeat";
    case Op::kAcquire: return "Acquire";
    case Op::kReport: return "Report";
    case Op::kReleaseTask: return "ReleaseTask";
    case Op::kExpireLeases: return "ExpireLeases";
    case Op::kLiveKinds: return "LiveKinds";
    case Op::kUnreconciledTasks: return "UnreconciledTasks";
    case Op::kPing: return "Ping";
    case Op::kCountByState: return "CountByState";
    case Op::kGetSubtaskGrid: return "GetSubtaskGrid";
    case Op::kAnyWrite: return "any write";
    case Op::kAny: return "any call";
  }
  return "?";
}

void FaultyStore::Inject(Fault f) {
  std::lock_guard lock(mu_);
  const int skip = f.nth > 1 ? f.nth - 1 : 0;
  if (f.times == 0) return;
  faults_.push_back(Armed{.fault = std::move(f), .skip = skip});
}

void FaultyStore::Clear() {
  std::lock_guard lock(mu_);
  faults_.clear();
}

int FaultyStore::Calls(Op op) const {
  std::lock_guard lock(mu_);
  if (op == Op::kAnyWrite || op == Op::kAny) {
    int n = 0;
    for (int i = 0; i < static_cast<int>(Op::kAnyWrite); ++i) {
      if (op == Op::kAny || IsWrite(static_cast<Op>(i))) n += calls_[i];
    }
    return n;
  }
  return calls_[static_cast<int>(op)];
}

int FaultyStore::Injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

FaultyStore::Verdict FaultyStore::Check(Op op) {
  std::lock_guard lock(mu_);
  ++calls_[static_cast<int>(op)];
  Verdict v;
  for (size_t i = 0; i < faults_.size();) {
    Armed& a = faults_[i];
    const bool matches = a.fault.op == op || a.fault.op == Op::kAny ||
                         (a.fault.op == Op::kAnyWrite && IsWrite(op));
    if (!matches) {
      ++i;
      continue;
    }
    // Every armed fault counts the calls it matches, whether or not
    // another one fires on this call, so "the nth write" means the nth.
    if (a.skip > 0) {
      --a.skip;
      ++i;
      continue;
    }
    if (!v.status.ok()) {
      ++i;  // one fault per call; this one waits for the next match
      continue;
    }
    v.status = a.fault.status.ok() ? absl::UnavailableError("faulty store: injected fault")
                                   : a.fault.status;
    v.when = a.fault.when;
    ++injected_;
    if (a.fault.times != kAlways && --a.fault.times == 0) {
      faults_.erase(faults_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  return v;
}

template <typename R, typename F>
R FaultyStore::Run(Op op, F&& call) {
  const Verdict v = Check(op);
  if (v.refuse()) return R(v.status);
  R r = call();
  if (v.replace()) return R(v.status);
  return r;
}

absl::StatusOr<SubmitResult> FaultyStore::CreateTask(const pb::TaskSpec& spec, int64_t now_ms) {
  return Run<absl::StatusOr<SubmitResult>>(Op::kCreateTask,
                                           [&] { return base_->CreateTask(spec, now_ms); });
}

absl::StatusOr<pb::Task> FaultyStore::GetTask(const std::string& id) {
  return Run<absl::StatusOr<pb::Task>>(Op::kGetTask, [&] { return base_->GetTask(id); });
}

absl::StatusOr<pb::WaitTaskResponse> FaultyStore::TaskSnapshot(const std::string& id,
                                                               uint32_t results_up_to) {
  return Run<absl::StatusOr<pb::WaitTaskResponse>>(
      Op::kTaskSnapshot, [&] { return base_->TaskSnapshot(id, results_up_to); });
}

absl::StatusOr<TaskPage> FaultyStore::ListTasks(const TaskFilter& filter) {
  return Run<absl::StatusOr<TaskPage>>(Op::kListTasks, [&] { return base_->ListTasks(filter); });
}

absl::StatusOr<std::vector<pb::Task>> FaultyStore::TasksChangedAfter(uint64_t after_revision,
                                                                     const std::string& task_id,
                                                                     uint32_t limit) {
  return Run<absl::StatusOr<std::vector<pb::Task>>>(Op::kTasksChangedAfter, [&] {
    return base_->TasksChangedAfter(after_revision, task_id, limit);
  });
}

absl::StatusOr<SubtaskPage> FaultyStore::ListSubtasks(const SubtaskFilter& filter) {
  return Run<absl::StatusOr<SubtaskPage>>(Op::kListSubtasks,
                                          [&] { return base_->ListSubtasks(filter); });
}

absl::StatusOr<HistoryPage> FaultyStore::GetHistory(const HistoryFilter& filter) {
  return Run<absl::StatusOr<HistoryPage>>(Op::kGetHistory,
                                          [&] { return base_->GetHistory(filter); });
}

absl::StatusOr<pb::Task> FaultyStore::TransitionTask(const TaskTransition& t, int64_t now_ms) {
  return Run<absl::StatusOr<pb::Task>>(Op::kTransitionTask,
                                       [&] { return base_->TransitionTask(t, now_ms); });
}

std::vector<absl::StatusOr<pb::Task>> FaultyStore::TransitionTasks(
    const std::vector<TaskTransition>& ts, int64_t now_ms) {
  const Verdict v = Check(Op::kTransitionTasks);
  std::vector<absl::StatusOr<pb::Task>> out;
  if (!v.refuse()) out = base_->TransitionTasks(ts, now_ms);
  if (v.refuse() || v.replace()) out.assign(ts.size(), v.status);
  return out;
}

void FaultyStore::CreateTaskAsync(const pb::TaskSpec& spec, int64_t now_ms,
                                  Done<absl::StatusOr<SubmitResult>> done) {
  const Verdict v = Check(Op::kCreateTask);
  if (v.refuse()) return done(v.status);
  if (!v.replace()) return base_->CreateTaskAsync(spec, now_ms, std::move(done));
  base_->CreateTaskAsync(spec, now_ms, [s = v.status, done = std::move(done)](auto) { done(s); });
}

void FaultyStore::TransitionTasksAsync(
    std::vector<TaskTransition> ts, int64_t now_ms,
    Done<std::vector<absl::StatusOr<TransitionResult>>> done) {
  const Verdict v = Check(Op::kTransitionTasks);
  const size_t n = ts.size();
  auto failed = [n](const absl::Status& s) {
    return std::vector<absl::StatusOr<TransitionResult>>(n, s);
  };
  if (v.refuse()) return done(failed(v.status));
  if (!v.replace()) return base_->TransitionTasksAsync(std::move(ts), now_ms, std::move(done));
  base_->TransitionTasksAsync(std::move(ts), now_ms,
                              [s = v.status, failed, done = std::move(done)](auto) {
                                done(failed(s));
                              });
}

void FaultyStore::AcquireAsync(std::string worker_id, uint32_t max_subtasks, uint32_t max_tasks,
                               int64_t now_ms, int64_t ttl_ms,
                               Done<absl::StatusOr<AcquireResult>> done) {
  const Verdict v = Check(Op::kAcquire);
  if (v.refuse()) return done(v.status);
  if (!v.replace()) {
    return base_->AcquireAsync(std::move(worker_id), max_subtasks, max_tasks, now_ms, ttl_ms,
                               std::move(done));
  }
  base_->AcquireAsync(std::move(worker_id), max_subtasks, max_tasks, now_ms, ttl_ms,
                      [s = v.status, done = std::move(done)](auto) { done(s); });
}

void FaultyStore::ReportAsync(std::string worker_id, std::vector<pb::SubtaskReport> reports,
                              int64_t now_ms, SnapshotAsk ask,
                              Done<absl::StatusOr<ReportResult>> done) {
  const Verdict v = Check(Op::kReport);
  if (v.refuse()) return done(v.status);
  if (!v.replace()) {
    return base_->ReportAsync(std::move(worker_id), std::move(reports), now_ms, std::move(ask),
                              std::move(done));
  }
  base_->ReportAsync(std::move(worker_id), std::move(reports), now_ms, std::move(ask),
                     [s = v.status, done = std::move(done)](auto) { done(s); });
}

absl::StatusOr<StopResult> FaultyStore::StopSubtasks(const std::string& task_id,
                                                     const std::string& lease_worker,
                                                     uint64_t lease_epoch,
                                                     const std::string& reason, int64_t now_ms,
                                                     const std::string& actor) {
  return Run<absl::StatusOr<StopResult>>(Op::kStopSubtasks, [&] {
    return base_->StopSubtasks(task_id, lease_worker, lease_epoch, reason, now_ms, actor);
  });
}

absl::StatusOr<std::string> FaultyStore::RegisterWorker(const std::string& name,
                                                        const std::vector<std::string>& kinds,
                                                        uint32_t slots, int64_t now_ms) {
  return Run<absl::StatusOr<std::string>>(
      Op::kRegisterWorker, [&] { return base_->RegisterWorker(name, kinds, slots, now_ms); });
}

absl::Status FaultyStore::DeregisterWorker(const std::string& worker_id, int64_t now_ms) {
  return Run<absl::Status>(Op::kDeregisterWorker,
                           [&] { return base_->DeregisterWorker(worker_id, now_ms); });
}

absl::StatusOr<std::vector<pb::WorkerInfo>> FaultyStore::ListWorkers(int64_t now_ms,
                                                                     int64_t alive_window_ms) {
  return Run<absl::StatusOr<std::vector<pb::WorkerInfo>>>(
      Op::kListWorkers, [&] { return base_->ListWorkers(now_ms, alive_window_ms); });
}

absl::StatusOr<HeartbeatResult> FaultyStore::Heartbeat(const pb::HeartbeatRequest& req,
                                                       int64_t now_ms, int64_t ttl_ms) {
  return Run<absl::StatusOr<HeartbeatResult>>(
      Op::kHeartbeat, [&] { return base_->Heartbeat(req, now_ms, ttl_ms); });
}

absl::StatusOr<AcquireResult> FaultyStore::Acquire(const std::string& worker_id,
                                                   uint32_t max_subtasks, uint32_t max_tasks,
                                                   int64_t now_ms, int64_t ttl_ms) {
  return Run<absl::StatusOr<AcquireResult>>(Op::kAcquire, [&] {
    return base_->Acquire(worker_id, max_subtasks, max_tasks, now_ms, ttl_ms);
  });
}

absl::StatusOr<std::vector<absl::Status>> FaultyStore::Report(
    const std::string& worker_id, const std::vector<pb::SubtaskReport>& reports,
    int64_t now_ms) {
  return Run<absl::StatusOr<std::vector<absl::Status>>>(
      Op::kReport, [&] { return base_->Report(worker_id, reports, now_ms); });
}

absl::Status FaultyStore::ReleaseTask(const std::string& worker_id, const std::string& task_id,
                                      uint64_t epoch) {
  return Run<absl::Status>(Op::kReleaseTask,
                           [&] { return base_->ReleaseTask(worker_id, task_id, epoch); });
}

absl::StatusOr<ExpireResult> FaultyStore::ExpireLeases(int64_t now_ms, int64_t worker_ttl_ms) {
  return Run<absl::StatusOr<ExpireResult>>(
      Op::kExpireLeases, [&] { return base_->ExpireLeases(now_ms, worker_ttl_ms); });
}

absl::StatusOr<std::vector<std::string>> FaultyStore::LiveKinds(int64_t now_ms,
                                                                int64_t alive_window_ms) {
  return Run<absl::StatusOr<std::vector<std::string>>>(
      Op::kLiveKinds, [&] { return base_->LiveKinds(now_ms, alive_window_ms); });
}

absl::StatusOr<std::vector<pb::Task>> FaultyStore::UnreconciledTasks(int64_t now_ms,
                                                                     int64_t alive_window_ms,
                                                                     const std::string& after_id,
                                                                     uint32_t limit) {
  return Run<absl::StatusOr<std::vector<pb::Task>>>(Op::kUnreconciledTasks, [&] {
    return base_->UnreconciledTasks(now_ms, alive_window_ms, after_id, limit);
  });
}

absl::Status FaultyStore::Ping() {
  return Run<absl::Status>(Op::kPing, [&] { return base_->Ping(); });
}

absl::StatusOr<StateCounts> FaultyStore::CountByState() {
  return Run<absl::StatusOr<StateCounts>>(Op::kCountByState,
                                          [&] { return base_->CountByState(); });
}

absl::StatusOr<SubtaskGrid> FaultyStore::GetSubtaskGrid(const std::string& task_id,
                                                        uint32_t max_cells) {
  return Run<absl::StatusOr<SubtaskGrid>>(
      Op::kGetSubtaskGrid, [&] { return base_->GetSubtaskGrid(task_id, max_cells); });
}

}  // namespace orchard::store
