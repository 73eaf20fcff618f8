#include "server/waiting.h"

#include "common/strcat.h"
#include "common/util.h"

namespace orchard::server {

namespace pb = ::orchard::v1;

namespace {
constexpr int64_t kLiveKindsCacheMs = 500;
}  // namespace

std::set<std::string> WaitExplainer::Refresh() {
  const int64_t now = clock_->NowMs();
  if (live_kinds_at_ < 0 || now - live_kinds_at_ > kLiveKindsCacheMs) {
    auto kinds = store_->LiveKinds(now, alive_window_ms_);
    if (kinds.ok()) {
      live_kinds_ = std::set<std::string>(kinds->begin(), kinds->end());
      live_kinds_at_ = now;
    }
  }
  return live_kinds_;
}

std::vector<std::string> WaitExplainer::LiveKinds() {
  std::lock_guard lock(mu_);
  std::set<std::string> kinds = Refresh();
  return {kinds.begin(), kinds.end()};
}

void WaitExplainer::Annotate(pb::Task& task) {
  const bool preparing = task.state() == pb::PREPARING && task.reason().empty();
  // A Terminating task's stored reason is kept; the server's own steps
  // already say that no worker runs the kind.
  const bool terminating = task.state() == pb::TERMINATING &&
                           task.reason().find("no live worker runs kind") == std::string::npos;
  if (!preparing && !terminating) return;
  std::set<std::string> kinds;
  {
    std::lock_guard lock(mu_);
    kinds = Refresh();
  }
  if (kinds.count(task.spec().kind()) > 0) {
    if (preparing) task.set_reason("waiting for a worker to plan it");
    return;
  }
  std::string why = NoWorkerRunsKind(task.spec().kind(), {kinds.begin(), kinds.end()});
  if (terminating) {
    why = Cat(task.reason().empty() ? "terminating" : task.reason(), "; ", why,
              "; the server ends it");
  }
  task.set_reason(std::move(why));
}

}  // namespace orchard::server
