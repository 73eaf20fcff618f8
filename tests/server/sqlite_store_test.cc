// Tests of server/store's SqliteStore against a real SQLite file in a temp
// directory. Time is explicit (now_ms values), never slept; counters are
// checked against SELECT count(*) on a separate raw connection.
#include "tests/testing/temp_dir.h"
#include "server/store/sqlite_store.h"
#include "server/store/writer.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/lifecycle/subtask.h"
#include "common/lifecycle/task.h"

namespace {

namespace pb = ::orchard::v1;
using orchard::Outcome;
using orchard::State;
using orchard::lifecycle::SubtaskEvent;
using orchard::lifecycle::TaskEvent;
using orchard::store::AcquireResult;
using orchard::store::HistoryFilter;
using orchard::store::SqliteOptions;
using orchard::store::SubtaskFilter;
using orchard::store::TaskFilter;
using orchard::store::TaskTransition;
using orchard::store::TransitionResult;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kTtl = 10'000;

// Fails the test (gtest catches the exception) when `v` holds an error.
template <typename T>
T Ok(absl::StatusOr<T> v) {
  if (!v.ok()) throw std::runtime_error("unexpected error: " + v.status().ToString());
  return std::move(*v);
}
void Ok(const absl::Status& s) {
  if (!s.ok()) throw std::runtime_error("unexpected error: " + s.ToString());
}

pb::TaskSpec Spec(const std::string& kind, uint64_t begin, uint64_t end, uint64_t subtasks) {
  pb::TaskSpec s;
  s.set_kind(kind);
  s.set_begin(begin);
  s.set_end(end);
  s.mutable_split()->set_subtasks(subtasks);
  s.set_params_json(R"({"x":1})");
  return s;
}

pb::SubtaskReport Succeeded(const pb::LeaseRef& l, const std::string& result = "{}") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_succeeded_result_json(result);
  return r;
}
pb::SubtaskReport Failed(const pb::LeaseRef& l, const std::string& error = "boom") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_failed_error(error);
  return r;
}
pb::SubtaskReport FailedPermanently(const pb::LeaseRef& l, const std::string& error = "bad") {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_failed_permanently_error(error);
  return r;
}
pb::SubtaskReport Stopped(const pb::LeaseRef& l) {
  pb::SubtaskReport r;
  *r.mutable_lease() = l;
  r.set_stopped(true);
  return r;
}

// The fixture is named after the store so the tests read SqliteStore.Xxx.
class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("store");
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    if (raw_ != nullptr) sqlite3_close(raw_);
    std::filesystem::remove_all(dir_);
  }

  std::string path() const { return (dir_ / "orchard.db").string(); }
  void Reopen() {
    store_.reset();
    store_ = Ok(orchard::store::SqliteStore::Open(SqliteOptions{.path = path()}));
  }
  orchard::store::SqliteStore& store() { return *store_; }

  pb::Task Submit(const pb::TaskSpec& spec, int64_t now = kNow) {
    return Ok(store().CreateTask(spec, now)).task;
  }
  absl::StatusOr<pb::Task> Transition(const std::string& id, TaskEvent e, int64_t now = kNow,
                                      const std::string& reason = "") {
    TaskTransition t;
    t.task_id = id;
    t.actor = "client";
    t.event = e;
    t.reason = reason;
    return store().TransitionTask(t, now);
  }
  // Submits and plans (uniformly) a task; returns it Running.
  pb::Task Start(const pb::TaskSpec& spec, int64_t now = kNow) {
    pb::Task t = Submit(spec, now);
    TaskTransition tr;
    tr.task_id = t.id();
    tr.actor = "client";
    tr.event = TaskEvent::kPlanned;
    tr.plan.emplace();
    tr.plan->set_uniform(true);
    return Ok(store().TransitionTask(tr, now));
  }
  std::string Worker(const std::vector<std::string>& kinds, int64_t now = kNow) {
    return Ok(store().RegisterWorker("node", kinds, 8, now));
  }
  AcquireResult Acquire(const std::string& w, uint32_t n, int64_t now = kNow, uint32_t tasks = 0) {
    return Ok(store().Acquire(w, n, tasks, now, kTtl));
  }
  absl::Status ReportOne(const std::string& w, const pb::SubtaskReport& r, int64_t now = kNow) {
    std::vector<absl::Status> s = Ok(store().Report(w, {r}, now));
    return s.at(0);
  }
  pb::Task Get(const std::string& id) { return Ok(store().GetTask(id)); }
  std::vector<pb::Subtask> Subtasks(const std::string& id) {
    SubtaskFilter f;
    f.task_id = id;
    f.page_size = 10000;
    return Ok(store().ListSubtasks(f)).subtasks;
  }
  std::vector<pb::HistoryEntry> History(const std::string& id, std::optional<int64_t> index) {
    HistoryFilter f;
    f.task_id = id;
    f.subtask_index = index;
    f.page_size = 10000;
    return Ok(store().GetHistory(f)).entries;
  }

  // A raw read connection to the same file, for counting rows independently.
  int64_t Count(const std::string& sql) {
    if (raw_ == nullptr) {
      if (sqlite3_open_v2(path().c_str(), &raw_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        throw std::runtime_error("cannot open the database read-only");
      }
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(raw_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("bad sql: ") + sqlite3_errmsg(raw_));
    }
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
  }

  // Every counter of the task equals the count of its subtask rows.
  void ExpectCountersMatchRows(const std::string& id) {
    pb::SubtaskCounts c = Get(id).counts();
    auto n = [&](const std::string& where) {
      return static_cast<uint64_t>(
          Count("SELECT count(*) FROM subtasks WHERE task_id = '" + id + "'" + where));
    };
    EXPECT_EQ(c.total(), n(""));
    EXPECT_EQ(c.preparing(), n(" AND state = 1"));
    EXPECT_EQ(c.running(), n(" AND state = 2"));
    EXPECT_EQ(c.terminating(), n(" AND state = 3"));
    EXPECT_EQ(c.error(), n(" AND state = 4"));
    EXPECT_EQ(c.terminated(), n(" AND state = 5"));
    EXPECT_EQ(c.succeeded(), n(" AND state = 5 AND outcome = 1"));
    EXPECT_EQ(c.cancelled(), n(" AND state = 5 AND outcome = 2"));
    EXPECT_EQ(c.items_done(),
              static_cast<uint64_t>(Count("SELECT coalesce(sum(item_end - item_begin), 0) FROM "
                                          "subtasks WHERE state = 5 AND outcome = 1 AND task_id "
                                          "= '" +
                                          id + "'")));
    EXPECT_EQ(c.items_total(),
              static_cast<uint64_t>(Count("SELECT coalesce(sum(item_end - item_begin), 0) FROM "
                                          "subtasks WHERE task_id = '" +
                                          id + "'")));
  }

  // Every subtask history row is an edge of the table, and each subtask's rows
  // chain (one row's target is the next row's source).
  void ExpectSubtaskHistoryIsLegal(const std::string& id) {
    std::map<int64_t, State> last;
    for (const pb::HistoryEntry& h : History(id, std::nullopt)) {
      if (h.subtask_index() < 0) continue;
      auto event = orchard::lifecycle::ParseSubtaskEvent(h.event());
      ASSERT_TRUE(event.has_value()) << h.event();
      auto edge = orchard::lifecycle::NextSubtask(static_cast<State>(h.from()), *event);
      ASSERT_TRUE(edge.ok()) << edge.status();
      EXPECT_EQ(static_cast<int>(edge->to), static_cast<int>(h.to()));
      auto it = last.find(h.subtask_index());
      State from = it == last.end() ? State::kPreparing : it->second;
      EXPECT_EQ(static_cast<int>(from), static_cast<int>(h.from()))
          << "subtask " << h.subtask_index() << " history does not chain";
      last[h.subtask_index()] = static_cast<State>(h.to());
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<orchard::store::SqliteStore> store_;
  sqlite3* raw_ = nullptr;
};

// ------------------------------------------------------------------ submit

// This test verifies that a new task waits in Preparing with no subtasks and
// one "Created" history row.
TEST_F(SqliteStore, CreateTaskStartsInPreparingWithoutSubtasks) {
  auto r = Ok(store().CreateTask(Spec("sum", 0, 100, 4), kNow));
  EXPECT_TRUE(r.created);
  EXPECT_EQ(r.task.id().rfind("t-", 0), 0u);
  EXPECT_EQ(r.task.state(), pb::PREPARING);
  EXPECT_EQ(r.task.version(), 1u);
  EXPECT_EQ(r.task.counts().total(), 0u);
  EXPECT_EQ(r.task.create_time_ms(), kNow);
  EXPECT_EQ(r.task.spec().params_json(), R"({"x":1})");
  EXPECT_TRUE(Subtasks(r.task.id()).empty());
  auto h = History(r.task.id(), -1);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].event(), "Created");
  EXPECT_EQ(Get(r.task.id()).SerializeAsString(), r.task.SerializeAsString());
  EXPECT_EQ(store().GetTask("t-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().GetTask("t-nope").status().message(), "task t-nope not found");
}

// This test verifies that a resubmission with the same request_id returns the
// first task, even with a different spec, and that no request_id never dedups.
TEST_F(SqliteStore, SameRequestIdReturnsTheFirstTask) {
  pb::TaskSpec a = Spec("sum", 0, 100, 4);
  a.set_request_id("req-1");
  auto first = Ok(store().CreateTask(a, kNow));
  // The same spec again (params spelt differently, the same JSON value).
  pb::TaskSpec again = a;
  again.set_params_json(R"({ "x" : 1 })");
  auto second = Ok(store().CreateTask(again, kNow + 1));
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.task.id(), first.task.id());
  auto c = Ok(store().CreateTask(Spec("sum", 0, 1, 1), kNow));
  auto d = Ok(store().CreateTask(Spec("sum", 0, 1, 1), kNow));
  EXPECT_NE(c.task.id(), d.task.id());
}

// This test verifies that a resubmit with a used request_id and a different
// spec is refused with ALREADY_EXISTS naming the first field that differs
// and the first task, and stores nothing.
TEST_F(SqliteStore, SameRequestIdWithAnotherSpecIsRefusedNamingTheField) {
  pb::TaskSpec a = Spec("sum", 0, 100, 4);
  a.set_request_id("req-1");
  a.mutable_policy()->set_max_attempts(3);
  (*a.mutable_labels())["team"] = "a";
  const pb::Task first = Ok(store().CreateTask(a, kNow)).task;
  struct Case {
    std::function<void(pb::TaskSpec&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](pb::TaskSpec& s) { s.set_kind("noop"); }, "kind"},
      {[](pb::TaskSpec& s) { s.set_end(101); }, "end"},
      {[](pb::TaskSpec& s) { s.mutable_split()->set_subtasks(5); }, "split.subtasks"},
      {[](pb::TaskSpec& s) { s.mutable_split()->set_chunk(4); }, "split.subtasks"},
      {[](pb::TaskSpec& s) { s.set_params_json(R"({"x":2})"); }, "params.x"},
      {[](pb::TaskSpec& s) { s.set_params_json(R"({"x":1,"y":0})"); }, "params.y"},
      {[](pb::TaskSpec& s) { s.mutable_policy()->set_max_attempts(4); }, "policy.max_attempts"},
      {[](pb::TaskSpec& s) { s.mutable_policy()->set_max_failed_subtasks(0); },
       "policy.max_failed_subtasks"},
      {[](pb::TaskSpec& s) { (*s.mutable_labels())["team"] = "b"; }, "labels.team"},
      {[](pb::TaskSpec& s) { s.mutable_labels()->clear(); }, "labels.team"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    pb::TaskSpec b = a;
    c.change(b);
    auto r = store().CreateTask(b, kNow + 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_NE(r.status().message().find("(" + c.field + " differs)"), std::string::npos)
        << r.status();
    EXPECT_NE(r.status().message().find(first.id()), std::string::npos) << r.status();
  }
  EXPECT_EQ(Ok(store().ListTasks(TaskFilter{})).tasks.size(), 1u);
}

// This test verifies that concurrent submits of one request_id from many
// threads create exactly one task.
TEST_F(SqliteStore, ConcurrentSubmitsWithOneRequestIdCreateOneTask) {
  pb::TaskSpec spec = Spec("sum", 0, 100, 4);
  spec.set_request_id("same");
  std::atomic<int> created{0};
  std::vector<std::string> ids(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto r = store().CreateTask(spec, kNow);
      if (!r.ok()) return;
      ids[i] = r->task.id();
      if (r->created) ++created;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), 1);
}

// ---------------------------------------------------------------- planning

// This test verifies that Planned with a uniform plan writes every slice in
// Preparing, sets the counters and records "planned N subtasks".
TEST_F(SqliteStore, PlannedUniformWritesEverySubtaskInPreparing) {
  pb::Task t = Start(Spec("sum", 0, 100, 7), kNow + 5);
  EXPECT_EQ(t.state(), pb::RUNNING);
  EXPECT_EQ(t.version(), 2u);
  EXPECT_EQ(t.start_time_ms(), kNow + 5);
  EXPECT_EQ(t.counts().total(), 7u);
  EXPECT_EQ(t.counts().preparing(), 7u);
  EXPECT_EQ(t.counts().items_total(), 100u);
  auto subs = Subtasks(t.id());
  ASSERT_EQ(subs.size(), 7u);
  uint64_t next = 0;
  for (size_t i = 0; i < subs.size(); ++i) {
    EXPECT_EQ(subs[i].index(), i);
    EXPECT_EQ(subs[i].begin(), next);
    EXPECT_EQ(subs[i].state(), pb::PREPARING);
    EXPECT_EQ(subs[i].attempt(), 0u);
    next = subs[i].end();
  }
  EXPECT_EQ(next, 100u);
  EXPECT_EQ(subs[0].end() - subs[0].begin(), 15u);
  auto h = History(t.id(), -1);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].event(), "Planned");
  EXPECT_EQ(h[1].reason(), "planned 7 subtasks");
  EXPECT_TRUE(History(t.id(), 0).empty()) << "creating a subtask is not a transition";
  ExpectCountersMatchRows(t.id());

  pb::TaskSpec chunked = Spec("sum", 10, 110, 1);
  chunked.mutable_split()->set_chunk(30);
  pb::Task c = Start(chunked);
  auto cs = Subtasks(c.id());
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(cs[3].begin(), 100u);
  EXPECT_EQ(cs[3].end(), 110u);
}

