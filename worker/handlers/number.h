// Numbers for csv.aggregate: an exact decimal (a 128-bit mantissa and a
// scale) when the text allows it, a double otherwise, and the running
// count/sum/min/max of a column that merges exactly across slices.
// Thread-safety: value types, no shared state.
#pragma once

#include <cstdint>
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

// a + b; exact when both are and the sum fits, else a double.
Number Add(const Number& a, const Number& b);
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
  void Merge(const Stats& o);
  // {"n": count, "sum": "text", "min": "text", "max": "text"}: the exact text
  // form, so a merge of parsed results is exact.
  nlohmann::json ToJson() const;
  static std::optional<Stats> FromJson(const nlohmann::json& j);
};

}  // namespace orchard::worker::num
