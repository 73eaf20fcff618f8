// Exact decimals with a double fallback, and per-column stats. See number.h.
// Thread-safety: pure functions.
#include "worker/handlers/number.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace orchard::worker::num {

namespace {

constexpr int kMaxScale = 18;
constexpr int kMaxDigits = 36;

// 10^n for n in 0..36 (scales differ by at most 18; a product is checked).
__int128 Pow10(int n) {
  static const auto kTable = [] {
    std::array<__int128, 39> t{};
    t[0] = 1;
    for (size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10;
    return t;
  }();
  return kTable[static_cast<size_t>(n)];
}

// a.mant rescaled to `scale` (>= a.scale); false on overflow.
bool Rescale(const Number& a, int scale, __int128& out) {
  return !__builtin_mul_overflow(a.mant, Pow10(scale - a.scale), &out);
}

std::string Int128ToString(__int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  unsigned __int128 u = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  std::string s;
  while (u > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  }
  if (neg) s.push_back('-');
  return std::string(s.rbegin(), s.rend());
}

}  // namespace

double Number::ToDouble() const {
  if (!exact) return approx;
  // Through text, so the double is the correctly rounded value.
  return std::strtod(ToString().c_str(), nullptr);
}

std::string Number::ToString() const {
  if (!exact) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", approx);
    return buf;
  }
  std::string digits = Int128ToString(mant < 0 ? -mant : mant);
  if (scale > 0) {
    if (digits.size() <= static_cast<size_t>(scale)) {
      digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), ".");
  }
  return mant < 0 ? "-" + digits : digits;
}

nlohmann::json Number::ToJson() const {
  if (exact && scale == 0 && mant >= std::numeric_limits<int64_t>::min() &&
      mant <= std::numeric_limits<int64_t>::max()) {
    return static_cast<int64_t>(mant);
  }
  return ToDouble();
}

std::optional<Number> Parse(std::string_view t) {
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  if (t.empty()) return std::nullopt;
  Number n;
  size_t i = 0;
  bool neg = false;
  if (t[0] == '+' || t[0] == '-') {
    neg = t[0] == '-';
    ++i;
  }
  int digits = 0, scale = 0;
  bool point = false, ok = i < t.size();
  __int128 m = 0;
  for (; ok && i < t.size(); ++i) {
    char c = t[i];
    if (c >= '0' && c <= '9') {
      if (m != 0 || c != '0') ++digits;
      if (point) ++scale;
      m = m * 10 + (c - '0');
      ok = digits <= kMaxDigits && scale <= kMaxScale;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      ok = false;
    }
  }
  // Needs a digit: "." and "-" are not numbers.
  if (ok && t.find_first_of("0123456789") != std::string_view::npos) {
    n.mant = neg ? -m : m;
    n.scale = scale;
    return n;
  }
  std::string s(t);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(d)) return std::nullopt;
  n.exact = false;
  n.approx = d;
  return n;
}

Number AddSlow(const Number& a, const Number& b) {
  if (a.exact && b.exact) {
    int scale = std::max(a.scale, b.scale);
    __int128 x, y, s;
    if (Rescale(a, scale, x) && Rescale(b, scale, y) && !__builtin_add_overflow(x, y, &s)) {
      Number n;
      n.mant = s;
      n.scale = scale;
      return n;
    }
  }
  Number n;
  n.exact = false;
  n.approx = a.ToDouble() + b.ToDouble();
  return n;
}

int Compare(const Number& a, const Number& b) {
  if (a.exact && b.exact) {
    int scale = std::max(a.scale, b.scale);
    __int128 x, y;
    if (Rescale(a, scale, x) && Rescale(b, scale, y)) return x < y ? -1 : x > y ? 1 : 0;
  }
  double x = a.ToDouble(), y = b.ToDouble();
  return x < y ? -1 : x > y ? 1 : 0;
}

void Stats::AddValue(const Number& v) {
  ++count;
  sum = Add(sum, v);
  if (!min || Compare(v, *min) < 0) min = v;
  if (!max || Compare(v, *max) > 0) max = v;
}

void Stats::Merge(const Stats& o) {
  count += o.count;
  sum = Add(sum, o.sum);
  if (o.min && (!min || Compare(*o.min, *min) < 0)) min = o.min;
  if (o.max && (!max || Compare(*o.max, *max) > 0)) max = o.max;
}

nlohmann::json Stats::ToJson() const {
  nlohmann::json j{{"n", count}, {"sum", sum.ToString()}};
  if (min) j["min"] = min->ToString();
  if (max) j["max"] = max->ToString();
  return j;
}

std::optional<Stats> Stats::FromJson(const nlohmann::json& j) {
  Stats s;
  if (!j.is_object() || !j.contains("n") || !j["n"].is_number_unsigned() || !j.contains("sum") ||
      !j["sum"].is_string()) {
    return std::nullopt;
  }
  s.count = j["n"].get<uint64_t>();
  auto sum = Parse(j["sum"].get<std::string>());
  if (!sum) return std::nullopt;
  s.sum = *sum;
  for (const char* k : {"min", "max"}) {
    if (!j.contains(k)) continue;
    if (!j[k].is_string()) return std::nullopt;
    auto v = Parse(j[k].get<std::string>());
    if (!v) return std::nullopt;
    (k[1] == 'i' ? s.min : s.max) = *v;
  }
  return s;
}

}  // namespace orchard::worker::num
