// Ok(v): the value of an absl::StatusOr, or a thrown std::runtime_error
// that GoogleTest reports as the test's failure (with the status); Ok(s) for
// a plain Status. For the steps a test needs to succeed to go on.
#pragma once

#include <stdexcept>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace orchard::testing {

template <typename T>
T Ok(absl::StatusOr<T> v) {
  if (!v.ok()) throw std::runtime_error("unexpected error: " + v.status().ToString());
  return std::move(*v);
}
inline void Ok(const absl::Status& s) {
  if (!s.ok()) throw std::runtime_error("unexpected error: " + s.ToString());
}

}  // namespace orchard::testing
