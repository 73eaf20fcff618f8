// Task spec builders shared by the tests: one valid spec to break field by
// field (validation, bad input), and a spec of any kind and range for the
// store and server tests. Header-only; no threads.
#pragma once

#include <cstdint>
#include <string>

#include "orchard/v1/orchard.pb.h"

namespace orchard::testing {

// A valid "sum" spec over [0, 100) in 10 subtasks, with nothing defaulted
// (no params, no policy): what validation must accept and fill in.
inline ::orchard::v1::TaskSpec GoodSpec() {
  ::orchard::v1::TaskSpec s;
  s.set_kind("sum");
  s.set_begin(0);
  s.set_end(100);
  s.mutable_split()->set_subtasks(10);
  return s;
}

// A spec of `kind` over [begin, end) cut into `subtasks`, with params
// {"x":1} so a test can tell the params survived a round trip.
inline ::orchard::v1::TaskSpec Spec(const std::string& kind, uint64_t begin, uint64_t end,
                                    uint64_t subtasks) {
  ::orchard::v1::TaskSpec s;
  s.set_kind(kind);
  s.set_begin(begin);
  s.set_end(end);
  s.mutable_split()->set_subtasks(subtasks);
  s.set_params_json(R"({"x":1})");
  return s;
}

}  // namespace orchard::testing
