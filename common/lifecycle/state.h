// The five lifecycle states shared by tasks and subtasks, and their names.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace orchard {

// Numbered as in proto/orchard/v1/orchard.proto's State, so a cast converts.
enum class State : uint8_t {
  kPreparing = 1,
  kRunning = 2,
  kTerminating = 3,
  kError = 4,
  kTerminated = 5,
};

enum class Outcome : uint8_t {
  kNone = 0,
  kSucceeded = 1,
  kCancelled = 2,
  kFailed = 3,
};

// "Preparing", "Running", ... as operators read them.
std::string_view StateName(State s);
// Lower-case, as used for count keys in JSON ("preparing").
std::string_view StateKey(State s);
// Accepts either spelling, case-insensitively.
std::optional<State> ParseState(std::string_view name);

std::string_view OutcomeName(Outcome o);  // "" for kNone
std::optional<Outcome> ParseOutcome(std::string_view name);

bool IsTerminal(State s);  // Error or Terminated

inline constexpr State kAllStates[] = {State::kPreparing, State::kRunning, State::kTerminating,
                                       State::kError, State::kTerminated};

}  // namespace orchard
