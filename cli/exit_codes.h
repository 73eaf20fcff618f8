// orchardctl's exit codes: part of its stable interface (scripts branch on
// them, `watch` tells a task's outcome with them).
#pragma once

namespace orchard::cli {

inline constexpr int kExitOk = 0;         // done; for watch: the task ended SUCCEEDED
inline constexpr int kExitError = 1;      // an error: not found, server unreachable, refused
inline constexpr int kExitUsage = 2;      // bad command line (unknown flag, bad value)
inline constexpr int kExitFailed = 3;     // watch: the task ended in Error (FAILED)
inline constexpr int kExitCancelled = 4;  // watch: the task ended CANCELLED

}  // namespace orchard::cli
