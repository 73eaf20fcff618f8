// Process-wide settings every Orchard program starts with.
//
// Thread-safety: call once, first thing in main(), before any thread starts.
#pragma once

namespace orchard {

// Turns off absl::Mutex deadlock detection. gRPC's mutexes are absl's, and
// Debian builds absl with the detection on: every lock keeps a global
// lock-order graph up to date under a global lock, about 3 % of all CPU in
// the many-tasks benchmark (perf: absl GraphCycles). Orchard's own code
// does not use absl::Mutex; TSan finds lock-order problems in tests.
void InitProcess();

}  // namespace orchard
