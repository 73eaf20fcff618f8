// `orchardctl watch`: follows one task over the WatchTasks stream until it
// reaches Error or Terminated, showing progress as it goes.
//
// On a terminal the progress bar is redrawn in place; on a pipe one plain line
// is printed per change. A broken stream (server restart, network) is
// reconnected with capped exponential backoff and full jitter, resuming after
// the last revision seen, for as long as the server has been out of contact
// for less than the reconnect budget.
//
// Thread-safety: runs on main's thread, blocking.
#pragma once

#include <chrono>
#include <string>

namespace orchard::cli {

class Client;

struct WatchOptions {
  std::string id;
  // How long the server may stay out of contact before watch gives up (exit 1).
  std::chrono::milliseconds reconnect_budget{60'000};
  bool tty = false;  // draw the bar in place instead of printing lines
  // One JSON object per change on stdout (NDJSON, the shape of get -o json),
  // the last one the task as it ended; no bar, no closing line.
  bool json = false;
};

// Returns the exit code: 0 SUCCEEDED, 3 FAILED (Error), 4 CANCELLED, 1 error.
int RunWatch(Client& client, const WatchOptions& opts);

}  // namespace orchard::cli
