// The group-commit writer: the one thread that owns the write connection and
// runs every write of the store.
//
// Callers enqueue a write operation (a closure run against the write
// connection) and block until it is durable. The thread takes up to max_batch
// queued operations, opens one transaction (BEGIN IMMEDIATE), runs each
// operation inside its own SAVEPOINT (an operation that fails is rolled back
// to its savepoint, so the others still commit), writes the global revision
// counter, COMMITs once, and only then completes every operation. Many
// callers' writes thus share one commit (one WAL append and, with synchronous
// = full, one fsync).
//
// When the COMMIT fails (disk full, read-only file, I/O error) the transaction
// is rolled back and every operation of the batch that had succeeded gets
// UNAVAILABLE naming the cause; the next batch starts afresh, so the store
// works again once the cause is gone. When an operation's error makes SQLite
// roll back the whole transaction itself (SQLITE_FULL, I/O errors), the
// operations that ran before it in that transaction get UNAVAILABLE and the
// rest of the batch runs in a new transaction.
//
// Callers are answered on a third thread, the completion thread, batch by
// batch in commit order, and the CommitObserver after each batch's callers:
// answering (a gRPC reply each, with its syscalls) took about a fifth of the
// writer's time, which the next transaction now overlaps.
//
// Checkpoints (copying the WAL back into the database file, with its fsyncs)
// run on a second thread and connection, so they never delay a commit; only
// when the WAL grows past kInlineCheckpointPages (the background checkpoint
// cannot catch up with the writes) does the writer checkpoint itself.
//
// Thread-safety: Run() may be called from any thread (not from inside an
// operation). Operations run one at a time on the writer thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/store/sqlite_db.h"

namespace orchard::store::sqlite {

// What an operation gets: the write connection inside an open transaction
// (and inside the operation's savepoint), the revision this operation writes
// (one greater than every revision committed before it), and the writer's
// random generator (for retry jitter).
struct WriteCtx {
  Connection& db;
  uint64_t revision;
  std::mt19937_64& rng;
};

using WriteOp = std::function<absl::Status(WriteCtx&)>;

class GroupCommitWriter {
 public:
  // WAL sizes (pages) that trigger a background and an inline checkpoint.
  static constexpr int kCheckpointPages = 1000;
  static constexpr int kInlineCheckpointPages = 50'000;

  // `committed_revision`: the meta 'revision' value in the database.
  // `checkpoint_db`: a second connection to the same file for background
  // checkpoints (null: SQLite's automatic checkpoints on the writer).
  GroupCommitWriter(std::unique_ptr<Connection> db, std::unique_ptr<Connection> checkpoint_db,
                    uint64_t committed_revision, int max_batch);
  ~GroupCommitWriter();  // finishes the queued operations, then stops

  // Runs `op` in the next batch and blocks until that batch committed (OK or
  // the op's own error) or failed (UNAVAILABLE).
  absl::Status Run(WriteOp op);
  // Runs every op of `ops` (each in its own savepoint, as Run would) in the
  // next batches, queued together so that they share commits; blocks until
  // all are done. Returns each op's status, in order.
  std::vector<absl::Status> RunAll(std::vector<WriteOp> ops);
  // RunAll without blocking: `done` gets each op's status, in order, on the
  // completion thread once the last of them committed or failed. It must
  // not block (it may queue more writes): it delays every later answer.
  using AllDone = std::function<void(std::vector<absl::Status>)>;
  void RunAllAsync(std::vector<WriteOp> ops, AllDone done);

  // Test hook: the next `n` COMMITs fail (through SQLite's commit hook, so the
  // real rollback path runs).
  void FailNextCommitsForTesting(int n) { fail_commits_.store(n); }

 private:
  struct Pending {
    WriteOp op;
    std::function<void(absl::Status)> finish;  // called once, on the completion thread
    absl::Status status;
    std::shared_ptr<void> owner;  // keeps an async op's memory alive until it finished
  };

  // Queues the ops (false when stopping: nothing was queued).
  bool Enqueue(std::vector<Pending>& pending);

  void Loop();
  // Answers each finished batch's callers, then the observer, in commit
  // order, so the writer starts its next transaction meanwhile.
  void CompleteLoop();
  void RunBatch(std::vector<Pending*>& batch);
  // Runs batch[i..] in one transaction; returns the index after the last op
  // it handled (all of them, unless SQLite dropped the transaction).
  size_t RunTransaction(std::vector<Pending*>& batch, size_t first);
  absl::Status Step(std::string_view sql);  // BEGIN/SAVEPOINT/... by cached statement
  static int CommitHook(void* self);
  static int WalHook(void* self, sqlite3* db, const char* name, int pages);
  void CheckpointLoop();

  std::unique_ptr<Connection> db_;
  const size_t max_batch_;
  std::mt19937_64 rng_;
  uint64_t committed_revision_;  // writer thread only
  std::atomic<int> fail_commits_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  bool stopping_ = false;
  std::thread thread_;

  // Batches committed (or failed), waiting for CompleteLoop.
  struct Finished;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<std::unique_ptr<Finished>> done_;
  bool done_stopping_ = false;
  std::thread completer_;

  std::unique_ptr<Connection> checkpoint_db_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stopping_ = false;
  std::thread checkpoint_thread_;
};

}  // namespace orchard::store::sqlite
