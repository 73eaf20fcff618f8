// The group-commit writer thread. Thread-safety: see writer.h.
//
// It also reports what committed to the process's CommitObserver
// (observer.h): a preupdate hook on the write connection sees every row
// inserted into `history` (set-wise INSERT ... SELECT included), notes are
// kept per operation and per transaction in thread_locals of the writer
// thread, dropped with a savepoint rollback or a failed COMMIT, and handed
// over after the batch's callers were answered.
//
// The preupdate hook API is declared only with this macro; Debian's
// libsqlite3 is built with SQLITE_ENABLE_PREUPDATE_HOOK (and SESSION, which
// needs it).
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include "server/store/writer.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <pthread.h>
#include <tuple>

#include "common/strcat.h"
#include "server/store/observer.h"

namespace orchard::store {

namespace {
std::atomic<CommitObserver*> g_observer{nullptr};
}  // namespace

void SetCommitObserver(CommitObserver* observer) { g_observer.store(observer); }

}  // namespace orchard::store

namespace orchard::store::sqlite {

namespace {

// Notes of one operation or one transaction (writer thread only).
struct Notes {
  std::vector<TransitionNote> detail;
  // (task, subtask?, from, to, event) -> count, past kTransitionDetailCap.
  std::map<std::tuple<std::string, bool, int, int, std::string>, uint64_t> more;

  void clear() {
    detail.clear();
    more.clear();
  }
  void MergeInto(Notes& to) {
    for (auto& n : detail) to.detail.push_back(std::move(n));
    for (auto& [k, c] : more) to.more[k] += c;
    clear();
  }
};
thread_local Notes t_op;     // the running operation's
thread_local Notes t_txn;    // the open transaction's, from operations that succeeded
thread_local Notes t_batch;  // committed, not yet reported
thread_local std::vector<CommitNote> t_commits;

std::string ColumnText(sqlite3* db, int col) {
  sqlite3_value* v = nullptr;
  if (sqlite3_preupdate_new(db, col, &v) != SQLITE_OK || v == nullptr) return "";
  const unsigned char* t = sqlite3_value_text(v);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t),
                                                    static_cast<size_t>(sqlite3_value_bytes(v)));
}
int64_t ColumnInt(sqlite3* db, int col) {
  sqlite3_value* v = nullptr;
  if (sqlite3_preupdate_new(db, col, &v) != SQLITE_OK || v == nullptr) return 0;
  return sqlite3_value_int64(v);
}

// history's columns: id, task_id, subtask_index, from_state, to_state, event,
// reason, actor, time_ms, version, attempt (schema.cc).
void PreupdateHook(void*, sqlite3* db, int op, const char*, const char* table, sqlite3_int64,
                   sqlite3_int64) {
  if (op != SQLITE_INSERT || std::strcmp(table, "history") != 0) return;
  if (g_observer.load(std::memory_order_relaxed) == nullptr) return;
  if (t_op.detail.size() + t_txn.detail.size() + t_batch.detail.size() < kTransitionDetailCap) {
    TransitionNote& n = t_op.detail.emplace_back();
    n.task_id = ColumnText(db, 1);
    n.subtask_index = ColumnInt(db, 2);
    n.from = static_cast<int>(ColumnInt(db, 3));
    n.to = static_cast<int>(ColumnInt(db, 4));
    n.event = ColumnText(db, 5);
    n.reason = ColumnText(db, 6);
    n.actor = ColumnText(db, 7);
    n.time_ms = ColumnInt(db, 8);
    n.attempt = static_cast<uint32_t>(ColumnInt(db, 10));
  } else {
    ++t_op.more[{ColumnText(db, 1), ColumnInt(db, 2) >= 0, static_cast<int>(ColumnInt(db, 3)),
                 static_cast<int>(ColumnInt(db, 4)), ColumnText(db, 5)}];
  }
}

// Hands a batch's committed notes to the observer (after its callers were answered).
void Report(std::vector<CommitNote>& commits, Notes& batch) {
  CommitObserver* observer = g_observer.load();
  if (observer != nullptr && (!commits.empty() || !batch.detail.empty())) {
    std::vector<TransitionCount> more;
    for (auto& [k, c] : batch.more) {
      more.push_back(TransitionCount{std::get<0>(k), std::get<1>(k), std::get<2>(k),
                                     std::get<3>(k), std::get<4>(k), c});
    }
    observer->OnCommitted(commits, batch.detail, more);
  }
  commits.clear();
  batch.clear();
}

}  // namespace

