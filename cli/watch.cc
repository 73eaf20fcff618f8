// `orchardctl watch`; see watch.h.
#include "cli/watch.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "cli/client.h"
#include "cli/exit_codes.h"
#include "cli/format.h"
#include "common/backoff.h"
#include "common/strcat.h"
#include "common/util.h"

namespace orchard::cli {

namespace {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int TerminalColumns() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 100;
}

// Codes after which trying again cannot help: the task is gone, the request
// is wrong, or we are not allowed. Everything else (UNAVAILABLE, a stream
// reset, INTERNAL from a dying server, ...) is worth a reconnect.
bool Permanent(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

std::string CodeAndMessage(const absl::Status& s) {
  return Cat(absl::StatusCodeToString(s.code()), ": ", std::string(s.message()));
}

// What the user sees: a bar redrawn in place, or one line per change.
class Display {
 public:
  Display(bool tty, bool json) : tty_(tty && !json), json_(json) {}

  void Show(const v1::Task& t) {
    if (json_) {
      std::string line = TaskToJson(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (line == last_key_) return;
      last_key_ = line;
      std::cout << line << std::endl;
      return;
    }
    const v1::SubtaskCounts& c = t.counts();
    bool by_items = c.items_total() > 0;
    uint64_t done = by_items ? c.items_done() : c.succeeded();
    uint64_t total = by_items ? c.items_total() : c.total();
    int64_t now = SteadyNowMs();
    rate_.Observe(now, done);
    ProgressView view{rate_.PerSecond(), rate_.EtaSeconds(total > done ? total - done : 0)};
    if (tty_) {
      // Every update is drawn: the server already paces the stream, and a
      // skipped update could leave a stale bar while the task is quiet.
      Draw(ProgressLine(t, view, 30));
    } else {
      // The same counts give the same line; throughput alone is no change.
      std::string key = ProgressLine(t, ProgressView{}, 0);
      if (key == last_key_) return;
      last_key_ = key;
      std::cout << ProgressLine(t, view, 0) << std::endl;
    }
  }

  // Prints a diagnostic on stderr without tearing the bar.
  void Note(const std::string& text) {
    if (tty_ && drawn_) std::cout << "\r\033[K" << std::flush;
    std::cerr << "orchardctl: " << text << std::endl;
    if (tty_ && drawn_) std::cout << line_ << std::flush;
  }

  // Shows the final state, then the closing line.
  void Finish(const v1::Task& t) {
    if (json_) return Show(t);
    if (tty_) {
      Draw(ProgressLine(t, ProgressView{rate_.PerSecond(), std::nullopt}, 30));
      std::cout << "\n";
    } else {
      Show(t);
    }
    std::cout << FinalLine(t) << std::endl;
  }

  // Ends the bar's line before an error message.
  void Abandon() {
    if (tty_ && drawn_) std::cout << "\n" << std::flush;
  }

 private:
  void Draw(std::string line) {
    size_t cols = static_cast<size_t>(TerminalColumns());
    if (line.size() >= cols) line.resize(cols - 1);  // a wrapped line cannot be redrawn
    line_ = line;
    std::cout << "\r\033[K" << line << std::flush;
    drawn_ = true;
  }

  bool tty_;
  bool json_;
  RateEstimator rate_;
  bool drawn_ = false;
  std::string line_;
  std::string last_key_;
};

}  // namespace

int RunWatch(Client& client, const WatchOptions& opts) {
  Display display(opts.tty, opts.json);
  Backoff backoff(BackoffPolicy{.initial_ms = 250, .max_ms = 5'000});
  uint64_t last_revision = 0;
  bool seen = false;
  std::optional<v1::Task> final_task;
  int64_t last_contact = SteadyNowMs();

  // Takes one observation of the task (from the level read or the stream);
  // false when it has ended.
  auto observe = [&](const v1::Task& t) {
    last_contact = SteadyNowMs();
    if (seen && t.revision() < last_revision) return true;  // older than what we showed
    seen = true;
    last_revision = t.revision();
    if (ExitCodeFor(t)) {
      final_task = t;
      return false;
    }
    display.Show(t);
    return true;
  };

  while (true) {
    // Level first: the task as it is now (it may have ended while we were
    // away), then the stream of changes after that revision.
    absl::StatusOr<v1::Task> now = client.GetTaskFailFast(opts.id);
    absl::Status status = now.status();
    if (now.ok() && observe(*now)) {
      status = client.Watch(opts.id, last_revision, [&](const v1::Task& t) {
        backoff.Reset();
        return observe(t);
      });
    }
    if (final_task) {
      display.Finish(*final_task);
      return *ExitCodeFor(*final_task);
    }
    if (Permanent(status.code())) {
      display.Abandon();
      std::cerr << "orchardctl: error: " << CodeAndMessage(status) << std::endl;
      return kExitError;
    }
    int64_t out_of_contact = SteadyNowMs() - last_contact;
    int64_t left = opts.reconnect_budget.count() - out_of_contact;
    if (left <= 0) {
      display.Abandon();
      std::cerr << "orchardctl: error: UNAVAILABLE: lost the server " << client.address()
                << " for " << FormatDurationMs(out_of_contact) << ", giving up (last error: "
                << CodeAndMessage(status) << ")" << std::endl;
      return kExitError;
    }
    int64_t delay = std::min<int64_t>(static_cast<int64_t>(backoff.NextMs()), left);
    display.Note(Cat("reconnecting in ", FormatDurationMs(delay), " (attempt ", backoff.attempt(),
                     ", giving up after ", FormatDurationMs(opts.reconnect_budget.count()),
                     " without contact): ", CodeAndMessage(status)));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

}  // namespace orchard::cli
