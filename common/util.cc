#include "common/util.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <mutex>
#include <random>

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard {

absl::StatusOr<uint64_t> ParseUint64(std::string_view text, std::string_view field) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(
        Cat(field, ": '", text, "' is not an unsigned 64-bit integer"));
  }
  return v;
}

absl::StatusOr<uint64_t> ParseDurationMs(std::string_view text, std::string_view field) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view unit = text.substr(digits);
  uint64_t mult = 0;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  if (digits == 0 || mult == 0) {
    return absl::InvalidArgumentError(Cat(
        field, ": '", text, "' is not a duration (use a number with ms, s, m or h, e.g. 30s)"));
  }
  auto n = ParseUint64(text.substr(0, digits), field);
  if (!n.ok()) return n.status();
  if (*n > UINT64_MAX / mult) {
    return absl::InvalidArgumentError(Cat(field, ": '", text, "' is too long"));
  }
  return *n * mult;
}

absl::StatusOr<RangeArg> ParseRange(std::string_view text, std::string_view field) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(field, ": '", text, "' is not BEGIN:END (e.g. 0:1000)"));
  }
  auto b = ParseUint64(text.substr(0, colon), field);
  if (!b.ok()) return b.status();
  auto e = ParseUint64(text.substr(colon + 1), field);
  if (!e.ok()) return e.status();
  if (*e <= *b) {
    return absl::InvalidArgumentError(
        Cat(field, ": end (", *e, ") must be greater than begin (", *b, ")"));
  }
  return RangeArg{*b, *e};
}

std::string NewId(std::string_view prefix) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  static constexpr uint64_t kSuffixMask = (uint64_t{1} << 40) - 1;
  static std::mutex mu;
  static uint64_t last_ms = 0, last_suffix = 0;
  static std::mt19937_64 rng(std::random_device{}());
  uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  uint64_t suffix;
  {
    std::lock_guard<std::mutex> lock(mu);
    // Within one millisecond (or when the clock stepped back) the next id
    // is the last one plus one: unique and ascending in this process.
    if (ms <= last_ms && last_suffix < kSuffixMask) {
      ms = last_ms;
      suffix = last_suffix + 1;
    } else {
      if (ms <= last_ms) ms = last_ms + 1;  // this millisecond's suffixes ran out
      suffix = rng() & (kSuffixMask >> 1);  // room to count up
    }
    last_ms = ms;
    last_suffix = suffix;
  }
  std::string id(prefix);
  for (int shift = 40; shift >= 0; shift -= 5) id.push_back(kAlphabet[(ms >> shift) & 31]);
  for (int shift = 35; shift >= 0; shift -= 5) id.push_back(kAlphabet[(suffix >> shift) & 31]);
  return id;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return Cat(ms, "ms");
  int64_t s = ms / 1000;
  if (s < 60) return Cat(s, ".", (ms % 1000) / 100, "s");
  int64_t m = s / 60;
  if (m < 60) return Cat(m, "m", s % 60, "s");
  return Cat(m / 60, "h", m % 60, "m");
}

namespace {

// Optimal string alignment distance (Levenshtein plus adjacent swaps).
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::optional<std::string> Nearest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  // Long inputs (a pasted blob as a kind) are not worth comparing.
  if (word.empty() || word.size() > 256) return std::nullopt;
  const size_t allowed = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  std::optional<std::string> best;
  size_t best_d = allowed + 1;
  for (const auto& c : candidates) {
    if (c == word) return std::nullopt;
    if (c.size() > 256) continue;
    const size_t d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::string NoWorkerRunsKind(const std::string& kind, const std::vector<std::string>& live_kinds) {
  if (live_kinds.empty()) return Cat("no live worker runs kind '", kind, "'; no worker is live");
  std::string list;
  for (const auto& k : live_kinds) list += (list.empty() ? "" : ", ") + k;
  std::string out = Cat("no live worker runs kind '", kind, "'; kinds offered now: ", list);
  if (auto near = Nearest(kind, live_kinds)) out += Cat("; did you mean '", *near, "'?");
  return out;
}

}  // namespace orchard