// This test verifies that explicit bounds are validated, and a bad plan
// changes nothing.
TEST_F(SqliteStore, PlannedWithExplicitBoundsValidatesThem) {
  pb::Task t = Submit(Spec("sum", 0, 100, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.event = TaskEvent::kPlanned;
  tr.plan.emplace();
  for (uint64_t b : {0, 50, 40, 100}) tr.plan->add_bounds(b);
  auto bad = store().TransitionTask(tr, kNow);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(t.id()).version(), 1u);
  EXPECT_EQ(Get(t.id()).state(), pb::PREPARING);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks"), 0);

  tr.plan->clear_bounds();
  for (uint64_t b : {0, 10, 100}) tr.plan->add_bounds(b);
  pb::Task ok = Ok(store().TransitionTask(tr, kNow));
  EXPECT_EQ(ok.counts().total(), 2u);
  auto subs = Subtasks(t.id());
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[1].begin(), 10u);
  EXPECT_EQ(subs[1].end(), 100u);
}

// ----------------------------------------------------------------- acquire

// This test verifies that Acquire never leases more of a task's subtasks than
// its parallelism allows at once.
TEST_F(SqliteStore, AcquireRespectsParallelism) {
  pb::TaskSpec spec = Spec("sum", 0, 50, 5);
  spec.mutable_policy()->set_parallelism(2);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 10);
  ASSERT_EQ(a.subtasks.size(), 2u);
  EXPECT_EQ(a.subtasks[0].kind(), "sum");
  EXPECT_EQ(a.subtasks[0].params_json(), R"({"x":1})");
  EXPECT_EQ(a.subtasks[0].attempt(), 1u);
  EXPECT_EQ(a.subtasks[0].lease().epoch(), 1u);
  EXPECT_EQ(a.subtasks[0].lease_expire_ms(), kNow + kTtl);
  EXPECT_EQ(Acquire(w, 10).subtasks.size(), 0u);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease())));
  EXPECT_EQ(Acquire(w, 10).subtasks.size(), 1u);
  EXPECT_EQ(Get(t.id()).counts().running(), 2u);
  ExpectCountersMatchRows(t.id());
}

// This test verifies that a worker gets only subtasks and task leases of the
// kinds it registered.
TEST_F(SqliteStore, AcquireOnlyLeasesKindsTheWorkerRuns) {
  pb::Task a = Start(Spec("a", 0, 10, 2));
  pb::Task b = Start(Spec("b", 0, 10, 2));
  std::string w = Worker({"a"});
  AcquireResult r = Acquire(w, 10, kNow, 10);
  ASSERT_EQ(r.subtasks.size(), 2u);
  for (const auto& l : r.subtasks) EXPECT_EQ(l.lease().task_id(), a.id());
  ASSERT_EQ(r.tasks.size(), 1u);
  EXPECT_EQ(r.tasks[0].task().id(), a.id());
  EXPECT_EQ(Get(b.id()).counts().running(), 0u);
}

// This test verifies that a subtask backing off is not leased before its
// not_before, and that Acquire says when it becomes runnable.
TEST_F(SqliteStore, AcquireWaitsForNotBeforeAndSaysWhen) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_backoff_initial_ms(1000);
  spec.mutable_policy()->set_backoff_max_ms(1000);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease())));
  pb::Subtask s = Subtasks(t.id())[0];
  ASSERT_EQ(s.state(), pb::PREPARING);
  if (s.not_before_ms() > kNow) {
    AcquireResult none = Acquire(w, 1, kNow);
    EXPECT_TRUE(none.subtasks.empty());
    EXPECT_EQ(none.next_ready_ms, s.not_before_ms());
  }
  AcquireResult again = Acquire(w, 1, s.not_before_ms());
  ASSERT_EQ(again.subtasks.size(), 1u);
  EXPECT_EQ(again.subtasks[0].attempt(), 2u);
  EXPECT_EQ(again.subtasks[0].lease().epoch(), 2u);
  EXPECT_EQ(again.next_ready_ms, 0);
}

// This test verifies that higher priority tasks are served first, then older.
TEST_F(SqliteStore, AcquirePrefersHigherPriorityThenOlderTasks) {
  pb::Task old_low = Start(Spec("sum", 0, 10, 2), kNow);
  pb::TaskSpec hi = Spec("sum", 0, 10, 2);
  hi.mutable_policy()->set_priority(5);
  pb::Task high = Start(hi, kNow + 1);
  pb::Task new_low = Start(Spec("sum", 0, 10, 2), kNow + 2);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  ASSERT_EQ(a.subtasks.size(), 3u);
  EXPECT_EQ(a.subtasks[0].lease().task_id(), high.id());
  EXPECT_EQ(a.subtasks[1].lease().task_id(), high.id());
  EXPECT_EQ(a.subtasks[2].lease().task_id(), old_low.id());
  EXPECT_EQ(Get(new_low.id()).counts().running(), 0u);
}

