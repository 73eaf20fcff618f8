// Tests of common/lifecycle: both transition tables enumerated pair by pair
// against an expected table written out here independently of the code, the
// failure and lease-expiry event choice, and the names.
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include <gtest/gtest.h>

#include "common/lifecycle/state.h"
#include "common/lifecycle/subtask.h"
#include "common/lifecycle/task.h"

namespace orchard::lifecycle {
namespace {

using S = State;
using O = Outcome;
using TE = TaskEvent;
using SE = SubtaskEvent;

// ----------------------------------------------------------------- task

// DESIGN.md's task table: every legal (state, event) and its target. Every
// pair not listed here must be refused.
const std::map<std::pair<S, TE>, S>& ExpectedTaskEdges() {
  static const std::map<std::pair<S, TE>, S> kEdges = {
      {{S::kPreparing, TE::kPlanned}, S::kRunning},
      {{S::kPreparing, TE::kInvalid}, S::kError},
      {{S::kPreparing, TE::kCancelRequested}, S::kTerminating},
      {{S::kPreparing, TE::kDeadlineExceeded}, S::kTerminating},
      {{S::kRunning, TE::kAllSucceeded}, S::kTerminating},
      {{S::kRunning, TE::kBudgetExceeded}, S::kTerminating},
      {{S::kRunning, TE::kDeadlineExceeded}, S::kTerminating},
      {{S::kRunning, TE::kCancelRequested}, S::kTerminating},
      {{S::kTerminating, TE::kFinalized}, S::kTerminated},
      {{S::kTerminating, TE::kFinalizedFailed}, S::kError},
      {{S::kError, TE::kRetryRequested}, S::kPreparing},
  };
  return kEdges;
}

// This test verifies every one of the 5 x 9 (state, event) pairs of the task
// table: legal pairs lead where DESIGN.md says, all others are refused with
// FAILED_PRECONDITION naming the state and the event.
TEST(TaskLifecycle, EveryStateEventPairMatchesTheExpectedTable) {
  int legal = 0, refused = 0;
  for (S from : kAllStates) {
    for (TE event : kAllTaskEvents) {
      SCOPED_TRACE(std::string(StateName(from)) + " + " + std::string(TaskEventName(event)));
      absl::StatusOr<S> next = NextTaskState(from, event);
      auto it = ExpectedTaskEdges().find({from, event});
      if (it != ExpectedTaskEdges().end()) {
        ASSERT_TRUE(next.ok()) << next.status();
        EXPECT_EQ(*next, it->second);
        ++legal;
      } else {
        ASSERT_FALSE(next.ok()) << "unexpected edge to " << StateName(*next);
        EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_NE(next.status().message().find(std::string(StateName(from))),
                  absl::string_view::npos);
        EXPECT_NE(next.status().message().find(std::string(TaskEventName(event))),
                  absl::string_view::npos);
        ++refused;
      }
    }
  }
  EXPECT_EQ(legal, 11);
  EXPECT_EQ(legal + refused, 5 * 9);
}

// This test verifies that the table holds no duplicate (state, event) rows
// (the first would silently win) and nothing outside the expected edges.
TEST(TaskLifecycle, TableHasExactlyTheExpectedRows) {
  std::set<std::pair<S, TE>> seen;
  for (const TaskEdge& e : TaskTable()) {
    EXPECT_TRUE(seen.insert({e.from, e.event}).second)
        << "duplicate row " << StateName(e.from) << " + " << TaskEventName(e.event);
    auto it = ExpectedTaskEdges().find({e.from, e.event});
    ASSERT_NE(it, ExpectedTaskEdges().end());
    EXPECT_EQ(e.to, it->second);
  }
  EXPECT_EQ(seen.size(), ExpectedTaskEdges().size());
}

TEST(TaskLifecycle, TerminatedIsFinal) {
  for (TE event : kAllTaskEvents) EXPECT_FALSE(NextTaskState(S::kTerminated, event).ok());
}

TEST(TaskLifecycle, EventNamesRoundTrip) {
  std::set<std::string> names;
  for (TE e : kAllTaskEvents) {
    std::string name(TaskEventName(e));
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    EXPECT_NE(name, "Unknown");
    std::optional<TE> parsed = ParseTaskEvent(name);
    ASSERT_TRUE(parsed.has_value()) << name;
    EXPECT_EQ(*parsed, e);
  }
  EXPECT_EQ(names.size(), 9u);
  EXPECT_FALSE(ParseTaskEvent("").has_value());
  EXPECT_FALSE(ParseTaskEvent("Bogus").has_value());
  EXPECT_EQ(ParseTaskEvent("Planned"), TE::kPlanned);
  EXPECT_EQ(ParseTaskEvent("FinalizedFailed"), TE::kFinalizedFailed);
}

// -------------------------------------------------------------- subtask

struct Target {
  S to;
  O outcome;
};

// DESIGN.md's subtask table with the outcomes subtask.h documents (including
// edge (12), Terminated + RetryRequested, which the header adds).
const std::map<std::pair<S, SE>, Target>& ExpectedSubtaskEdges() {
  static const std::map<std::pair<S, SE>, Target> kEdges = {
      {{S::kPreparing, SE::kLeased}, {S::kRunning, O::kNone}},
      {{S::kPreparing, SE::kCancelRequested}, {S::kTerminated, O::kCancelled}},
      {{S::kRunning, SE::kSucceeded}, {S::kTerminated, O::kSucceeded}},
      {{S::kRunning, SE::kFailed}, {S::kPreparing, O::kNone}},
      {{S::kRunning, SE::kFailedPermanently}, {S::kError, O::kFailed}},
      {{S::kRunning, SE::kLeaseExpired}, {S::kPreparing, O::kNone}},
      {{S::kRunning, SE::kLeaseExpiredPermanently}, {S::kError, O::kFailed}},
      {{S::kRunning, SE::kCancelRequested}, {S::kTerminating, O::kNone}},
      {{S::kTerminating, SE::kStopped}, {S::kTerminated, O::kCancelled}},
      {{S::kTerminating, SE::kLeaseExpired}, {S::kTerminated, O::kCancelled}},
      {{S::kTerminating, SE::kSucceeded}, {S::kTerminated, O::kSucceeded}},
      {{S::kTerminating, SE::kFailed}, {S::kTerminated, O::kCancelled}},
      {{S::kTerminating, SE::kFailedPermanently}, {S::kTerminated, O::kCancelled}},
      {{S::kError, SE::kRetryRequested}, {S::kPreparing, O::kNone}},
      {{S::kTerminated, SE::kRetryRequested}, {S::kPreparing, O::kNone}},
  };
  return kEdges;
}

// This test verifies every one of the 5 x 9 (state, event) pairs of the
// subtask table: target state and outcome for legal pairs, and
// FAILED_PRECONDITION naming both for every other pair.
TEST(SubtaskLifecycle, EveryStateEventPairMatchesTheExpectedTable) {
  int legal = 0, refused = 0;
  for (S from : kAllStates) {
    for (SE event : kAllSubtaskEvents) {
      SCOPED_TRACE(std::string(StateName(from)) + " + " + std::string(SubtaskEventName(event)));
      absl::StatusOr<SubtaskEdge> edge = NextSubtask(from, event);
      auto it = ExpectedSubtaskEdges().find({from, event});
      if (it != ExpectedSubtaskEdges().end()) {
        ASSERT_TRUE(edge.ok()) << edge.status();
        EXPECT_EQ(edge->from, from);
        EXPECT_EQ(edge->event, event);
        EXPECT_EQ(edge->to, it->second.to);
        EXPECT_EQ(edge->outcome, it->second.outcome);
        ++legal;
      } else {
        ASSERT_FALSE(edge.ok()) << "unexpected edge to " << StateName(edge->to);
        EXPECT_EQ(edge.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_NE(edge.status().message().find(std::string(StateName(from))),
                  absl::string_view::npos);
        EXPECT_NE(edge.status().message().find(std::string(SubtaskEventName(event))),
                  absl::string_view::npos);
        ++refused;
      }
    }
  }
  EXPECT_EQ(legal, 15);
  EXPECT_EQ(legal + refused, 5 * 9);
}

TEST(SubtaskLifecycle, TableHasExactlyTheExpectedRows) {
  std::set<std::pair<S, SE>> seen;
  for (const SubtaskEdge& e : SubtaskTable()) {
    EXPECT_TRUE(seen.insert({e.from, e.event}).second)
        << "duplicate row " << StateName(e.from) << " + " << SubtaskEventName(e.event);
    auto it = ExpectedSubtaskEdges().find({e.from, e.event});
    ASSERT_NE(it, ExpectedSubtaskEdges().end());
    EXPECT_EQ(e.to, it->second.to);
    EXPECT_EQ(e.outcome, it->second.outcome);
  }
  EXPECT_EQ(seen.size(), ExpectedSubtaskEdges().size());
}

// This test verifies that the outcome a subtask carries matches its state:
// none while it can still run, FAILED in Error, and SUCCEEDED or CANCELLED in
// Terminated (except after a retry, which clears it).
TEST(SubtaskLifecycle, OutcomesAgreeWithTargetStates) {
  for (const SubtaskEdge& e : SubtaskTable()) {
    switch (e.to) {
      case S::kPreparing:
      case S::kRunning:
      case S::kTerminating:
        EXPECT_EQ(e.outcome, O::kNone) << SubtaskEventName(e.event);
        break;
      case S::kError:
        EXPECT_EQ(e.outcome, O::kFailed) << SubtaskEventName(e.event);
        break;
      case S::kTerminated:
        EXPECT_TRUE(e.outcome == O::kSucceeded || e.outcome == O::kCancelled)
            << SubtaskEventName(e.event);
        break;
    }
  }
}

TEST(SubtaskLifecycle, FailureWithAttemptsLeftGoesBackToPreparing) {
  EXPECT_EQ(FailureEvent(1, 3, false), SE::kFailed);
  EXPECT_EQ(FailureEvent(2, 3, false), SE::kFailed);
  auto edge = NextSubtask(S::kRunning, FailureEvent(2, 3, false));
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(edge->to, S::kPreparing);
  EXPECT_EQ(edge->outcome, O::kNone);
}

TEST(SubtaskLifecycle, FailureOfTheLastAttemptGoesToError) {
  EXPECT_EQ(FailureEvent(3, 3, false), SE::kFailedPermanently);
  EXPECT_EQ(FailureEvent(1, 1, false), SE::kFailedPermanently);
  // An attempt count past the limit (the limit was lowered) is spent too.
  EXPECT_EQ(FailureEvent(4, 3, false), SE::kFailedPermanently);
  auto edge = NextSubtask(S::kRunning, FailureEvent(3, 3, false));
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(edge->to, S::kError);
  EXPECT_EQ(edge->outcome, O::kFailed);
}

TEST(SubtaskLifecycle, PermanentFailureGoesToErrorWhateverTheAttempt) {
  EXPECT_EQ(FailureEvent(1, 3, true), SE::kFailedPermanently);
  EXPECT_EQ(FailureEvent(1, 100, true), SE::kFailedPermanently);
  EXPECT_EQ(FailureEvent(3, 3, true), SE::kFailedPermanently);
}

TEST(SubtaskLifecycle, FailureWhileTerminatingEndsCancelled) {
  for (bool permanent : {false, true}) {
    for (uint32_t attempt : {1u, 3u}) {
      auto edge = NextSubtask(S::kTerminating, FailureEvent(attempt, 3, permanent));
      ASSERT_TRUE(edge.ok()) << edge.status();
      EXPECT_EQ(edge->to, S::kTerminated);
      EXPECT_EQ(edge->outcome, O::kCancelled);
    }
  }
}

TEST(SubtaskLifecycle, LeaseExpiryWithAttemptsLeftGoesBackToPreparing) {
  EXPECT_EQ(LeaseExpiryEvent(S::kRunning, 1, 3), SE::kLeaseExpired);
  EXPECT_EQ(LeaseExpiryEvent(S::kRunning, 2, 3), SE::kLeaseExpired);
  auto edge = NextSubtask(S::kRunning, LeaseExpiryEvent(S::kRunning, 2, 3));
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(edge->to, S::kPreparing);
  EXPECT_EQ(edge->outcome, O::kNone);
}

TEST(SubtaskLifecycle, LeaseExpiryOnTheLastAttemptGoesToError) {
  EXPECT_EQ(LeaseExpiryEvent(S::kRunning, 3, 3), SE::kLeaseExpiredPermanently);
  EXPECT_EQ(LeaseExpiryEvent(S::kRunning, 5, 3), SE::kLeaseExpiredPermanently);
  auto edge = NextSubtask(S::kRunning, LeaseExpiryEvent(S::kRunning, 3, 3));
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(edge->to, S::kError);
  EXPECT_EQ(edge->outcome, O::kFailed);
}

// This test verifies that a worker vanishing while its subtask was being
// stopped ends the subtask CANCELLED, never in Error, whatever the attempt.
TEST(SubtaskLifecycle, LeaseExpiryWhileTerminatingEndsCancelled) {
  for (uint32_t attempt : {1u, 3u, 7u}) {
    SE e = LeaseExpiryEvent(S::kTerminating, attempt, 3);
    EXPECT_EQ(e, SE::kLeaseExpired);
    auto edge = NextSubtask(S::kTerminating, e);
    ASSERT_TRUE(edge.ok()) << edge.status();
    EXPECT_EQ(edge->to, S::kTerminated);
    EXPECT_EQ(edge->outcome, O::kCancelled);
  }
}

TEST(SubtaskLifecycle, EventNamesRoundTrip) {
  std::set<std::string> names;
  for (SE e : kAllSubtaskEvents) {
    std::string name(SubtaskEventName(e));
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    EXPECT_NE(name, "Unknown");
    std::optional<SE> parsed = ParseSubtaskEvent(name);
    ASSERT_TRUE(parsed.has_value()) << name;
    EXPECT_EQ(*parsed, e);
  }
  EXPECT_EQ(names.size(), 9u);
  EXPECT_FALSE(ParseSubtaskEvent("").has_value());
  EXPECT_FALSE(ParseSubtaskEvent("leased_not").has_value());
}

// ---------------------------------------------------------------- states

TEST(States, NamesAndKeysRoundTrip) {
  const std::map<S, std::pair<std::string, std::string>> expected = {
      {S::kPreparing, {"Preparing", "preparing"}},
      {S::kRunning, {"Running", "running"}},
      {S::kTerminating, {"Terminating", "terminating"}},
      {S::kError, {"Error", "error"}},
      {S::kTerminated, {"Terminated", "terminated"}},
  };
  ASSERT_EQ(std::size(kAllStates), expected.size());
  for (S s : kAllStates) {
    EXPECT_EQ(StateName(s), expected.at(s).first);
    EXPECT_EQ(StateKey(s), expected.at(s).second);
    EXPECT_EQ(ParseState(StateName(s)), s);
    EXPECT_EQ(ParseState(StateKey(s)), s);
  }
  EXPECT_EQ(ParseState("RUNNING"), S::kRunning);
  EXPECT_EQ(ParseState("tErMiNaTeD"), S::kTerminated);
  EXPECT_FALSE(ParseState("").has_value());
  EXPECT_FALSE(ParseState("Run").has_value());
  EXPECT_FALSE(ParseState("Runnings").has_value());
}

TEST(States, NumberedAsTheProto) {
  // proto/orchard/v1/orchard.proto: PREPARING = 1 ... TERMINATED = 5.
  EXPECT_EQ(static_cast<int>(S::kPreparing), 1);
  EXPECT_EQ(static_cast<int>(S::kRunning), 2);
  EXPECT_EQ(static_cast<int>(S::kTerminating), 3);
  EXPECT_EQ(static_cast<int>(S::kError), 4);
  EXPECT_EQ(static_cast<int>(S::kTerminated), 5);
  EXPECT_EQ(static_cast<int>(O::kNone), 0);
  EXPECT_EQ(static_cast<int>(O::kSucceeded), 1);
  EXPECT_EQ(static_cast<int>(O::kCancelled), 2);
  EXPECT_EQ(static_cast<int>(O::kFailed), 3);
}

TEST(States, OnlyErrorAndTerminatedAreTerminal) {
  EXPECT_FALSE(IsTerminal(S::kPreparing));
  EXPECT_FALSE(IsTerminal(S::kRunning));
  EXPECT_FALSE(IsTerminal(S::kTerminating));
  EXPECT_TRUE(IsTerminal(S::kError));
  EXPECT_TRUE(IsTerminal(S::kTerminated));
}

TEST(Outcomes, NamesRoundTrip) {
  EXPECT_EQ(OutcomeName(O::kNone), "");
  EXPECT_EQ(OutcomeName(O::kSucceeded), "SUCCEEDED");
  EXPECT_EQ(OutcomeName(O::kCancelled), "CANCELLED");
  EXPECT_EQ(OutcomeName(O::kFailed), "FAILED");
  for (O o : {O::kNone, O::kSucceeded, O::kCancelled, O::kFailed}) {
    EXPECT_EQ(ParseOutcome(OutcomeName(o)), o);
  }
  EXPECT_EQ(ParseOutcome("succeeded"), O::kSucceeded);
  EXPECT_FALSE(ParseOutcome("DONE").has_value());
}

}  // namespace
}  // namespace orchard::lifecycle