struct GroupCommitWriter::Finished {
  struct Op {
    std::function<void(absl::Status)> finish;
    absl::Status status;
    std::shared_ptr<void> owner;
  };
  std::vector<Op> ops;
  std::vector<CommitNote> commits;
  Notes notes;
};

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Connection> db,
                                     std::unique_ptr<Connection> checkpoint_db,
                                     uint64_t committed_revision, int max_batch)
    : db_(std::move(db)),
      max_batch_(max_batch > 0 ? static_cast<size_t>(max_batch) : 1),
      rng_(std::random_device{}()),
      committed_revision_(committed_revision),
      checkpoint_db_(std::move(checkpoint_db)) {
  sqlite3_commit_hook(db_->raw(), &GroupCommitWriter::CommitHook, this);
  sqlite3_preupdate_hook(db_->raw(), &PreupdateHook, nullptr);
  if (checkpoint_db_ != nullptr) {
    // Replaces SQLite's automatic checkpoint on the writer connection.
    sqlite3_wal_hook(db_->raw(), &GroupCommitWriter::WalHook, this);
    checkpoint_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "store-checkpoint");
      CheckpointLoop();
    });
  }
  completer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "store-complete");
    CompleteLoop();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "store-writer");
    Loop();
  });
}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_stopping_ = true;
  }
  done_cv_.notify_all();
  completer_.join();
  if (checkpoint_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stopping_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpoint_thread_.join();
  }
}

int GroupCommitWriter::WalHook(void* self, sqlite3* db, const char* name, int pages) {
  auto* w = static_cast<GroupCommitWriter*>(self);
  if (pages >= kInlineCheckpointPages) {
    // The background checkpoint falls behind: catch up here, between commits.
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= kCheckpointPages) {
    {
      std::lock_guard<std::mutex> lock(w->checkpoint_mu_);
      w->checkpoint_wanted_ = true;
    }
    w->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

void GroupCommitWriter::CheckpointLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(checkpoint_mu_);
      checkpoint_cv_.wait(lock, [&] { return checkpoint_wanted_ || checkpoint_stopping_; });
      if (checkpoint_stopping_) return;
      checkpoint_wanted_ = false;
    }
    // PASSIVE never blocks the writer or readers; what it cannot copy now, the
    // next one will. Errors (busy) only mean "later".
    sqlite3_wal_checkpoint_v2(checkpoint_db_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
  }
}

int GroupCommitWriter::CommitHook(void* self) {
  auto* w = static_cast<GroupCommitWriter*>(self);
  int n = w->fail_commits_.load();
  while (n > 0) {
    if (w->fail_commits_.compare_exchange_weak(n, n - 1)) return 1;  // turn COMMIT into ROLLBACK
  }
  return 0;
}

absl::Status GroupCommitWriter::Run(WriteOp op) {
  std::vector<WriteOp> ops;
  ops.push_back(std::move(op));
  return std::move(RunAll(std::move(ops)).front());
}

bool GroupCommitWriter::Enqueue(std::vector<Pending>& pending) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    for (auto& p : pending) queue_.push_back(&p);
  }
  cv_.notify_one();
  return true;
}

std::vector<absl::Status> GroupCommitWriter::RunAll(std::vector<WriteOp> ops) {
  std::vector<Pending> pending(ops.size());
  std::vector<std::promise<absl::Status>> promises(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    pending[i].op = std::move(ops[i]);
    pending[i].finish = [p = &promises[i]](absl::Status s) { p->set_value(std::move(s)); };
  }
  std::vector<absl::Status> out;
  out.reserve(ops.size());
  if (!Enqueue(pending)) {
    out.assign(ops.size(), absl::UnavailableError("store is closing"));
    return out;
  }
  for (auto& p : promises) out.push_back(p.get_future().get());
  return out;
}

void GroupCommitWriter::RunAllAsync(std::vector<WriteOp> ops, AllDone done) {
  if (ops.empty()) {
    done({});
    return;
  }
  // Each queued op owns the group; the last one finished answers for all.
  struct Group {
    std::vector<Pending> pending;
    std::vector<absl::Status> statuses;
    size_t left = 0;
    AllDone done;
  };
  auto g = std::make_shared<Group>();
  g->pending.resize(ops.size());
  g->statuses.resize(ops.size());
  g->left = ops.size();
  g->done = std::move(done);
  for (size_t i = 0; i < ops.size(); ++i) {
    g->pending[i].op = std::move(ops[i]);
    g->pending[i].owner = g;
    g->pending[i].finish = [g = g.get(), i](absl::Status s) {
      g->statuses[i] = std::move(s);
      if (--g->left == 0) g->done(std::move(g->statuses));
    };
  }
  if (!Enqueue(g->pending)) {
    for (auto& p : g->pending) p.owner.reset();
    g->done(std::vector<absl::Status>(ops.size(), absl::UnavailableError("store is closing")));
  }
}