// This test verifies that an unknown worker gets NOT_FOUND from Acquire and
// Heartbeat (so it registers again).
TEST_F(SqliteStore, UnknownWorkerIsNotFound) {
  EXPECT_EQ(store().Acquire("w-nobody", 1, 1, kNow, kTtl).status().code(),
            absl::StatusCode::kNotFound);
  pb::HeartbeatRequest hb;
  hb.set_worker_id("w-nobody");
  EXPECT_EQ(store().Heartbeat(hb, kNow, kTtl).status().code(), absl::StatusCode::kNotFound);
}

// This test verifies that a task's reconcile lease is held by one worker until
// it expires, and that the old holder's epoch is then refused.
// Reconcile leases come from two indexes (free leases, expired ones) and
// are handed out in one order: higher priority first, then older; a lease
// still held is not, and neither is a task of a kind the worker does not run.
TEST_F(SqliteStore, ReconcileLeasesMergeFreeAndExpiredInPriorityThenAgeOrder) {
  auto with_priority = [](pb::TaskSpec s, int32_t p) {
    s.mutable_policy()->set_priority(p);
    return s;
  };
  const std::string w1 = Worker({"sum"});
  const std::string w2 = Worker({"sum"});
  pb::Task expired = Submit(Spec("sum", 0, 10, 1));
  pb::Task held = Submit(Spec("sum", 0, 10, 1));
  ASSERT_EQ(Acquire(w1, 0, kNow, 1).tasks[0].task().id(), expired.id());
  ASSERT_EQ(Acquire(w1, 0, kNow + kTtl / 2, 1).tasks[0].task().id(), held.id());
  pb::Task urgent = Submit(with_priority(Spec("sum", 0, 10, 1), 5));
  pb::Task later = Submit(Spec("sum", 0, 10, 1));
  Submit(with_priority(Spec("other", 0, 10, 1), 9));
  // `expired`'s lease ended at kNow + kTtl; `held`'s runs to 1.5 kTtl.
  AcquireResult a = Acquire(w2, 0, kNow + kTtl + 1, 10);
  std::vector<std::string> got;
  for (const auto& l : a.tasks) got.push_back(l.task().id());
  EXPECT_EQ(got, (std::vector<std::string>{urgent.id(), expired.id(), later.id()}));
}

// A database written by a version-1 server opens with the version-2
// indexes added and its tasks kept and leasable.
TEST_F(SqliteStore, OpeningAVersionOneDatabaseAddsTheLeaseIndexes) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  store_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP INDEX tasks_unleased; DROP INDEX tasks_runnable; "
                           "PRAGMA user_version = 1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  Reopen();
  EXPECT_EQ(Count("PRAGMA user_version"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                  "('tasks_unleased', 'tasks_runnable')"),
            2);
  AcquireResult a = Acquire(Worker({"sum"}), 0, kNow, 1);
  ASSERT_EQ(a.tasks.size(), 1u);
  EXPECT_EQ(a.tasks[0].task().id(), t.id());
}

TEST_F(SqliteStore, TaskLeaseIsExclusiveUntilItExpires) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  std::string w1 = Worker({"sum"});
  std::string w2 = Worker({"sum"});
  AcquireResult a = Acquire(w1, 0, kNow, 1);
  ASSERT_EQ(a.tasks.size(), 1u);
  EXPECT_EQ(a.tasks[0].epoch(), 1u);
  EXPECT_EQ(a.tasks[0].task().reconciler(), w1);
  EXPECT_EQ(a.tasks[0].task().spec().kind(), "sum");
  EXPECT_EQ(a.tasks[0].task().version(), 1u) << "a lease is not a change of the task's state";
  EXPECT_TRUE(Acquire(w2, 0, kNow + 1, 1).tasks.empty());
  AcquireResult b = Acquire(w2, 0, kNow + kTtl + 1, 1);
  ASSERT_EQ(b.tasks.size(), 1u);
  EXPECT_EQ(b.tasks[0].epoch(), 2u);

  TaskTransition tr;
  tr.task_id = t.id();
  tr.actor = w1;
  tr.lease_worker = w1;
  tr.lease_epoch = 1;
  tr.event = TaskEvent::kCancelRequested;
  auto stale = store().TransitionTask(tr, kNow + kTtl + 2);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("stale"), std::string::npos) << stale.status();
  tr.actor = tr.lease_worker = w2;
  tr.lease_epoch = 2;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow + kTtl + 2)).state(), pb::TERMINATING);

  EXPECT_EQ(store().ReleaseTask(w1, t.id(), 1).code(), absl::StatusCode::kFailedPrecondition);
  Ok(store().ReleaseTask(w2, t.id(), 2));
  Ok(store().ReleaseTask(w2, t.id(), 2));  // a retried release is a no-op
  EXPECT_EQ(Get(t.id()).reconciler(), "");

  // The transition that ends the task ends its lease too: nobody reconciles
  // a terminal task, and its reconciler need not release it.
  AcquireResult c = Acquire(w2, 0, kNow + kTtl + 3, 1);
  ASSERT_EQ(c.tasks.size(), 1u);
  EXPECT_EQ(c.tasks[0].epoch(), 3u);
  tr.lease_epoch = 3;
  tr.event = TaskEvent::kFinalized;
  tr.outcome = Outcome::kCancelled;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow + kTtl + 4)).state(), pb::TERMINATED);
  EXPECT_EQ(Get(t.id()).reconciler(), "");
  EXPECT_TRUE(Acquire(w1, 0, kNow + kTtl + 5, 1).tasks.empty()) << "a terminal task was leased";
  Ok(store().ReleaseTask(w2, t.id(), 3));  // a late release is a no-op
}

// ------------------------------------------------------------------ report

// This test verifies that a success stores the result and counts the items.
TEST_F(SqliteStore, ReportSuccessStoresResultAndCountsItems) {
  pb::Task t = Start(Spec("sum", 0, 100, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  uint64_t v_before = Get(t.id()).version();
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), R"({"sum":300})"), kNow + 7));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::TERMINATED);
  EXPECT_EQ(s.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(s.result_json(), R"({"sum":300})");
  EXPECT_EQ(s.worker(), "");
  EXPECT_EQ(s.update_time_ms(), kNow + 7);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.counts().succeeded(), 1u);
  EXPECT_EQ(after.counts().items_done(), 25u);
  EXPECT_EQ(after.version(), v_before) << "counter changes must not bump the version";
  ExpectCountersMatchRows(t.id());
  // The same report again (a retried RPC) is refused and counted once.
  EXPECT_EQ(ReportOne(w, Succeeded(a.subtasks[0].lease())).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(t.id()).counts().items_done(), 25u);
}

// This test verifies that a failure with attempts left goes back to Preparing
// with a backoff within the policy's ceiling, keeping the error.
// A Report's snapshots are read in its own write, as a WaitTask would
// answer: each task as the reports left it (the revision of the report's
// commit), with every result once none is active. A task with more results
// than the writer reads in a commit, and ids past the writer's share, are
// left to the caller, whose TaskSnapshot brings them; an unknown task comes
// back empty; a task with work left comes without results.
TEST_F(SqliteStore, ReportReadsItsSnapshotsInItsWrite) {
  using Store = orchard::store::SqliteStore;
  const std::string w = Worker({"sum"});
  const uint32_t big_n = Store::kWriterSnapshotResults + 1;
  pb::Task small = Start(Spec("sum", 0, 20, 2));
  pb::Task big = Start(Spec("sum", 0, 10 * big_n, big_n));
  AcquireResult a = Acquire(w, 2 + big_n);
  ASSERT_EQ(a.subtasks.size(), 2 + big_n);
  pb::Task busy = Start(Spec("sum", 0, 20, 2));
  std::vector<pb::SubtaskReport> reports;
  for (const auto& l : a.subtasks) {
    reports.push_back(Succeeded(l.lease(), "{\"sum\":" + std::to_string(l.lease().subtask_index()) + "}"));
  }
  orchard::store::SnapshotAsk ask{.task_ids = {small.id(), big.id(), "t-nosuchtask", busy.id()},
                                  .results_up_to = 1000};
  while (ask.task_ids.size() <= Store::kWriterSnapshots) ask.task_ids.push_back(small.id());
  std::promise<absl::StatusOr<orchard::store::ReportResult>> got;
  store().ReportAsync(w, reports, kNow + 1, ask,
                      [&got](absl::StatusOr<orchard::store::ReportResult> r) { got.set_value(r); });
  orchard::store::ReportResult r = Ok(got.get_future().get());
  ASSERT_EQ(r.statuses.size(), reports.size());
  for (const auto& st : r.statuses) EXPECT_TRUE(st.ok()) << st;
  ASSERT_EQ(r.snapshots.size(), ask.task_ids.size());

  ASSERT_TRUE(r.snapshots[0].has_value());
  const pb::WaitTaskResponse& snap = *r.snapshots[0];
  EXPECT_EQ(snap.task().id(), small.id());
  EXPECT_GT(snap.task().revision(), small.revision());
  EXPECT_EQ(snap.task().revision(), Ok(store().GetTask(small.id())).revision());
  EXPECT_EQ(snap.task().counts().succeeded(), 2u);
  ASSERT_TRUE(snap.results_complete());
  ASSERT_EQ(snap.results_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(snap.results(i).index(), static_cast<uint64_t>(i));
    EXPECT_EQ(snap.results(i).result_json(), "{\"sum\":" + std::to_string(i) + "}");
  }
  EXPECT_FALSE(r.snapshots[1].has_value()) << "65 results: the caller's to read";
  ASSERT_TRUE(r.snapshots[2].has_value());
  EXPECT_FALSE(r.snapshots[2]->has_task());
  ASSERT_TRUE(r.snapshots[3].has_value());
  EXPECT_EQ(r.snapshots[3]->task().counts().preparing(), 2u);
  EXPECT_FALSE(r.snapshots[3]->results_complete());
  EXPECT_EQ(r.snapshots[3]->results_size(), 0);
  EXPECT_TRUE(r.snapshots[Store::kWriterSnapshots - 1].has_value());
  EXPECT_FALSE(r.snapshots[Store::kWriterSnapshots].has_value());

  // The caller's read: every result when asked for as many, none for fewer.
  pb::WaitTaskResponse all = Ok(store().TaskSnapshot(big.id(), big_n));
  ASSERT_TRUE(all.results_complete());
  ASSERT_EQ(all.results_size(), static_cast<int>(big_n));
  EXPECT_EQ(all.results(big_n - 1).result_json(), "{\"sum\":" + std::to_string(big_n - 1) + "}");
  pb::WaitTaskResponse fewer = Ok(store().TaskSnapshot(big.id(), big_n - 1));
  EXPECT_FALSE(fewer.results_complete());
  EXPECT_EQ(fewer.results_size(), 0);
  EXPECT_EQ(fewer.task().counts().succeeded(), big_n);
  EXPECT_TRUE(absl::IsNotFound(store().TaskSnapshot("t-nosuchtask", 10).status()));
}

