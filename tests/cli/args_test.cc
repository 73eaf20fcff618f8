// Tests of cli/args: submit's flags become a TaskSpec, and each bad value is
// refused with a message that names its flag.
#include <string>

#include <gtest/gtest.h>

#include "cli/args.h"
#include "orchard/v1/orchard.pb.h"

namespace orchard::cli {
namespace {

SubmitArgs Minimal() {
  SubmitArgs a;
  a.kind = "sum";
  a.range = "0:1000";
  a.subtasks = "10";
  return a;
}

std::string ErrorOf(const SubmitArgs& a) {
  v1::TaskSpec spec;
  absl::Status s = BuildTaskSpec(a, &spec);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST(BuildTaskSpec, MinimalFlagsLeavePolicyToTheServer) {
  v1::TaskSpec spec;
  ASSERT_TRUE(BuildTaskSpec(Minimal(), &spec).ok());
  EXPECT_EQ(spec.kind(), "sum");
  EXPECT_EQ(spec.begin(), 0u);
  EXPECT_EQ(spec.end(), 1000u);
  EXPECT_EQ(spec.split().subtasks(), 10u);
  EXPECT_FALSE(spec.split().has_chunk());
  EXPECT_EQ(spec.params_json(), "");
  EXPECT_EQ(spec.policy().max_attempts(), 0u);
  EXPECT_FALSE(spec.policy().has_max_failed_subtasks());
  EXPECT_EQ(spec.policy().backoff_initial_ms(), 0u);
  EXPECT_TRUE(spec.labels().empty());
  EXPECT_EQ(spec.request_id(), "");
}

TEST(BuildTaskSpec, EveryFlagLandsInItsField) {
  SubmitArgs a;
  a.kind = "sleep";
  a.range = "5:18446744073709551615";
  a.chunk = "64";
  a.params = R"({"ms": 200})";
  a.max_attempts = "5";
  a.max_failed_subtasks = "-1";
  a.deadline = "10m";
  a.parallelism = "4";
  a.priority = "-3";
  a.backoff = "250ms";
  a.backoff_max = "1m";
  a.labels = {"team=data", "empty=", "eq=a=b"};
  a.request_id = "nightly-1";
  v1::TaskSpec spec;
  absl::Status s = BuildTaskSpec(a, &spec);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(spec.begin(), 5u);
  EXPECT_EQ(spec.end(), UINT64_MAX);
  EXPECT_EQ(spec.split().chunk(), 64u);
  EXPECT_EQ(spec.params_json(), R"({"ms": 200})");  // passed on as typed
  EXPECT_EQ(spec.policy().max_attempts(), 5u);
  EXPECT_EQ(spec.policy().max_failed_subtasks(), -1);
  EXPECT_EQ(spec.policy().deadline_ms(), 600'000u);
  EXPECT_EQ(spec.policy().parallelism(), 4u);
  EXPECT_EQ(spec.policy().priority(), -3);
  EXPECT_EQ(spec.policy().backoff_initial_ms(), 250u);
  EXPECT_EQ(spec.policy().backoff_max_ms(), 60'000u);
  EXPECT_EQ(spec.labels().at("team"), "data");
  EXPECT_EQ(spec.labels().at("empty"), "");
  EXPECT_EQ(spec.labels().at("eq"), "a=b");
  EXPECT_EQ(spec.request_id(), "nightly-1");
}

TEST(BuildTaskSpec, InvertedRangeNamesRange) {
  SubmitArgs a = Minimal();
  a.range = "10:5";
  EXPECT_EQ(ErrorOf(a), "range: end (5) must be greater than begin (10)");
  a.range = "a:b";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "range:"));
  a.range = "";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "range:"));
}

TEST(BuildTaskSpec, ZeroSubtasksOrChunkIsRefused) {
  SubmitArgs a = Minimal();
  a.subtasks = "0";
  EXPECT_EQ(ErrorOf(a), "subtasks: must be at least 1");
  a.subtasks = "-1";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "subtasks:"));
  a.subtasks = "3000000";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "subtasks:"));
  a.subtasks = "";
  a.chunk = "0";
  EXPECT_EQ(ErrorOf(a), "chunk: must be at least 1");
}

TEST(BuildTaskSpec, ExactlyOneOfSubtasksAndChunk) {
  SubmitArgs a = Minimal();
  a.chunk = "5";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "split:"));
  a.subtasks = "";
  a.chunk = "";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "split:"));
}

TEST(BuildTaskSpec, ParamsMustBeAJsonObject) {
  SubmitArgs a = Minimal();
  for (const char* p : {"[1]", "1", "\"x\"", "null", "true"}) {
    a.params = p;
    EXPECT_EQ(ErrorOf(a), "params: must be a JSON object") << p;
  }
  a.params = "{bad";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "params: not valid JSON"));
  a.params = "{}";
  v1::TaskSpec spec;
  EXPECT_TRUE(BuildTaskSpec(a, &spec).ok());
}

TEST(BuildTaskSpec, BadPolicyValuesNameTheirFlag) {
  struct Case {
    std::string SubmitArgs::*field;
    const char* value;
    const char* prefix;
  };
  for (const Case& c : std::initializer_list<Case>{
           {&SubmitArgs::max_attempts, "0", "max_attempts:"},
           {&SubmitArgs::max_attempts, "x", "max_attempts:"},
           {&SubmitArgs::max_failed_subtasks, "-2", "max_failed_subtasks:"},
           {&SubmitArgs::deadline, "5x", "deadline:"},
           {&SubmitArgs::deadline, "30", "deadline:"},
           {&SubmitArgs::parallelism, "-1", "parallelism:"},
           {&SubmitArgs::priority, "high", "priority:"},
           {&SubmitArgs::priority, "99999999999", "priority:"},
           {&SubmitArgs::backoff, "1.5s", "backoff:"},
           {&SubmitArgs::backoff_max, "forever", "backoff_max:"},
           {&SubmitArgs::kind, "", "kind:"},
       }) {
    SubmitArgs a = Minimal();
    a.*c.field = c.value;
    EXPECT_TRUE(StartsWith(ErrorOf(a), c.prefix)) << c.prefix << " " << c.value;
  }
}

TEST(BuildTaskSpec, BackoffCapBelowInitialIsRefused) {
  SubmitArgs a = Minimal();
  a.backoff = "10s";
  a.backoff_max = "1s";
  EXPECT_TRUE(StartsWith(ErrorOf(a), "backoff_max:"));
}

TEST(ParseLabels, KeyValuePairs) {
  auto l = ParseLabels({"a=1", "b=", "a=2"});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 2u);
  EXPECT_EQ(l->at("a"), "2");
  EXPECT_EQ(l->at("b"), "");
  for (const char* bad : {"novalue", "=x", ""}) {
    auto r = ParseLabels({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(StartsWith(std::string(r.status().message()), "label:"));
  }
}

TEST(ParseStates, AnyCaseToProtoNumbers) {
  auto s = ParseStates({"running", "Error", "TERMINATED"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<int>{v1::RUNNING, v1::ERROR, v1::TERMINATED}));
  auto bad = ParseStates({"Done"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(StartsWith(std::string(bad.status().message()), "state: 'Done'"));
}

}  // namespace
}  // namespace orchard::cli
