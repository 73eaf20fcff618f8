#include "common/lifecycle/subtask.h"

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard::lifecycle {

const std::vector<SubtaskEdge>& SubtaskTable() {
  using S = State;
  using E = SubtaskEvent;
  using O = Outcome;
  static const std::vector<SubtaskEdge> kTable = {
      {S::kPreparing, E::kLeased, S::kRunning, O::kNone},
      {S::kPreparing, E::kCancelRequested, S::kTerminated, O::kCancelled},
      {S::kRunning, E::kSucceeded, S::kTerminated, O::kSucceeded},
      {S::kRunning, E::kFailed, S::kPreparing, O::kNone},
      {S::kRunning, E::kFailedPermanently, S::kError, O::kFailed},
      {S::kRunning, E::kLeaseExpired, S::kPreparing, O::kNone},
      {S::kRunning, E::kLeaseExpiredPermanently, S::kError, O::kFailed},
      {S::kRunning, E::kCancelRequested, S::kTerminating, O::kNone},
      {S::kTerminating, E::kStopped, S::kTerminated, O::kCancelled},
      {S::kTerminating, E::kLeaseExpired, S::kTerminated, O::kCancelled},
      {S::kTerminating, E::kSucceeded, S::kTerminated, O::kSucceeded},
      {S::kTerminating, E::kFailed, S::kTerminated, O::kCancelled},
      {S::kTerminating, E::kFailedPermanently, S::kTerminated, O::kCancelled},
      {S::kError, E::kRetryRequested, S::kPreparing, O::kNone},
      {S::kTerminated, E::kRetryRequested, S::kPreparing, O::kNone},
  };
  return kTable;
}

std::string_view SubtaskEventName(SubtaskEvent e) {
  switch (e) {
    case SubtaskEvent::kLeased: return "Leased";
    case SubtaskEvent::kCancelRequested: return "CancelRequested";
    case SubtaskEvent::kSucceeded: return "Succeeded";
    case SubtaskEvent::kFailed: return "Failed";
    case SubtaskEvent::kFailedPermanently: return "FailedPermanently";
    case SubtaskEvent::kLeaseExpired: return "LeaseExpired";
    case SubtaskEvent::kLeaseExpiredPermanently: return "LeaseExpiredPermanently";
    case SubtaskEvent::kStopped: return "Stopped";
    case SubtaskEvent::kRetryRequested: return "RetryRequested";
  }
  return "Unknown";
}

std::optional<SubtaskEvent> ParseSubtaskEvent(std::string_view name) {
  for (SubtaskEvent e : kAllSubtaskEvents) {
    if (SubtaskEventName(e) == name) return e;
  }
  return std::nullopt;
}

absl::StatusOr<SubtaskEdge> NextSubtask(State from, SubtaskEvent event) {
  for (const SubtaskEdge& edge : SubtaskTable()) {
    if (edge.from == from && edge.event == event) return edge;
  }
  return absl::FailedPreconditionError(Cat(
      "subtask in state ", StateName(from), " cannot take event ", SubtaskEventName(event)));
}

SubtaskEvent FailureEvent(uint32_t attempt, uint32_t max_attempts, bool permanent) {
  if (permanent || attempt >= max_attempts) return SubtaskEvent::kFailedPermanently;
  return SubtaskEvent::kFailed;
}

SubtaskEvent LeaseExpiryEvent(State state, uint32_t attempt, uint32_t max_attempts) {
  if (state == State::kRunning && attempt >= max_attempts) {
    return SubtaskEvent::kLeaseExpiredPermanently;
  }
  return SubtaskEvent::kLeaseExpired;
}

}  // namespace orchard::lifecycle