TEST_F(SqliteStore, ReportFailureWithAttemptsLeftBacksOff) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_backoff_initial_ms(1000);
  spec.mutable_policy()->set_backoff_max_ms(1000);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease(), "disk on fire")));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::PREPARING);
  EXPECT_EQ(s.error(), "disk on fire");
  EXPECT_GE(s.not_before_ms(), kNow);
  EXPECT_LE(s.not_before_ms(), kNow + 1000);
  EXPECT_EQ(s.attempt(), 1u);
  auto h = History(t.id(), 0);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].event(), "Failed");
  EXPECT_NE(h[1].reason().find("disk on fire"), std::string::npos);
  EXPECT_NE(h[1].reason().find("retry in"), std::string::npos);
  EXPECT_EQ(h[1].actor(), w);
  ExpectCountersMatchRows(t.id());
}

// This test verifies that the failure of the last allowed attempt, or a
// permanent failure, ends in Error with outcome FAILED.
TEST_F(SqliteStore, ReportFailureWithAttemptsSpentGoesToError) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 2);
  spec.mutable_policy()->set_max_attempts(2);
  spec.mutable_policy()->set_backoff_initial_ms(1);
  spec.mutable_policy()->set_backoff_max_ms(1);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  ASSERT_EQ(a.subtasks.size(), 2u);
  Ok(ReportOne(w, Failed(a.subtasks[0].lease())));
  Ok(ReportOne(w, FailedPermanently(a.subtasks[1].lease(), "bad params")));
  AcquireResult b = Acquire(w, 2, kNow + 10);
  ASSERT_EQ(b.subtasks.size(), 1u);
  EXPECT_EQ(b.subtasks[0].attempt(), 2u);
  Ok(ReportOne(w, Failed(b.subtasks[0].lease(), "again"), kNow + 10));
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::ERROR);
  EXPECT_EQ(subs[0].outcome(), pb::FAILED);
  EXPECT_EQ(subs[0].error(), "again");
  EXPECT_EQ(subs[1].state(), pb::ERROR);
  EXPECT_EQ(subs[1].error(), "bad params");
  EXPECT_EQ(Get(t.id()).counts().error(), 2u);
  ExpectCountersMatchRows(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that a zombie (a worker whose lease expired and was
// handed on) cannot complete the subtask: its report is refused and its
// result never counted; the current holder's report is.
TEST_F(SqliteStore, ZombieCompletionWithStaleEpochIsRefusedAndNotCounted) {
  pb::Task t = Start(Spec("sum", 0, 10, 1));
  std::string zombie = Worker({"sum"});
  std::string w2 = Worker({"sum"});
  AcquireResult a = Acquire(zombie, 1);
  ASSERT_EQ(a.subtasks.size(), 1u);
  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 1u);
  // Expired but not yet handed on: refused too (the sweeper took it back).
  absl::Status early = ReportOne(zombie, Succeeded(a.subtasks[0].lease()), kNow + kTtl + 2);
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  AcquireResult b = Acquire(w2, 1, kNow + 10 * 60'000);
  ASSERT_EQ(b.subtasks.size(), 1u);
  EXPECT_EQ(b.subtasks[0].lease().epoch(), 2u);
  absl::Status late = ReportOne(zombie, Succeeded(a.subtasks[0].lease(), "zombie"));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(late.message().find("lease epoch 1 is stale (now 2)"), std::string::npos) << late;
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 0u);
  // A zombie that guesses the new epoch is still not the holder.
  EXPECT_EQ(ReportOne(zombie, Succeeded(b.subtasks[0].lease())).code(),
            absl::StatusCode::kFailedPrecondition);
  Ok(ReportOne(w2, Succeeded(b.subtasks[0].lease(), "real")));
  EXPECT_EQ(Subtasks(t.id())[0].result_json(), "real");
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 1u);
  EXPECT_EQ(Get(t.id()).counts().items_done(), 10u);
}

// This test verifies that one Report call applies each report on its own:
// a refused one does not undo the others.
TEST_F(SqliteStore, ReportAppliesEachReportOnItsOwn) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  pb::LeaseRef stale = a.subtasks[1].lease();
  stale.set_epoch(9);
  auto res = Ok(store().Report(
      w, {Succeeded(a.subtasks[0].lease()), Succeeded(stale), Stopped(a.subtasks[2].lease())},
      kNow));
  ASSERT_EQ(res.size(), 3u);
  EXPECT_TRUE(res[0].ok());
  EXPECT_EQ(res[1].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(res[2].code(), absl::StatusCode::kFailedPrecondition) << "Running cannot take Stopped";
  EXPECT_EQ(Get(t.id()).counts().succeeded(), 1u);
  EXPECT_EQ(Get(t.id()).counts().running(), 2u);
  ExpectCountersMatchRows(t.id());
}

// --------------------------------------------------------------- heartbeat

// This test verifies that a heartbeat renews the leases still held, reports
// the others as lost, and asks to stop the Terminating ones.
TEST_F(SqliteStore, HeartbeatRenewsHeldLeasesReportsLostAndStop) {
  pb::Task t = Start(Spec("sum", 0, 30, 3));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3, kNow, 1);
  ASSERT_EQ(a.subtasks.size(), 3u);
  ASSERT_EQ(a.tasks.size(), 1u);
  // Subtask 1 is handed back (expired in effect: reported), subtask 2 stops.
  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease())));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  EXPECT_EQ(stop.terminating, 2u);

  pb::HeartbeatRequest hb;
  hb.set_worker_id(w);
  hb.set_slots_in_use(3);
  hb.set_draining(true);
  for (const auto& l : a.subtasks) {
    auto* p = hb.add_subtasks();
    *p->mutable_lease() = l.lease();
    p->set_progress(4);
  }
  pb::LeaseRef task_ref;
  task_ref.set_task_id(t.id());
  task_ref.set_subtask_index(-1);
  task_ref.set_epoch(a.tasks[0].epoch());
  *hb.add_tasks() = task_ref;
  pb::LeaseRef bogus_task = task_ref;
  bogus_task.set_epoch(7);
  *hb.add_tasks() = bogus_task;

  auto r = Ok(store().Heartbeat(hb, kNow + 5000, kTtl));
  EXPECT_EQ(r.lease_expire_ms, kNow + 5000 + kTtl);
  ASSERT_EQ(r.lost.size(), 2u);
  EXPECT_EQ(r.lost[0].subtask_index(), 1);
  EXPECT_EQ(r.lost[1].subtask_index(), -1);
  EXPECT_EQ(r.lost[1].epoch(), 7u);
  EXPECT_EQ(r.stop.size(), 2u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].lease_expire_ms(), kNow + 5000 + kTtl);
  EXPECT_EQ(subs[0].progress(), 4u);
  // Renewed: the sweeper at the old expiry finds nothing.
  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 0u);
  EXPECT_EQ(e.task_leases_expired, 0u);
  auto workers = Ok(store().ListWorkers(kNow + 5000, 1000));
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_TRUE(workers[0].draining());
  EXPECT_EQ(workers[0].slots_in_use(), 3u);
  EXPECT_EQ(workers[0].last_heartbeat_ms(), kNow + 5000);
}

// ------------------------------------------------------------------ expiry

