#include "common/process.h"

#include "absl/synchronization/mutex.h"

namespace orchard {

void InitProcess() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace orchard
