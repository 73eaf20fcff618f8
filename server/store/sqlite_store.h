// SqliteStore: the Store on one SQLite file in WAL mode.
//
// Writes go through one GroupCommitWriter (one write connection, one thread,
// many callers' writes per transaction, a savepoint per write); reads go to a
// small pool of read connections, which WAL lets read a committed snapshot
// while the writer writes. The operations are split over a few files:
// sqlite_store.cc (open, reads, workers), sqlite_store_tasks.cc (submit, task
// transitions, stop), sqlite_store_leases.cc (acquire, heartbeat, report,
// expiry). Shared pieces: schema.cc (tables, indexes, user_version),
// writer.cc (group commit), rows.cc (row codecs, the checked subtask
// transition, counters, history), sqlite_db.cc (RAII over the C API).
//
// Thread-safety: every method may be called from any thread at once, as the
// Store interface requires.
#pragma once

#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "server/store/sqlite_db.h"
#include "server/store/store.h"
#include "server/store/writer.h"

namespace orchard::store {

class SqliteStore final : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

  absl::StatusOr<SubmitResult> CreateTask(const pb::TaskSpec& spec, int64_t now_ms) override;
  absl::StatusOr<pb::Task> GetTask(const std::string& id) override;
  absl::StatusOr<pb::WaitTaskResponse> TaskSnapshot(const std::string& id,
                                                    uint32_t results_up_to) override;
  absl::StatusOr<TaskPage> ListTasks(const TaskFilter& filter) override;
  absl::StatusOr<std::vector<pb::Task>> TasksChangedAfter(uint64_t after_revision,
                                                          const std::string& task_id,
                                                          uint32_t limit) override;
  absl::StatusOr<SubtaskPage> ListSubtasks(const SubtaskFilter& filter) override;
  absl::StatusOr<HistoryPage> GetHistory(const HistoryFilter& filter) override;
  absl::StatusOr<pb::Task> TransitionTask(const TaskTransition& t, int64_t now_ms) override;
  absl::StatusOr<StopResult> StopSubtasks(const std::string& task_id,
                                          const std::string& lease_worker, uint64_t lease_epoch,
                                          const std::string& reason, int64_t now_ms,
                                          const std::string& actor = {}) override;

  absl::StatusOr<std::string> RegisterWorker(const std::string& name,
                                             const std::vector<std::string>& kinds, uint32_t slots,
                                             int64_t now_ms) override;
  absl::Status DeregisterWorker(const std::string& worker_id, int64_t now_ms) override;
  absl::StatusOr<std::vector<pb::WorkerInfo>> ListWorkers(int64_t now_ms,
                                                          int64_t alive_window_ms) override;
  absl::StatusOr<HeartbeatResult> Heartbeat(const pb::HeartbeatRequest& req, int64_t now_ms,
                                            int64_t ttl_ms) override;
  absl::StatusOr<AcquireResult> Acquire(const std::string& worker_id, uint32_t max_subtasks,
                                        uint32_t max_tasks, int64_t now_ms,
                                        int64_t ttl_ms) override;
  absl::StatusOr<std::vector<absl::Status>> Report(const std::string& worker_id,
                                                   const std::vector<pb::SubtaskReport>& reports,
                                                   int64_t now_ms) override;
  absl::Status ReleaseTask(const std::string& worker_id, const std::string& task_id,
                           uint64_t epoch) override;
  std::vector<absl::StatusOr<pb::Task>> TransitionTasks(const std::vector<TaskTransition>& ts,
                                                        int64_t now_ms) override;
  // The writer's completion thread runs `done` right after the group commit.
  void CreateTaskAsync(const pb::TaskSpec& spec, int64_t now_ms,
                       Done<absl::StatusOr<SubmitResult>> done) override;
  void TransitionTasksAsync(std::vector<TaskTransition> ts, int64_t now_ms,
                            Done<std::vector<absl::StatusOr<TransitionResult>>> done) override;
  void AcquireAsync(std::string worker_id, uint32_t max_subtasks, uint32_t max_tasks,
                    int64_t now_ms, int64_t ttl_ms,
                    Done<absl::StatusOr<AcquireResult>> done) override;
  // Reads the first kWriterSnapshots snapshots on the write connection, in
  // the reports' transaction: its cache is warm, while a reader's starts
  // cold after every commit. A snapshot with more than kWriterSnapshotResults
  // results to send is left to the caller (it would hold up the commit).
  static constexpr size_t kWriterSnapshots = 64;
  // Waiting subtasks StopSubtasks moves per write (see there).
  static constexpr uint64_t kStopBatch = 2'000;
  static constexpr uint32_t kWriterSnapshotResults = 64;
  void ReportAsync(std::string worker_id, std::vector<pb::SubtaskReport> reports, int64_t now_ms,
                   SnapshotAsk ask, Done<absl::StatusOr<ReportResult>> done) override;
  absl::StatusOr<ExpireResult> ExpireLeases(int64_t now_ms, int64_t worker_ttl_ms) override;
  absl::StatusOr<std::vector<pb::Task>> UnreconciledTasks(int64_t now_ms, int64_t alive_window_ms,
                                                           const std::string& after_id,
                                                           uint32_t limit) override;
  absl::StatusOr<std::vector<std::string>> LiveKinds(int64_t now_ms,
                                                     int64_t alive_window_ms) override;
  absl::Status Ping() override;
  absl::StatusOr<StateCounts> CountByState() override;
  absl::StatusOr<SubtaskGrid> GetSubtaskGrid(const std::string& task_id,
                                             uint32_t max_cells) override;

