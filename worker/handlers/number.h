// Numbers for csv.aggregate: an exact decimal (a 128-bit mantissa and a
// scale) when the text allows it, a double otherwise, and the running
// count/sum/min/max of a column that merges exactly across slices.
// Thread-safety: value types, no shared state.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace orchard::worker::num {

struct Number {
  bool exact = true;
  __int128 mant = 0;  // value = mant / 10^scale when exact
  int scale = 0;      // 0..18
  double approx = 0;  // the value when !exact

  double ToDouble() const;
  // Exact text ("-12.50" keeps its scale) or %.17g for a double.
  std::string ToString() const;
  // An integer JSON number when exact with scale 0 and fitting 64 bits, else a double.
  nlohmann::json ToJson() const;
};

// Parses a number: decimal text ([+-]digits[.digits], surrounding spaces
// allowed) exactly, anything else strtod accepts as a finite double; nullopt
// when it is not a number.
std::optional<Number> Parse(std::string_view text);
// A short plain decimal, mant / 10^scale: what ParseSmall reads.
struct Small {
  int64_t mant = 0;  // |mant| < 10^18
  int scale = 0;     // 0..17
  Number ToNumber() const {
    Number n;
    n.mant = mant;
    n.scale = scale;
    return n;
  }
};
// The common case of Parse, without leaving the caller: at most 18 bytes of
// [+-]digits[.digits] with a digit. False for anything else (which Parse
// may still accept): the caller then uses Parse. Same value as Parse.
inline bool ParseSmall(std::string_view text, Small& out);
// ParseSmall when 8 bytes from text.data() are readable whatever the size:
// up to 8 plain digits are then converted 8 at a time.
inline bool ParseSmallPadded(std::string_view text, Small& out);

// a + b; exact when both are and the sum fits, else a double.
Number AddSlow(const Number& a, const Number& b);
inline Number Add(const Number& a, const Number& b) {
  __int128 s;
  if (a.exact && b.exact && a.scale == b.scale && !__builtin_add_overflow(a.mant, b.mant, &s)) {
    Number n;
    n.mant = s;
    n.scale = a.scale;
    return n;
  }
  return AddSlow(a, b);
}
// <0, 0, >0.
int Compare(const Number& a, const Number& b);

// The running aggregate of one column within one group.
struct Stats {
  uint64_t count = 0;  // non-empty values
  Number sum;
  std::optional<Number> min, max;

  void AddValue(const Number& v);
  // count and sum only, when no min or max is asked for.
  void AddToSum(const Number& v) {
    ++count;
    sum = Add(sum, v);
  }
  // The same for a Small; in place when the scales agree (the usual case).
  void AddToSum(Small v) {
    ++count;
    __int128 s;
    if (sum.exact && sum.scale == v.scale &&
        !__builtin_add_overflow(sum.mant, static_cast<__int128>(v.mant), &s)) {
      sum.mant = s;
    } else {
      sum = AddSlow(sum, v.ToNumber());
    }
  }
  void Merge(const Stats& o);
  // {"n": count, "sum": "text", "min": "text", "max": "text"}: the exact text
  // form, so a merge of parsed results is exact.
  nlohmann::json ToJson() const;
  static std::optional<Stats> FromJson(const nlohmann::json& j);
};

inline bool ParseSmall(std::string_view t, Small& out) {
  const size_t n = t.size();
  if (n == 0 || n > 18) return false;
  const bool neg = t[0] == '-';
  size_t i = neg || t[0] == '+' ? 1 : 0;
  uint64_t m = 0;
  size_t point = n;  // index of the '.', n when none
  bool digit = false;
  for (; i < n; ++i) {
    unsigned d = static_cast<unsigned char>(t[i]) - '0';
    if (d <= 9) {
      m = m * 10 + d;  // at most 18 digits: fits
      digit = true;
    } else if (t[i] == '.' && point == n) {
      point = i;
    } else {
      return false;  // spaces, exponents, not a number: Parse's full rules
    }
  }
  if (!digit) return false;
  out.mant = neg ? -static_cast<int64_t>(m) : static_cast<int64_t>(m);
  out.scale = point == n ? 0 : static_cast<int>(n - point - 1);
  return true;
}

inline bool ParseSmallPadded(std::string_view t, Small& out) {
  const size_t n = t.size();
  if (n == 0 || n > 8) return ParseSmall(t, out);
  uint64_t v;
  memcpy(&v, t.data(), 8);
  // The n bytes moved to the top, '0's shifted in below: "1234" -> "00001234".
  const uint64_t zeros = 0x3030303030303030ull;
  v = n == 8 ? v : (v << (8 * (8 - n))) | (zeros >> (8 * n));
  // Every byte a digit: its high nibble is 3 and adding 6 does not carry out.
  if ((v & 0xF0F0F0F0F0F0F0F0ull) != zeros ||
      ((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) != zeros) {
    return ParseSmall(t, out);  // a sign, a point, or not a number
  }
  // Digit pairs, then fours, then all eight (the first digit is the low byte).
  v = ((v & 0x0F0F0F0F0F0F0F0Full) * (10 * 256 + 1)) >> 8;
  v = ((v & 0x00FF00FF00FF00FFull) * (100 * 65536 + 1)) >> 16;
  v = ((v & 0x0000FFFF0000FFFFull) * (10000 * (uint64_t{1} << 32) + 1)) >> 32;
  out.mant = static_cast<int64_t>(v);
  out.scale = 0;
  return true;
}

}  // namespace orchard::worker::num
