#include "server/validate.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/split.h"
#include "common/strcat.h"

namespace orchard::server {

namespace {

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

absl::Status ValidateName(const std::string& s, std::string_view field, size_t max_len,
                          bool allow_empty) {
  if (s.empty()) {
    return allow_empty ? absl::OkStatus() : Invalid(Cat(field, ": must not be empty"));
  }
  if (s.size() > max_len) return Invalid(Cat(field, ": longer than ", max_len, " characters"));
  for (char c : s) {
    if (!IsNameChar(c)) {
      return Invalid(Cat(field, ": '", s, "' may only contain letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

size_t JsonDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

absl::Status ValidateId(const std::string& id, std::string_view field) {
  return ValidateName(id, field, 64, false);
}

absl::Status ValidateAndDefaultSpec(orchard::v1::TaskSpec& spec) {
  if (auto s = ValidateName(spec.kind(), "kind", kMaxKindLength, false); !s.ok()) return s;
  if (spec.end() <= spec.begin()) {
    return Invalid(Cat("range: end (", spec.end(), ") must be greater than begin (", spec.begin(),
                       ")"));
  }
  switch (spec.split().policy_case()) {
    case orchard::v1::SplitPolicy::kSubtasks: {
      auto split = UniformSplit::BySubtasks(spec.begin(), spec.end(), spec.split().subtasks());
      if (!split.ok()) return split.status();
      break;
    }
    case orchard::v1::SplitPolicy::kChunk: {
      auto split = UniformSplit::ByChunk(spec.begin(), spec.end(), spec.split().chunk());
      if (!split.ok()) return split.status();
      break;
    }
    case orchard::v1::SplitPolicy::POLICY_NOT_SET:
      return Invalid("split: set either subtasks or chunk");
  }
  if (spec.params_json().empty()) spec.set_params_json("{}");
  if (spec.params_json().size() > kMaxParamsBytes) {
    return Invalid(Cat("params: ", spec.params_json().size(), " bytes is over the limit of ",
                       kMaxParamsBytes));
  }
  if (JsonDepth(spec.params_json()) > kMaxJsonDepth) {
    return Invalid(Cat("params: nested deeper than ", kMaxJsonDepth, " levels"));
  }
  auto params = nlohmann::json::parse(spec.params_json(), nullptr, /*allow_exceptions=*/false);
  if (params.is_discarded()) return Invalid("params: not valid JSON");
  if (!params.is_object()) return Invalid("params: must be a JSON object");

  auto* policy = spec.mutable_policy();
  if (policy->max_attempts() == 0) policy->set_max_attempts(3);
  if (policy->max_attempts() > kMaxAttemptsLimit) {
    return Invalid(Cat("policy.max_attempts: at most ", kMaxAttemptsLimit));
  }
  if (policy->has_max_failed_subtasks() && policy->max_failed_subtasks() < -1) {
    return Invalid("policy.max_failed_subtasks: must be -1 (no limit) or at least 0");
  }
  if (!policy->has_max_failed_subtasks()) policy->set_max_failed_subtasks(0);
  if (policy->deadline_ms() > 366ull * 24 * 3600 * 1000) {
    return Invalid("policy.deadline: longer than a year");
  }
  if (policy->backoff_initial_ms() == 0) policy->set_backoff_initial_ms(500);
  if (policy->backoff_max_ms() == 0) policy->set_backoff_max_ms(30'000);
  if (policy->backoff_max_ms() < policy->backoff_initial_ms()) {
    return Invalid("policy.backoff_max: must not be less than policy.backoff_initial");
  }
  if (policy->backoff_max_ms() > 24ull * 3600 * 1000) {
    return Invalid("policy.backoff_max: longer than a day");
  }
  if (policy->priority() < -1000 || policy->priority() > 1000) {
    return Invalid("policy.priority: must be between -1000 and 1000");
  }
  if (spec.labels_size() > static_cast<int>(kMaxLabels)) {
    return Invalid(Cat("labels: more than ", kMaxLabels));
  }
  for (const auto& [k, v] : spec.labels()) {
    if (auto s = ValidateName(k, "labels (key)", 63, false); !s.ok()) return s;
    if (v.size() > 256) return Invalid(Cat("labels: value of '", k, "' longer than 256"));
  }
  if (spec.request_id().size() > kMaxRequestIdLength) {
    return Invalid(Cat("request_id: longer than ", kMaxRequestIdLength, " characters"));
  }
  return absl::OkStatus();
}

}  // namespace orchard::server
