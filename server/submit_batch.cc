// SubmitTasks and GetServerInfo; see submit_batch.h.
#include "server/submit_batch.h"

#include <atomic>
#include <memory>

#include "proto/rpc_status.h"
#include "orchard/version.h"
#include "server/validate.h"

namespace orchard::server {

namespace pb = ::orchard::v1;

void FillServerInfo(const std::string& store_name, pb::ServerInfo* info) {
  info->set_version(ORCHARD_VERSION);
  info->set_git_commit(ORCHARD_GIT_COMMIT);
  info->set_api_version(ORCHARD_API_VERSION);
  info->set_store(store_name);
  for (const char* f : {"server_info", "submit_tasks", "bad_request_details", "health_per_service",
                        "watch_resume"}) {
    info->add_features(f);
  }
  info->set_max_submit_batch(kMaxSubmitBatch);
}

namespace {

void SetRefused(pb::SubmitTaskResult* out, const absl::Status& s) {
  SetItemStatus(out, s);
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    const std::string message(s.message());
    out->set_field(std::string(FieldOf(message)));
  }
}

}  // namespace

void SubmitBatch(store::Store* store, int64_t now_ms, const pb::SubmitTasksRequest& req,
                 pb::SubmitTasksResponse* resp,
                 std::function<void(pb::SubmitTaskResult&)> on_stored,
                 std::function<void(const absl::Status&)> done) {
  const int n = req.specs_size();
  // Every result exists before any store callback runs, so each callback
  // writes only its own element; the last one to finish answers the call.
  for (int i = 0; i < n; ++i) resp->add_results();
  struct State {
    std::atomic<int> pending;
    std::function<void(pb::SubmitTaskResult&)> on_stored;
    std::function<void(const absl::Status&)> done;
  };
  auto state = std::make_shared<State>();
  state->pending.store(n + 1);  // +1: released after the loop, so done runs once, last
  state->on_stored = std::move(on_stored);
  state->done = std::move(done);
  auto release = [state] {
    if (state->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      state->done(absl::OkStatus());
    }
  };
  for (int i = 0; i < n; ++i) {
    pb::SubmitTaskResult* out = resp->mutable_results(i);
    pb::TaskSpec spec = req.specs(i);
    if (auto s = ValidateAndDefaultSpec(spec); !s.ok()) {
      SetRefused(out, s);
      release();
      continue;
    }
    store->CreateTaskAsync(spec, now_ms,
                           [state, out, release](absl::StatusOr<store::SubmitResult> r) {
                             if (!r.ok()) {
                               SetRefused(out, r.status());
                             } else {
                               *out->mutable_task() = std::move(r->task);
                               out->set_created(r->created);
                               state->on_stored(*out);
                             }
                             release();
                           });
  }
  release();
}

}  // namespace orchard::server