void GroupCommitWriter::Loop() {
  std::vector<Pending*> batch;
  batch.reserve(max_batch_);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    RunBatch(batch);
    auto f = std::make_unique<Finished>();
    f->ops.reserve(batch.size());
    for (Pending* p : batch) {
      // `p` may live in memory its owner frees: nothing touches it after
      // its op is moved out.
      f->ops.push_back(Finished::Op{std::move(p->finish), std::move(p->status),
                                    std::move(p->owner)});
    }
    batch.clear();
    f->commits.swap(t_commits);
    t_batch.MergeInto(f->notes);
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_.push_back(std::move(f));
    }
    done_cv_.notify_one();
  }
}

void GroupCommitWriter::CompleteLoop() {
  while (true) {
    std::deque<std::unique_ptr<Finished>> ready;
    {
      std::unique_lock<std::mutex> lock(done_mu_);
      done_cv_.wait(lock, [&] { return done_stopping_ || !done_.empty(); });
      if (done_.empty()) return;  // stopping, and every batch answered
      ready.swap(done_);
    }
    for (auto& f : ready) {
      for (auto& op : f->ops) {
        std::shared_ptr<void> owner = std::move(op.owner);
        op.finish(std::move(op.status));
      }
      Report(f->commits, f->notes);
    }
  }
}

absl::Status GroupCommitWriter::Step(std::string_view sql) {
  STORE_ASSIGN_OR_RETURN(Query q, db_->Prepare(sql));
  return q->Run();
}

void GroupCommitWriter::RunBatch(std::vector<Pending*>& batch) {
  size_t next = 0;
  while (next < batch.size()) next = RunTransaction(batch, next);
}

size_t GroupCommitWriter::RunTransaction(std::vector<Pending*>& batch, size_t first) {
  if (absl::Status s = Step("BEGIN IMMEDIATE"); !s.ok()) {
    for (size_t i = first; i < batch.size(); ++i) {
      batch[i]->status =
          absl::UnavailableError(Cat("store: cannot begin a write: ", std::string(s.message())));
    }
    if (db_->in_transaction()) (void)db_->Exec("ROLLBACK");
    return batch.size();
  }

  uint64_t revision = committed_revision_;
  // Marks every op of this transaction that had succeeded as lost.
  auto lose = [&](size_t end, const std::string& cause) {
    for (size_t j = first; j < end; ++j) {
      if (batch[j]->status.ok()) {
        batch[j]->status =
            absl::UnavailableError(Cat("store: write rolled back, nothing was saved: ", cause));
      }
    }
    if (db_->in_transaction()) (void)db_->Exec("ROLLBACK");
    t_op.clear();
    t_txn.clear();
  };

  size_t i = first;
  for (; i < batch.size(); ++i) {
    Pending* p = batch[i];
    if (absl::Status s = Step("SAVEPOINT op"); !s.ok()) {
      p->status = s;
      lose(i + 1, std::string(s.message()));
      return i + 1;
    }
    WriteCtx ctx{*db_, revision + 1, rng_};
    try {
      p->status = p->op(ctx);
    } catch (const std::exception& e) {
      p->status = absl::InternalError(Cat("store: write failed: ", e.what()));
    } catch (...) {
      p->status = absl::InternalError("store: write failed with an unknown exception");
    }
    if (!db_->in_transaction()) {
      // SQLite rolled the whole transaction back on this op's error.
      if (p->status.ok()) p->status = absl::UnavailableError("store: transaction was rolled back");
      lose(i, std::string(p->status.message()));
      return i + 1;
    }
    absl::Status end = p->status.ok() ? Step("RELEASE op") : Step("ROLLBACK TO op");
    if (end.ok() && !p->status.ok()) end = Step("RELEASE op");
    if (end.ok() && p->status.ok()) {
      t_op.MergeInto(t_txn);
    } else {
      t_op.clear();
    }
    if (!end.ok()) {
      if (p->status.ok()) p->status = end;
      lose(i + 1, std::string(end.message()));
      return i + 1;
    }
    if (p->status.ok()) ++revision;
  }

  absl::Status commit;
  if (revision != committed_revision_) {
    absl::StatusOr<Query> q = db_->Prepare("UPDATE meta SET value = ?1 WHERE key = 'revision'");
    commit = q.status();
    if (commit.ok()) {
      (*q)->BindInt(1, revision);
      commit = (*q)->Run();
    }
  }
  auto commit_start = std::chrono::steady_clock::now();
  if (commit.ok()) commit = Step("COMMIT");
  if (!commit.ok()) {
    lose(i, Cat("commit failed: ", std::string(commit.message())));
    return i;
  }
  t_commits.push_back(CommitNote{
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count(),
      i - first});
  t_txn.MergeInto(t_batch);
  committed_revision_ = revision;
  return i;
}

}  // namespace orchard::store::sqlite