// This test verifies lease expiry: with attempts left back to Preparing (a
// failed attempt, with backoff), without to Error, and from Terminating to
// Terminated; expired task leases are freed; silent workers marked not alive.
TEST_F(SqliteStore, LeaseExpiryFollowsTheTable) {
  pb::TaskSpec spec = Spec("sum", 0, 20, 2);
  spec.mutable_policy()->set_max_attempts(2);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2, kNow, 1);
  ASSERT_EQ(a.subtasks.size(), 2u);

  auto e = Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 2u);
  EXPECT_EQ(e.task_leases_expired, 1u);
  EXPECT_EQ(e.workers_expired, 0u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::PREPARING);
  EXPECT_EQ(subs[0].worker(), "");
  EXPECT_EQ(subs[0].error(), "lease expired (worker " + w + ")");
  auto h = History(t.id(), 0);
  EXPECT_EQ(h.back().event(), "LeaseExpired");
  EXPECT_NE(h.back().reason().find("lease expired (worker " + w + ")"), std::string::npos);
  EXPECT_EQ(Get(t.id()).reconciler(), "");

  // Second attempts, then a cancel moves both to Terminating: an expiry there
  // ends them Terminated/CANCELLED (the worker vanished while stopping).
  int64_t later = kNow + 3 * 60'000;
  AcquireResult b = Acquire(w, 2, later);
  ASSERT_EQ(b.subtasks.size(), 2u);
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, later));
  Ok(store().StopSubtasks(t.id(), "", 0, "", later));
  e = Ok(store().ExpireLeases(later + kTtl + 1, 60'000));
  EXPECT_EQ(e.subtasks_expired, 2u);
  EXPECT_EQ(e.workers_expired, 1u);
  subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::TERMINATED);
  EXPECT_EQ(subs[0].outcome(), pb::CANCELLED);
  auto workers = Ok(store().ListWorkers(later + kTtl + 1, 60'000));
  EXPECT_FALSE(workers[0].alive());
  ExpectCountersMatchRows(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that a Running lease that expires on its last attempt
// ends in Error (LeaseExpiredPermanently).
TEST_F(SqliteStore, LeaseExpiryWithoutAttemptsLeftGoesToError) {
  pb::TaskSpec spec = Spec("sum", 0, 10, 1);
  spec.mutable_policy()->set_max_attempts(1);
  pb::Task t = Start(spec);
  std::string w = Worker({"sum"});
  ASSERT_EQ(Acquire(w, 1).subtasks.size(), 1u);
  Ok(store().ExpireLeases(kNow + kTtl + 1, 60'000));
  pb::Subtask s = Subtasks(t.id())[0];
  EXPECT_EQ(s.state(), pb::ERROR);
  EXPECT_EQ(s.outcome(), pb::FAILED);
  EXPECT_EQ(History(t.id(), 0).back().event(), "LeaseExpiredPermanently");
  ExpectCountersMatchRows(t.id());
}

// ------------------------------------------------------ stop and finalise

// This test verifies that StopSubtasks cancels waiting subtasks and asks the
// running ones to stop, that Finalized is refused until they stopped, and
// that both are refused outside Terminating.
// This test verifies that stopping more waiting subtasks than one step
// takes (kStopBatch) stops every one, in several writes, with exactly one
// history row each and the counters right, and that other writes go through
// between the steps (a submit made meanwhile is not held until the end).
TEST_F(SqliteStore, StopSubtasksOfABigTaskRunsInBoundedSteps) {
  const uint64_t n = 2 * orchard::store::SqliteStore::kStopBatch + 5;
  pb::Task t = Start(Spec("sum", 0, n, n));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, kNow, "user asked"));
  const int64_t revision_before = Count("SELECT value FROM meta WHERE key = 'revision'");
  auto r = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  EXPECT_EQ(r.stopped, n);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks WHERE state = 1"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM history WHERE event = 'CancelRequested' AND "
                  "subtask_index >= 0"),
            static_cast<int64_t>(n));
  EXPECT_EQ(Count("SELECT count(DISTINCT subtask_index) FROM history WHERE event = "
                  "'CancelRequested' AND subtask_index >= 0"),
            static_cast<int64_t>(n));
  // Three steps, each its own commit (each bumps the global revision).
  EXPECT_GE(Count("SELECT value FROM meta WHERE key = 'revision'") - revision_before, 3);
  pb::Task after = Ok(store().GetTask(t.id()));
  EXPECT_EQ(after.counts().preparing(), 0u);
  EXPECT_EQ(after.counts().cancelled(), n);
  EXPECT_EQ(after.counts().terminated(), n);
}

TEST_F(SqliteStore, StopSubtasksAndTheFinalizeGuard) {
  pb::Task t = Start(Spec("sum", 0, 40, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  EXPECT_EQ(store().StopSubtasks(t.id(), "", 0, "", kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease())));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested, kNow, "user asked"));
  auto r = Ok(store().StopSubtasks(t.id(), "", 0, "cancelled by user", kNow));
  EXPECT_EQ(r.stopped, 2u);
  EXPECT_EQ(r.terminating, 1u);
  auto again = Ok(store().StopSubtasks(t.id(), "", 0, "cancelled by user", kNow));
  EXPECT_EQ(again.stopped + again.terminating, 0u) << "idempotent";

  auto refused = Transition(t.id(), TaskEvent::kFinalized);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("terminating"), std::string::npos);
  Ok(ReportOne(w, Stopped(a.subtasks[1].lease())));
  TaskTransition fin;
  fin.task_id = t.id();
  fin.event = TaskEvent::kFinalized;
  fin.outcome = Outcome::kCancelled;
  fin.result_json = R"({"partial":true})";
  pb::Task done = Ok(store().TransitionTask(fin, kNow + 3));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::CANCELLED);
  EXPECT_EQ(done.result_json(), R"({"partial":true})");
  EXPECT_EQ(done.finish_time_ms(), kNow + 3);
  EXPECT_EQ(done.counts().cancelled(), 3u);
  EXPECT_EQ(done.counts().succeeded(), 1u);
  ExpectCountersMatchRows(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());
}

// This test verifies that AllSucceeded with then_finalize ends the task in
// one write, both transitions in its history, and that it is refused, with
// nothing changed, while a subtask is still active.
TEST_F(SqliteStore, AllSucceededThenFinalizeEndsTheTaskInOneWrite) {
  pb::Task t = Start(Spec("sum", 0, 20, 2));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 2);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r0")));
  TaskTransition end;
  end.task_id = t.id();
  end.event = TaskEvent::kAllSucceeded;
  end.then_finalize = true;
  end.outcome = Outcome::kSucceeded;
  end.reason = "all subtasks succeeded";
  end.result_json = R"({"sum":190})";
  const size_t rows = History(t.id(), -1).size();
  auto early = store().TransitionTask(end, kNow + 1);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition) << early.status();
  EXPECT_EQ(Get(t.id()).state(), pb::RUNNING) << "a refused write changed the task";
  EXPECT_EQ(History(t.id(), -1).size(), rows);

  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease(), "r1")));
  pb::Task done = Ok(store().TransitionTask(end, kNow + 2));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(done.result_json(), R"({"sum":190})");
  EXPECT_EQ(done.reason(), "all subtasks succeeded");
  auto h = History(t.id(), -1);
  ASSERT_EQ(h.size(), rows + 2);
  EXPECT_EQ(h[rows].event(), "AllSucceeded");
  EXPECT_EQ(h[rows].to(), pb::TERMINATING);
  EXPECT_EQ(h[rows + 1].event(), "Finalized");
  EXPECT_EQ(h[rows + 1].from(), pb::TERMINATING);
  EXPECT_EQ(h[rows + 1].to(), pb::TERMINATED);

  TaskTransition wrong;
  wrong.task_id = t.id();
  wrong.event = TaskEvent::kCancelRequested;
  wrong.then_finalize = true;
  EXPECT_EQ(store().TransitionTask(wrong, kNow + 3).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// This test verifies that every write that answers a task (submit, a
// reconcile lease, Planned with its first leases, AllSucceeded with its
// Finalized) answers it exactly as a read then finds it, counters and
// reconciler included: a reconciler acts on the answer without reading again.
TEST_F(SqliteStore, EveryWriteAnswersTheTaskAsStored) {
  using google::protobuf::util::MessageDifferencer;
  auto expect_stored = [&](const pb::Task& answered, const char* what) {
    pb::Task stored = Get(answered.id());
    EXPECT_TRUE(MessageDifferencer::Equals(answered, stored))
        << what << "\nanswered: " << answered.ShortDebugString()
        << "\nstored:   " << stored.ShortDebugString();
  };
  pb::TaskSpec spec = Spec("sum", 0, 30, 3);
  (*spec.mutable_labels())["team"] = "a";
  pb::Task t = Submit(spec);
  expect_stored(t, "submit");

  const std::string w = Worker({"sum"});
  AcquireResult lease = Acquire(w, 0, kNow + 1, 1);
  ASSERT_EQ(lease.tasks.size(), 1u);
  expect_stored(lease.tasks[0].task(), "reconcile lease");
  EXPECT_EQ(lease.tasks[0].task().reconciler(), w);

  TaskTransition plan;
  plan.task_id = t.id();
  plan.actor = w;
  plan.expected_version = lease.tasks[0].task().version();
  plan.lease_worker = w;
  plan.lease_epoch = lease.tasks[0].epoch();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  plan.lease_subtasks = 2;
  plan.lease_ttl_ms = kTtl;
  std::promise<std::vector<absl::StatusOr<TransitionResult>>> planned;
  store().TransitionTasksAsync({plan}, kNow + 2, [&](auto r) { planned.set_value(std::move(r)); });
  std::vector<absl::StatusOr<TransitionResult>> p = planned.get_future().get();
  ASSERT_EQ(p.size(), 1u);
  TransitionResult running = Ok(std::move(p[0]));
  ASSERT_EQ(running.subtasks.size(), 2u);
  EXPECT_EQ(running.task.counts().running(), 2u);
  EXPECT_EQ(running.task.counts().preparing(), 1u);
  expect_stored(running.task, "Planned with leases");

  AcquireResult rest = Acquire(w, 1, kNow + 3);
  ASSERT_EQ(rest.subtasks.size(), 1u);
  for (const auto& l : running.subtasks) Ok(ReportOne(w, Succeeded(l.lease()), kNow + 4));
  Ok(ReportOne(w, Succeeded(rest.subtasks[0].lease()), kNow + 4));

  TaskTransition end;
  end.task_id = t.id();
  end.actor = w;
  end.lease_worker = w;
  end.lease_epoch = lease.tasks[0].epoch();
  end.event = TaskEvent::kAllSucceeded;
  end.then_finalize = true;
  end.result_json = R"({"sum":435})";
  pb::Task done = Ok(store().TransitionTask(end, kNow + 5));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::SUCCEEDED);
  EXPECT_EQ(done.counts().succeeded(), 3u);
  EXPECT_EQ(done.reconciler(), "") << "a terminal task keeps no reconciler";
  expect_stored(done, "AllSucceeded then Finalized");
  ExpectCountersMatchRows(t.id());
}

// ------------------------------------------------------------------- retry

