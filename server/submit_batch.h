// TaskService's client-facing additions that the service edge delegates
// here: SubmitTasks (many submits in one call) and GetServerInfo. Kept out
// of service.cc so that file only wires them.
//
// Thread-safety: SubmitBatch may be called from any thread; its `done` runs
// once, on the thread of the last store answer.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "orchard/v1/orchard.pb.h"
#include "server/store/store.h"

namespace orchard::server {

// The most specs one SubmitTasks call takes (documented in the proto and
// README); more is INVALID_ARGUMENT naming `specs`.
inline constexpr int kMaxSubmitBatch = 1000;

// What GetServerInfo answers: the build's version and commit, the API level,
// the store and the features a client may test for.
void FillServerInfo(const std::string& store_name, v1::ServerInfo* info);

// Validates each spec as Submit does and stores the valid ones (the writer
// commits them together); `resp` gets one result per spec, in order: the
// task, or the code, message and field of its refusal. `on_stored` runs for
// each accepted spec (created or matched by request_id); `done` runs once
// after every spec is answered. REQUIRES: specs_size() <= kMaxSubmitBatch.
void SubmitBatch(store::Store* store, int64_t now_ms, const v1::SubmitTasksRequest& req,
                 v1::SubmitTasksResponse* resp,
                 std::function<void(v1::SubmitTaskResult&)> on_stored,
                 std::function<void(const absl::Status&)> done);

}  // namespace orchard::server
