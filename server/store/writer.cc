// The group-commit writer thread. Thread-safety: see writer.h.
#include "server/store/writer.h"

#include <exception>

#include "common/strcat.h"

namespace orchard::store::sqlite {

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Connection> db,
                                     std::unique_ptr<Connection> checkpoint_db,
                                     uint64_t committed_revision, int max_batch)
    : db_(std::move(db)),
      max_batch_(max_batch > 0 ? static_cast<size_t>(max_batch) : 1),
      rng_(std::random_device{}()),
      committed_revision_(committed_revision),
      checkpoint_db_(std::move(checkpoint_db)) {
  sqlite3_commit_hook(db_->raw(), &GroupCommitWriter::CommitHook, this);
  if (checkpoint_db_ != nullptr) {
    // Replaces SQLite's automatic checkpoint on the writer connection.
    sqlite3_wal_hook(db_->raw(), &GroupCommitWriter::WalHook, this);
    checkpoint_thread_ = std::thread([this] { CheckpointLoop(); });
  }
  thread_ = std::thread([this] { Loop(); });
}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
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
  Pending p{std::move(op), {}, {}};
  std::future<absl::Status> done = p.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("store is closing");
    queue_.push_back(&p);
  }
  cv_.notify_one();
  return done.get();
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
    for (Pending* p : batch) p->done.set_value(std::move(p->status));
    batch.clear();
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
  if (commit.ok()) commit = Step("COMMIT");
  if (!commit.ok()) {
    lose(i, Cat("commit failed: ", std::string(commit.message())));
    return i;
  }
  committed_revision_ = revision;
  return i;
}

}  // namespace orchard::store::sqlite