// This test verifies that a retry of a failed task re-runs only the subtasks
// that failed or were cancelled, from attempt 0, and that a succeeded one
// keeps its result.
TEST_F(SqliteStore, RetryResetsOnlyFailedAndCancelledSubtasks) {
  pb::Task t = Start(Spec("sum", 0, 100, 4));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r0")));
  Ok(ReportOne(w, FailedPermanently(a.subtasks[1].lease())));
  Ok(Transition(t.id(), TaskEvent::kBudgetExceeded));
  Ok(store().StopSubtasks(t.id(), "", 0, "budget", kNow));
  Ok(ReportOne(w, Stopped(a.subtasks[2].lease())));
  TaskTransition fail;
  fail.task_id = t.id();
  fail.event = TaskEvent::kFinalizedFailed;
  fail.reason = "budget";
  pb::Task failed = Ok(store().TransitionTask(fail, kNow));
  EXPECT_EQ(failed.state(), pb::ERROR);
  EXPECT_EQ(failed.outcome(), pb::FAILED);

  pb::Task retried = Ok(Transition(t.id(), TaskEvent::kRetryRequested, kNow + 1));
  EXPECT_EQ(retried.state(), pb::PREPARING);
  EXPECT_EQ(retried.generation(), 1u);
  EXPECT_EQ(retried.outcome(), pb::OUTCOME_UNSPECIFIED);
  EXPECT_EQ(retried.finish_time_ms(), 0);
  EXPECT_EQ(retried.counts().preparing(), 3u);
  EXPECT_EQ(retried.counts().succeeded(), 1u);
  EXPECT_EQ(retried.counts().items_done(), 25u);
  auto subs = Subtasks(t.id());
  EXPECT_EQ(subs[0].state(), pb::TERMINATED);
  EXPECT_EQ(subs[0].result_json(), "r0");
  for (int i = 1; i < 4; ++i) {
    EXPECT_EQ(subs[i].state(), pb::PREPARING) << i;
    EXPECT_EQ(subs[i].attempt(), 0u) << i;
  }
  ExpectCountersMatchRows(t.id());
  ExpectSubtaskHistoryIsLegal(t.id());

  // The retried task already has subtasks: a new plan is refused, none needed.
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  EXPECT_EQ(store().TransitionTask(plan, kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  plan.plan.reset();
  EXPECT_EQ(Ok(store().TransitionTask(plan, kNow)).state(), pb::RUNNING);
  EXPECT_EQ(Acquire(w, 10, kNow + 2).subtasks.size(), 3u);
}

// ------------------------------------------------------ task transitions

// This test verifies that a write based on an old version is refused ABORTED.
TEST_F(SqliteStore, VersionConflictIsAborted) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.expected_version = 5;
  tr.event = TaskEvent::kCancelRequested;
  auto r = store().TransitionTask(tr, kNow);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(r.status().message(), "task " + t.id() + " changed: version 1, expected 5");
  tr.expected_version = 1;
  EXPECT_EQ(Ok(store().TransitionTask(tr, kNow)).version(), 2u);
}

// This test verifies that a batch of transitions applies each on its own, in
// order: the refused ones (a stale version, an edge the table lacks, an
// unknown task) change nothing, the others are written with their history,
// and the answers line up with the requests.
TEST_F(SqliteStore, TransitionTasksAppliesEachOnItsOwn) {
  pb::Task a = Submit(Spec("sum", 0, 10, 1));
  pb::Task b = Submit(Spec("sum", 0, 10, 2));
  pb::Task c = Submit(Spec("sum", 0, 10, 1));
  const int64_t history = Count("SELECT count(*) FROM history");
  std::vector<TaskTransition> ts(4);
  ts[0].task_id = a.id();
  ts[0].event = TaskEvent::kPlanned;
  ts[0].plan.emplace();
  ts[0].plan->set_uniform(true);
  ts[1].task_id = b.id();
  ts[1].expected_version = b.version() + 7;  // stale
  ts[1].event = TaskEvent::kCancelRequested;
  ts[2].task_id = c.id();
  ts[2].event = TaskEvent::kFinalized;  // no such edge from Preparing
  ts[3].task_id = "t-missing";
  ts[3].event = TaskEvent::kCancelRequested;
  std::vector<absl::StatusOr<pb::Task>> r = store().TransitionTasks(ts, kNow);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  EXPECT_EQ(r[0]->id(), a.id());
  EXPECT_EQ(r[0]->state(), pb::RUNNING);
  EXPECT_EQ(r[0]->counts().total(), 1u);
  EXPECT_EQ(r[1].status().code(), absl::StatusCode::kAborted) << r[1].status();
  EXPECT_EQ(r[2].status().code(), absl::StatusCode::kFailedPrecondition) << r[2].status();
  EXPECT_EQ(r[3].status().code(), absl::StatusCode::kNotFound) << r[3].status();
  EXPECT_EQ(Get(b.id()).version(), b.version());
  EXPECT_EQ(Get(c.id()).state(), pb::PREPARING);
  // The one written: its Planned row (new subtasks start without one).
  EXPECT_EQ(Count("SELECT count(*) FROM history"), history + 1);
  ExpectCountersMatchRows(a.id());
  EXPECT_TRUE(store().TransitionTasks({}, kNow).empty());
}

// This test verifies that an edge the table does not have is refused and
// writes nothing: no version, no revision, no history.
TEST_F(SqliteStore, IllegalTransitionIsRefusedAndWritesNothing) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  int64_t history = Count("SELECT count(*) FROM history");
  auto r = Transition(t.id(), TaskEvent::kFinalized);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find(t.id()), std::string::npos);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.version(), t.version());
  EXPECT_EQ(after.revision(), t.revision());
  EXPECT_EQ(after.state(), pb::PREPARING);
  EXPECT_EQ(Count("SELECT count(*) FROM history"), history);
  EXPECT_EQ(Transition("t-missing", TaskEvent::kPlanned).status().code(),
            absl::StatusCode::kNotFound);
}

// This test verifies that Invalid fails the task with its reason.
TEST_F(SqliteStore, InvalidFailsTheTaskWithItsReason) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  TaskTransition tr;
  tr.task_id = t.id();
  tr.event = TaskEvent::kInvalid;
  tr.reason = "params: x must be a string";
  pb::Task e = Ok(store().TransitionTask(tr, kNow + 9));
  EXPECT_EQ(e.state(), pb::ERROR);
  EXPECT_EQ(e.outcome(), pb::FAILED);
  EXPECT_EQ(e.reason(), "params: x must be a string");
  EXPECT_EQ(e.finish_time_ms(), kNow + 9);
}

// This test verifies that a task cancelled before it was planned finalises
// as CANCELLED, not SUCCEEDED, when the reconciler names no outcome.
TEST_F(SqliteStore, FinalizeWithoutSubtasksIsCancelled) {
  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "", kNow));
  EXPECT_EQ(stop.stopped + stop.terminating, 0u);
  pb::Task done = Ok(Transition(t.id(), TaskEvent::kFinalized));
  EXPECT_EQ(done.state(), pb::TERMINATED);
  EXPECT_EQ(done.outcome(), pb::CANCELLED);
  TaskTransition wrong;
  wrong.task_id = t.id();
  wrong.event = TaskEvent::kRetryRequested;
  EXPECT_EQ(store().TransitionTask(wrong, kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// This test verifies that a report naming a subtask that does not exist, or
// carrying no outcome, is refused on its own.
TEST_F(SqliteStore, MalformedReportsAreRefused) {
  pb::Task t = Start(Spec("sum", 0, 10, 1));
  std::string w = Worker({"sum"});
  pb::LeaseRef ref;
  ref.set_task_id(t.id());
  ref.set_subtask_index(5);
  ref.set_epoch(1);
  EXPECT_EQ(ReportOne(w, Succeeded(ref)).code(), absl::StatusCode::kNotFound);
  pb::SubtaskReport empty;
  *empty.mutable_lease() = ref;
  EXPECT_EQ(ReportOne(w, empty).code(), absl::StatusCode::kInvalidArgument);
}

// This test verifies that counter changes move the task's revision (watchers
// see progress) but not its version (the reconciler's CAS), and that
// TasksChangedAfter returns changes in revision order.
TEST_F(SqliteStore, CounterChangesMoveRevisionButNotVersion) {
  pb::Task t = Start(Spec("sum", 0, 10, 2));
  pb::Task other = Submit(Spec("sum", 0, 10, 2));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 1);
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.version(), t.version());
  EXPECT_GT(after.revision(), t.revision());
  EXPECT_GT(after.revision(), other.revision());
  auto changed = Ok(store().TasksChangedAfter(other.revision(), "", 100));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].id(), t.id());
  auto all = Ok(store().TasksChangedAfter(0, "", 100));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), other.id());
  EXPECT_EQ(Ok(store().TasksChangedAfter(0, other.id(), 100)).size(), 1u);
  EXPECT_TRUE(Ok(store().TasksChangedAfter(after.revision(), t.id(), 100)).empty());
}

// ----------------------------------------------------------------- listing

