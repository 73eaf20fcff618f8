#include "common/lifecycle/state.h"

#include <cctype>
#include <string>

namespace orchard {

namespace {
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}
}  // namespace

std::string_view StateName(State s) {
  switch (s) {
    case State::kPreparing: return "Preparing";
    case State::kRunning: return "Running";
    case State::kTerminating: return "Terminating";
    case State::kError: return "Error";
    case State::kTerminated: return "Terminated";
  }
  return "Unknown";
}

std::string_view StateKey(State s) {
  switch (s) {
    case State::kPreparing: return "preparing";
    case State::kRunning: return "running";
    case State::kTerminating: return "terminating";
    case State::kError: return "error";
    case State::kTerminated: return "terminated";
  }
  return "unknown";
}

std::optional<State> ParseState(std::string_view name) {
  for (State s : kAllStates) {
    if (EqualsIgnoreCase(name, StateName(s))) return s;
  }
  return std::nullopt;
}

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kNone: return "";
    case Outcome::kSucceeded: return "SUCCEEDED";
    case Outcome::kCancelled: return "CANCELLED";
    case Outcome::kFailed: return "FAILED";
  }
  return "";
}

std::optional<Outcome> ParseOutcome(std::string_view name) {
  for (Outcome o : {Outcome::kNone, Outcome::kSucceeded, Outcome::kCancelled, Outcome::kFailed}) {
    if (EqualsIgnoreCase(name, OutcomeName(o))) return o;
  }
  return std::nullopt;
}

bool IsTerminal(State s) { return s == State::kError || s == State::kTerminated; }

}  // namespace orchard
