// Cat(a, b, ...): concatenates anything fmt can format. Debian's Abseil is
// built with its own string_view type, so absl::StrCat refuses
// std::string_view; this one takes both.
#pragma once

#include <iterator>
#include <string>

#include <fmt/format.h>

namespace orchard {

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}

}  // namespace orchard
