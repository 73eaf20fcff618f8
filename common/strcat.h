// Cat(a, b, ...): concatenates anything fmt can format. Debian's Abseil is
// built with its own string_view type, so absl::StrCat refuses
// std::string_view; this one takes both.
#pragma once

#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "absl/strings/string_view.h"

#if !defined(ABSL_USES_STD_STRING_VIEW)
// Lets fmt print absl::string_view (e.g. Status::message()) as it prints
// std::string_view.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(absl::string_view s, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};
#endif

namespace orchard {

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}

// "1 subtask", "2 subtasks", "0 subtasks": a count with its noun in the
// right number (nouns whose plural adds an "s").
template <typename N>
std::string Count(N n, std::string_view noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

}  // namespace orchard