// This test verifies ListTasks: newest first, filters by state, kind and
// labels, and pages that together give every task once.
TEST_F(SqliteStore, ListTasksNewestFirstWithFiltersAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    pb::TaskSpec s = Spec(i % 2 == 0 ? "even" : "odd", 0, 10, 1);
    (*s.mutable_labels())["team"] = i % 3 == 0 ? "a" : "b";
    (*s.mutable_labels())["env"] = "prod";
    ids.push_back(Submit(s, kNow + i).id());
  }
  Ok(Transition(ids[24], TaskEvent::kCancelRequested));
  TaskFilter f;
  f.page_size = 10;
  std::vector<std::string> seen;
  int pages = 0;
  do {
    auto page = Ok(store().ListTasks(f));
    for (const auto& t : page.tasks) seen.push_back(t.id());
    f.page_token = page.next_page_token;
    ++pages;
  } while (!f.page_token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), ids[24]);
  EXPECT_EQ(seen.back(), ids[0]);

  TaskFilter by_kind;
  by_kind.kind = "even";
  by_kind.labels = {{"team", "a"}, {"env", "prod"}};
  auto page = Ok(store().ListTasks(by_kind));
  // even and multiple of 3: 0, 6, 12, 18, 24
  ASSERT_EQ(page.tasks.size(), 5u);
  EXPECT_EQ(page.tasks[0].id(), ids[24]);
  TaskFilter by_state;
  by_state.states = {State::kTerminating};
  page = Ok(store().ListTasks(by_state));
  ASSERT_EQ(page.tasks.size(), 1u);
  EXPECT_EQ(page.tasks[0].id(), ids[24]);
  TaskFilter bad;
  bad.page_token = "garbage";
  EXPECT_EQ(store().ListTasks(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// This test verifies ListSubtasks (by index, state filter, pages) and
// GetHistory (oldest first, per subtask or task, pages).
TEST_F(SqliteStore, ListSubtasksAndHistoryPage) {
  pb::Task t = Start(Spec("sum", 0, 25, 25));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 5);
  SubtaskFilter f;
  f.task_id = t.id();
  f.page_size = 10;
  std::vector<uint64_t> seen;
  do {
    auto page = Ok(store().ListSubtasks(f));
    for (const auto& s : page.subtasks) seen.push_back(s.index());
    f.page_token = page.next_page_token;
  } while (!f.page_token.empty());
  ASSERT_EQ(seen.size(), 25u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  SubtaskFilter running;
  running.task_id = t.id();
  running.states = {State::kRunning};
  EXPECT_EQ(Ok(store().ListSubtasks(running)).subtasks.size(), 5u);
  SubtaskFilter missing;
  missing.task_id = "t-missing";
  EXPECT_EQ(store().ListSubtasks(missing).status().code(), absl::StatusCode::kNotFound);

  HistoryFilter h;
  h.task_id = t.id();
  h.page_size = 3;
  std::vector<std::string> events;
  do {
    auto page = Ok(store().GetHistory(h));
    EXPECT_LE(page.entries.size(), 3u);
    for (const auto& e : page.entries) events.push_back(e.event());
    h.page_token = page.next_page_token;
  } while (!h.page_token.empty());
  ASSERT_EQ(events.size(), 7u);  // Created, Planned, 5 x Leased
  EXPECT_EQ(events[0], "Created");
  EXPECT_EQ(events[1], "Planned");
  EXPECT_EQ(events[6], "Leased");
  auto one = History(t.id(), 3);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].subtask_index(), 3);
  EXPECT_EQ(one[0].attempt(), 1u);
  EXPECT_EQ(one[0].actor(), w);
}

// ----------------------------------------------------------------- workers

