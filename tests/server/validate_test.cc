// Tests of request validation: every bad field is refused with
// INVALID_ARGUMENT and a message that names it; defaults are filled in.
#include "server/validate.h"

#include <gtest/gtest.h>

#include "tests/testing/specs.h"

namespace orchard::server {
namespace {

namespace pb = ::orchard::v1;

// A valid spec with nothing defaulted, to break one field at a time.
pb::TaskSpec Good() { return orchard::testing::GoodSpec(); }

void ExpectRefused(pb::TaskSpec spec, const std::string& field) {
  absl::Status s = ValidateAndDefaultSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_NE(std::string(s.message()).find(field), std::string::npos)
      << "message '" << s.message() << "' does not name " << field;
}

TEST(ValidateSpec, AGoodSpecGetsDefaults) {
  auto spec = Good();
  ASSERT_TRUE(ValidateAndDefaultSpec(spec).ok());
  EXPECT_EQ(spec.params_json(), "{}");
  EXPECT_EQ(spec.policy().max_attempts(), 3u);
  EXPECT_EQ(spec.policy().max_failed_subtasks(), 0);
  EXPECT_EQ(spec.policy().backoff_initial_ms(), 500u);
  EXPECT_EQ(spec.policy().backoff_max_ms(), 30000u);
}

TEST(ValidateSpec, EachBadFieldIsNamed) {
  auto s = Good();
  s.set_kind("");
  ExpectRefused(s, "kind");
  s = Good();
  s.set_kind("bad kind!");
  ExpectRefused(s, "kind");
  s = Good();
  s.set_begin(10);
  s.set_end(5);
  ExpectRefused(s, "range");
  s = Good();
  s.set_end(0);
  ExpectRefused(s, "range");
  s = Good();
  s.mutable_split()->set_subtasks(0);
  ExpectRefused(s, "subtasks");
  s = Good();
  s.mutable_split()->set_chunk(0);
  ExpectRefused(s, "chunk");
  s = Good();
  s.clear_split();
  ExpectRefused(s, "split");
  s = Good();
  s.set_end(100'000'000);
  s.mutable_split()->set_subtasks(3'000'000);
  ExpectRefused(s, "subtasks");
  s = Good();
  s.set_params_json("[1]");
  ExpectRefused(s, "params");
  s = Good();
  s.set_params_json("{not json");
  ExpectRefused(s, "params");
  s = Good();
  s.set_params_json("{\"a\":\"" + std::string(kMaxParamsBytes, 'x') + "\"}");
  ExpectRefused(s, "params");
  s = Good();
  s.mutable_policy()->set_max_attempts(1000);
  ExpectRefused(s, "max_attempts");
  s = Good();
  s.mutable_policy()->set_max_failed_subtasks(-5);
  ExpectRefused(s, "max_failed_subtasks");
  s = Good();
  s.mutable_policy()->set_backoff_initial_ms(5000);
  s.mutable_policy()->set_backoff_max_ms(100);
  ExpectRefused(s, "backoff_max");
  s = Good();
  s.mutable_policy()->set_priority(5000);
  ExpectRefused(s, "priority");
  s = Good();
  (*s.mutable_labels())["bad key!"] = "v";
  ExpectRefused(s, "labels");
  s = Good();
  s.set_request_id(std::string(500, 'r'));
  ExpectRefused(s, "request_id");
}

TEST(ValidateSpec, RangeEndingAtTheTopOfUint64IsAccepted) {
  auto s = Good();
  s.set_begin(UINT64_MAX - 1000);
  s.set_end(UINT64_MAX);
  EXPECT_TRUE(ValidateAndDefaultSpec(s).ok());
}

TEST(ValidateId, RefusesEmptyAndOddCharacters) {
  EXPECT_TRUE(ValidateId("t-abc123", "id").ok());
  EXPECT_EQ(ValidateId("", "id").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(ValidateId("a b", "task_id").message()).find("task_id"),
            std::string::npos);
}

TEST(ValidateSpec, ParamsNestedDeeperThanTheLimitAreRefused) {
  auto s = Good();
  s.set_params_json("{\"a\":" + std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']') +
                    "}");
  ExpectRefused(s, "params");
  s.set_params_json("{\"a\":" + std::string(10, '[') + std::string(10, ']') + "}");
  EXPECT_TRUE(ValidateAndDefaultSpec(s).ok());
}

TEST(JsonDepth, CountsArraysAndObjectsButNotBracketsInStrings) {
  EXPECT_EQ(JsonDepth("{}"), 1u);
  EXPECT_EQ(JsonDepth(R"({"a": [1, {"b": []}]})"), 4u);
  EXPECT_EQ(JsonDepth(R"({"a": "[[[[\"{{"})"), 1u);
  EXPECT_EQ(JsonDepth("12"), 0u);
}

}  // namespace
}  // namespace orchard::server