  // ---- test hooks ----
  // The next `n` commits fail (and roll back), as a full disk would make them.
  void FailNextCommitsForTesting(int n);
  // Runs `sql` on the write connection inside a write batch (e.g. PRAGMA
  // max_page_count to simulate a full disk).
  absl::Status ExecForTesting(const std::string& sql);

 private:
  SqliteStore(std::unique_ptr<sqlite::GroupCommitWriter> writer,
              std::unique_ptr<sqlite::ReaderPool> readers);

  // Runs `op` on the writer thread in the next group commit; blocks until
  // it is durable.
  absl::Status Write(sqlite::WriteOp op);
  // Starts an async store call and blocks until its `done` ran: the
  // blocking forms of the hot writes, on their async forms.
  template <typename T>
  static T Await(const std::function<void(Done<T>)>& start) {
    std::promise<T> result;
    start([&result](T value) { result.set_value(std::move(value)); });
    return result.get_future().get();
  }
  // Runs one write op without blocking: `done` gets the op's error, or
  // `*out` (filled by the op) once it committed. `out` may share ownership of
  // what the op uses (an aliasing pointer into its state).
  template <typename T>
  void WriteAsync(std::shared_ptr<T> out, sqlite::WriteOp op, Done<absl::StatusOr<T>> done) {
    std::vector<sqlite::WriteOp> ops;
    ops.push_back(std::move(op));
    writer_->RunAllAsync(std::move(ops), [out = std::move(out),
                                          done = std::move(done)](std::vector<absl::Status> s) {
      if (!s[0].ok()) {
        done(std::move(s[0]));
      } else {
        done(std::move(*out));
      }
    });
  }
  // Runs `fn` on a read connection; converts exceptions into INTERNAL.
  template <typename R>
  R Read(const std::function<R(sqlite::Connection&)>& fn);

  std::unique_ptr<sqlite::GroupCommitWriter> writer_;
  std::unique_ptr<sqlite::ReaderPool> readers_;
};

template <typename R>
R SqliteStore::Read(const std::function<R(sqlite::Connection&)>& fn) {
  try {
    sqlite::ReaderPool::Lease db = readers_->Borrow();
    return fn(*db);
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("store: read failed: ") + e.what());
  }
}

}  // namespace orchard::store