// This test verifies worker registration, listing, live kinds and that
// deregistering frees its reconcile leases.
TEST_F(SqliteStore, WorkersRegisterListAndLiveKinds) {
  std::string w1 = Ok(store().RegisterWorker("n1", {"sum", "noop"}, 4, kNow));
  std::string w2 = Ok(store().RegisterWorker("n2", {"exec"}, 2, kNow - 120'000));
  EXPECT_EQ(w1.rfind("w-", 0), 0u);
  auto workers = Ok(store().ListWorkers(kNow, 30'000));
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[1].id(), w1);
  EXPECT_TRUE(workers[1].alive());
  EXPECT_FALSE(workers[0].alive());
  EXPECT_EQ(workers[1].kinds_size(), 2);
  EXPECT_EQ(workers[1].slots(), 4u);
  EXPECT_EQ(Ok(store().LiveKinds(kNow, 30'000)), (std::vector<std::string>{"noop", "sum"}));

  pb::Task t = Submit(Spec("sum", 0, 10, 1));
  ASSERT_EQ(Acquire(w1, 0, kNow, 1).tasks.size(), 1u);
  Ok(store().DeregisterWorker(w1, kNow));
  Ok(store().DeregisterWorker(w1, kNow));  // idempotent
  EXPECT_EQ(Get(t.id()).reconciler(), "");
  EXPECT_EQ(Ok(store().ListWorkers(kNow, 30'000)).size(), 1u);
  EXPECT_TRUE(Ok(store().LiveKinds(kNow, 30'000)).empty());
  Ok(store().Ping());
}

// ---------------------------------------------------------- storage faults

// This test verifies that when a COMMIT fails every write of that batch gets
// UNAVAILABLE, nothing of it is stored, and the store works afterwards.
TEST_F(SqliteStore, FailedCommitFailsTheBatchAndTheStoreRecovers) {
  pb::Task keep = Submit(Spec("sum", 0, 10, 1));
  store().FailNextCommitsForTesting(1);
  auto lost = store().CreateTask(Spec("sum", 0, 10, 1), kNow);
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(lost.status().message().find("commit failed"), std::string::npos) << lost.status();
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), 1);
  pb::Task after = Submit(Spec("sum", 0, 10, 1));
  EXPECT_GT(after.revision(), keep.revision());
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), 2);
  EXPECT_EQ(Count("SELECT value FROM meta WHERE key = 'revision'"),
            static_cast<int64_t>(after.revision()));
}

// This test verifies that a full disk (simulated with max_page_count) fails
// the write with UNAVAILABLE and leaves the task unplanned, and that the same
// write succeeds once there is room again.
TEST_F(SqliteStore, FullDiskFailsTheWriteAndTheStoreRecovers) {
  pb::Task t = Submit(Spec("sum", 0, 200'000, 200'000));
  int64_t pages = Count("PRAGMA page_count");
  Ok(store().ExecForTesting("PRAGMA max_page_count = " + std::to_string(pages + 20)));
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  auto full = store().TransitionTask(plan, kNow);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kUnavailable) << full.status();
  EXPECT_EQ(Get(t.id()).state(), pb::PREPARING);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks"), 0);
  Ok(store().ExecForTesting("PRAGMA max_page_count = 1073741823"));
  pb::Task planned = Ok(store().TransitionTask(plan, kNow));
  EXPECT_EQ(planned.counts().total(), 200'000u);
  Ok(store().Ping());
}

// --------------------------------------------------------------- durability

// This test verifies that closing and reopening the file keeps tasks,
// subtasks, history, workers and the revision counter.
TEST_F(SqliteStore, ReopeningTheFileKeepsEverything) {
  pb::Task t = Start(Spec("sum", 0, 100, 10));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, 3);
  Ok(ReportOne(w, Succeeded(a.subtasks[0].lease(), "r")));
  pb::Task before = Get(t.id());
  auto subs = Subtasks(t.id());
  auto hist = History(t.id(), std::nullopt);
  Reopen();
  EXPECT_EQ(Get(t.id()).SerializeAsString(), before.SerializeAsString());
  auto subs2 = Subtasks(t.id());
  ASSERT_EQ(subs2.size(), subs.size());
  for (size_t i = 0; i < subs.size(); ++i) {
    EXPECT_EQ(subs2[i].SerializeAsString(), subs[i].SerializeAsString());
  }
  EXPECT_EQ(History(t.id(), std::nullopt).size(), hist.size());
  EXPECT_EQ(Ok(store().ListWorkers(kNow, 1000)).size(), 1u);
  // The lease held before the restart is still honoured.
  Ok(ReportOne(w, Succeeded(a.subtasks[1].lease())));
  pb::Task later = Get(t.id());
  EXPECT_GT(later.revision(), before.revision());
  EXPECT_EQ(later.counts().succeeded(), 2u);
}

// --------------------------------------------------------- invariants

// This test verifies that after a long random sequence of operations (acquire,
// each kind of report, heartbeat, expiry, cancel and stop) on several tasks,
// every counter equals the real count of rows, and every subtask's history is
// a path through the table.
TEST_F(SqliteStore, CountersMatchRealCountsAfterRandomOperations) {
  std::mt19937 rng(12345);
  std::vector<std::string> tasks;
  for (int i = 0; i < 4; ++i) {
    pb::TaskSpec s = Spec("sum", 0, 1000, 37 + i);
    s.mutable_policy()->set_max_attempts(1 + i);
    s.mutable_policy()->set_parallelism(i == 0 ? 5 : 0);
    s.mutable_policy()->set_backoff_initial_ms(10);
    s.mutable_policy()->set_backoff_max_ms(50);
    tasks.push_back(Start(s).id());
  }
  std::vector<std::string> workers = {Worker({"sum"}), Worker({"sum"})};
  std::vector<std::pair<std::string, pb::LeaseRef>> held;
  int64_t now = kNow;
  for (int step = 0; step < 400; ++step) {
    now += 1 + rng() % 400;
    const std::string& w = workers[rng() % workers.size()];
    switch (rng() % 7) {
      case 0:
      case 1: {
        for (auto& l : Acquire(w, 1 + rng() % 6, now).subtasks) held.emplace_back(w, l.lease());
        break;
      }
      case 2:
      case 3:
      case 4: {
        if (held.empty()) break;
        size_t k = rng() % held.size();
        auto [holder, lease] = held[k];
        held.erase(held.begin() + static_cast<long>(k));
        // Sometimes the wrong worker or a stale epoch: must be refused harmlessly.
        std::string who = rng() % 10 == 0 ? workers[0] : holder;
        pb::SubtaskReport r;
        switch (rng() % 4) {
          case 0:
            r = Failed(lease);
            break;
          case 1:
            r = FailedPermanently(lease);
            break;
          case 2:
            r = Stopped(lease);
            break;
          default:
            r = Succeeded(lease);
            break;
        }
        (void)ReportOne(who, r, now);
        break;
      }
      case 5:
        (void)store().ExpireLeases(now - 2 * kTtl + static_cast<int64_t>(rng() % kTtl), 60'000);
        break;
      case 6: {
        const std::string& id = tasks[rng() % tasks.size()];
        if (Get(id).state() == pb::RUNNING && rng() % 4 == 0) {
          Ok(Transition(id, TaskEvent::kCancelRequested, now));
          Ok(store().StopSubtasks(id, "", 0, "", now));
        }
        break;
      }
    }
  }
  for (const auto& id : tasks) {
    ExpectCountersMatchRows(id);
    ExpectSubtaskHistoryIsLegal(id);
  }
}

// ------------------------------------------------------------ performance

// This test verifies that concurrent reports from many threads (folded into
// group commits) are all applied exactly once: the counters end exact.
TEST_F(SqliteStore, GroupCommitFromManyThreadsKeepsExactCounters) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  constexpr int kTotal = kThreads * kPerThread;
  pb::Task t = Start(Spec("sum", 0, kTotal * 10, kTotal));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, kTotal);
  ASSERT_EQ(a.subtasks.size(), static_cast<size_t>(kTotal));
  std::atomic<int> failures{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kPerThread; ++j) {
        const auto& l = a.subtasks[static_cast<size_t>(i * kPerThread + j)];
        auto r = store().Report(w, {Succeeded(l.lease(), "{}")}, kNow + 1);
        if (!r.ok() || !(*r)[0].ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] %d reports from %d threads in %.3f s: %.0f reports/s\n", kTotal,
              kThreads, secs, kTotal / secs);
  EXPECT_EQ(failures.load(), 0);
  pb::Task done = Get(t.id());
  EXPECT_EQ(done.counts().succeeded(), static_cast<uint64_t>(kTotal));
  EXPECT_EQ(done.counts().running(), 0u);
  EXPECT_EQ(done.counts().items_done(), static_cast<uint64_t>(kTotal * 10));
  ExpectCountersMatchRows(t.id());
  EXPECT_EQ(Count("SELECT count(*) FROM history WHERE event = 'Succeeded'"), kTotal);
}

// This test verifies the non-blocking writes that the server's hot calls
// use: each callback runs exactly once, after its write committed (what it
// returns can be read back), and may start another write without deadlock.
TEST_F(SqliteStore, AsyncWritesAnswerOnceAfterTheirCommit) {
  constexpr int kTasks = 50;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> answered;  // task id -> times its callback ran
  int errors = 0;
  int chained = 0;
  auto record = [&](const absl::StatusOr<orchard::store::SubmitResult>& r) {
    std::lock_guard lock(mu);
    if (!r.ok()) {
      ++errors;
    } else {
      ++answered[r->task.id()];
    }
    cv.notify_all();
  };
  for (int i = 0; i < kTasks; ++i) {
    store().CreateTaskAsync(Spec("sum", 0, 10, 1), kNow, [&, i](auto r) {
      // Committed before the callback: a reader sees it at once.
      if (r.ok() && !store().GetTask(r->task.id()).ok()) {
        std::lock_guard lock(mu);
        ++errors;
      }
      if (i == 0) {
        // A write started from a callback (the writer's own thread).
        store().CreateTaskAsync(Spec("sum", 0, 10, 1), kNow, [&](auto chained_r) {
          {
            std::lock_guard lock(mu);
            ++chained;
          }
          record(chained_r);
        });
      }
      record(r);
    });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] {
    return answered.size() + static_cast<size_t>(errors) >= kTasks + 1;
  }));
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(chained, 1);
  EXPECT_EQ(answered.size(), static_cast<size_t>(kTasks + 1));
  for (const auto& [id, times] : answered) EXPECT_EQ(times, 1) << id;
  lock.unlock();
  EXPECT_EQ(Count("SELECT count(*) FROM tasks"), kTasks + 1);
}

// This test verifies that answering a batch's callers does not hold up the
// next batch: while the first write's callback is still running, a later
// write commits; and callers are still answered in commit order.
TEST_F(SqliteStore, TheNextBatchCommitsWhileTheLastOneIsAnswered) {
  namespace sq = orchard::store::sqlite;
  const std::string path = (dir_ / "writer.db").string();
  auto db = Ok(sq::Connection::Open(path, true));
  Ok(db->Exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
              "INSERT INTO meta VALUES ('revision', 0);"
              "CREATE TABLE t(v INTEGER NOT NULL)"));
  sq::GroupCommitWriter writer(std::move(db), nullptr, 0, 64);
  std::promise<void> first_ran, second_ran;
  std::promise<bool> first_saw_second;
  std::mutex mu;
  std::vector<int> answered;
  auto insert = [](int v, std::promise<void>* ran) {
    return [v, ran](sq::WriteCtx& ctx) -> absl::Status {
      auto q = ctx.db.Prepare("INSERT INTO t(v) VALUES (?1)");
      if (!q.ok()) return q.status();
      (*q)->BindInt(1, v);
      absl::Status s = (*q)->Run();
      ran->set_value();
      return s;
    };
  };
  std::vector<sq::WriteOp> first;
  first.push_back(insert(1, &first_ran));
  writer.RunAllAsync(std::move(first), [&](std::vector<absl::Status> s) {
    // Blocks this batch's answers until the next batch's op has run (or
    // 30 s pass, when answering would hold the writer).
    bool saw =
        second_ran.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    {
      std::lock_guard lock(mu);
      answered.push_back(s[0].ok() ? 1 : -1);
    }
    first_saw_second.set_value(saw);
  });
  // The first op ran, so its batch was taken: the second is a batch of its own.
  first_ran.get_future().wait();
  std::promise<void> second_answered;
  std::vector<sq::WriteOp> second;
  second.push_back(insert(2, &second_ran));
  writer.RunAllAsync(std::move(second), [&](std::vector<absl::Status> s) {
    {
      std::lock_guard lock(mu);
      answered.push_back(s[0].ok() ? 2 : -2);
    }
    second_answered.set_value();
  });
  EXPECT_TRUE(first_saw_second.get_future().get());
  ASSERT_EQ(second_answered.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  std::lock_guard lock(mu);
  EXPECT_EQ(answered, (std::vector<int>{1, 2}));
}

// This test verifies the same with reports batched as workers send them (ten
// per call): each call is one write op with a savepoint per report.
TEST_F(SqliteStore, GroupCommitOfBatchedReportsKeepsExactCounters) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 100;
  constexpr int kPerCall = 10;
  constexpr int kTotal = kThreads * kCalls * kPerCall;
  pb::Task t = Start(Spec("sum", 0, kTotal, kTotal));
  std::string w = Worker({"sum"});
  AcquireResult a = Acquire(w, kTotal);
  ASSERT_EQ(a.subtasks.size(), static_cast<size_t>(kTotal));
  std::atomic<int> failures{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int c = 0; c < kCalls; ++c) {
        std::vector<pb::SubtaskReport> reports;
        for (int k = 0; k < kPerCall; ++k) {
          reports.push_back(
              Succeeded(a.subtasks[static_cast<size_t>((i * kCalls + c) * kPerCall + k)].lease()));
        }
        auto r = store().Report(w, reports, kNow + 1);
        if (!r.ok()) {
          failures += kPerCall;
          continue;
        }
        for (const auto& s : *r) failures += s.ok() ? 0 : 1;
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] %d reports, %d per call, from %d threads in %.3f s: %.0f reports/s\n",
              kTotal, kPerCall, kThreads, secs, kTotal / secs);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Get(t.id()).counts().succeeded(), static_cast<uint64_t>(kTotal));
  ExpectCountersMatchRows(t.id());
}

// This test verifies that a task of a million subtasks is planned in one
// write, and prints how long it took.
TEST_F(SqliteStore, PlanningAMillionSubtasks) {
  pb::Task t = Submit(Spec("sum", 0, 10'000'000, 1'000'000));
  TaskTransition plan;
  plan.task_id = t.id();
  plan.event = TaskEvent::kPlanned;
  plan.plan.emplace();
  plan.plan->set_uniform(true);
  auto start = std::chrono::steady_clock::now();
  pb::Task planned = Ok(store().TransitionTask(plan, kNow));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] planned 1,000,000 subtasks in %.3f s\n", secs);
  EXPECT_EQ(planned.counts().total(), 1'000'000u);
  EXPECT_EQ(planned.counts().preparing(), 1'000'000u);
  EXPECT_EQ(planned.counts().items_total(), 10'000'000u);
  EXPECT_EQ(Count("SELECT count(*) FROM subtasks"), 1'000'000);
  EXPECT_EQ(Count("SELECT count(*) FROM history"), 2);
  // Leasing from the middle of a million rows stays cheap.
  std::string w = Worker({"sum"});
  start = std::chrono::steady_clock::now();
  AcquireResult a = Acquire(w, 100);
  secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] acquired 100 of them in %.4f s\n", secs);
  EXPECT_EQ(a.subtasks.size(), 100u);
  EXPECT_EQ(a.subtasks[99].lease().subtask_index(), 99);
  // Cancelling it moves every waiting subtask (a history row each).
  Ok(Transition(t.id(), TaskEvent::kCancelRequested));
  start = std::chrono::steady_clock::now();
  auto stop = Ok(store().StopSubtasks(t.id(), "", 0, "cancel", kNow));
  secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] stopped 1,000,000 subtasks in %.3f s\n", secs);
  EXPECT_EQ(stop.stopped, 999'900u);
  EXPECT_EQ(stop.terminating, 100u);
  pb::Task stopped = Get(t.id());
  EXPECT_EQ(stopped.counts().cancelled(), 999'900u);
  EXPECT_EQ(stopped.counts().terminating(), 100u);
  EXPECT_EQ(stopped.counts().preparing(), 0u);
}

}  // namespace
