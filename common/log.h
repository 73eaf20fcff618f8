// Logging: spdlog, set up once per process by Init(). Every line carries the
// time, level and component; "text" is for people, "json" one object a line
// for log shippers. Event() adds structured fields (task, subtask, worker,
// attempt, ...): `key=value` after the message in text, JSON members of their
// own in json. The json format escapes the message, so any text (quotes,
// newlines, control bytes) still gives one valid JSON object per line.
//
// Thread-safety: spdlog's default logger is thread-safe; Event() may be called
// from any thread (its fields travel to the formatter in a thread_local, as a
// synchronous logger formats on the calling thread).
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

namespace orchard::log {

// level: trace|debug|info|warn|error; format: text|json. Returns false (and
// logs nothing) when either is unknown.
bool Init(const std::string& component, const std::string& level, const std::string& format);

// One structured field: a string or an integer value.
class Field {
 public:
  Field(std::string_view key, std::string_view value) : key_(key), text_(value) {}
  Field(std::string_view key, const char* value) : key_(key), text_(value) {}
  Field(std::string_view key, const std::string& value) : key_(key), text_(value) {}
  template <std::integral T>
  Field(std::string_view key, T value)
      : key_(key), number_(std::to_string(value)), is_number_(true) {}

  std::string_view key() const { return key_; }
  std::string_view value() const { return is_number_ ? std::string_view(number_) : text_; }
  bool is_number() const { return is_number_; }

 private:
  std::string_view key_;
  std::string_view text_;
  std::string number_;
  bool is_number_ = false;
};

// Logs `msg` at `level` with `fields` on the default logger; a field whose
// string value is empty is left out. Cheap when the level is off: nothing is
// formatted.
void Event(spdlog::level::level_enum level, std::string_view msg,
           std::initializer_list<Field> fields);

// Appends `s` escaped for the inside of a JSON string (RFC 8259): quote,
// backslash and control bytes escaped; other bytes as they are.
void AppendJsonEscaped(std::string& out, std::string_view s);

// Tests: whether Event() renders its fields for the json formatter (true)
// or as key=value text (false); Init() sets it from --log-format.
void SetFormatForTesting(bool json);

// The json-format line formatter (exposed for tests):
// {"time":"2024-05-01T12:00:03.250+0000","level":"info","component":"server","msg":"...",<fields>}
std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& component);

}  // namespace orchard::log
