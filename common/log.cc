// Logging set-up, the json line formatter and structured events; see log.h.
// Thread-safety: see log.h.
#include "common/log.h"

#include <ctime>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace orchard::log {

namespace {

// The fields of the Event() being logged on this thread, pre-rendered as
// JSON members (",\"task\":\"t-1\""); empty for plain spdlog calls.
thread_local std::string t_json_fields;

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string component) : component_(std::move(component)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(128 + msg.payload.size() + t_json_fields.size());
    auto since_epoch = msg.time.time_since_epoch();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs);
    std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[40];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    line += R"({"time":")";
    line += when;
    line += fmt::format(".{:03d}Z\",\"level\":\"", static_cast<int>(millis.count()));
    auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += R"(","component":")";
    AppendJsonEscaped(line, component_);
    line += R"(","msg":")";
    AppendJsonEscaped(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += '"';
    line += t_json_fields;
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(component_);
  }

 private:
  std::string component_;
};

// Set once by Init() before any thread logs.
bool g_json = false;

// A text value as key=value shows it: bare when it has no blank, quote,
// equals sign or control byte; quoted and escaped otherwise.
void AppendTextValue(std::string& out, std::string_view v) {
  bool bare = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) {
      bare = false;
      break;
    }
  }
  if (bare) {
    out.append(v);
    return;
  }
  out += '"';
  AppendJsonEscaped(out, v);
  out += '"';
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
}

void SetFormatForTesting(bool json) { g_json = json; }

std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& component) {
  return std::make_unique<JsonFormatter>(component);
}

bool Init(const std::string& component, const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  if (format != "text" && format != "json") return false;
  auto logger = spdlog::stderr_logger_mt(component);
  g_json = format == "json";
  if (g_json) {
    logger->set_formatter(MakeJsonFormatter(component));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ " + component + " %v");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return true;
}

void Event(spdlog::level::level_enum level, std::string_view msg,
           std::initializer_list<Field> fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  if (!g_json) {
    std::string line(msg);
    for (const Field& f : fields) {
      if (f.value().empty()) continue;
      line += ' ';
      line.append(f.key());
      line += '=';
      if (f.is_number()) {
        line.append(f.value());
      } else {
        AppendTextValue(line, f.value());
      }
    }
    logger->log(level, std::string_view(line));
    return;
  }
  std::string members;
  for (const Field& f : fields) {
    if (f.value().empty()) continue;
    members += ",\"";
    AppendJsonEscaped(members, f.key());
    members += "\":";
    if (f.is_number()) {
      members.append(f.value());
    } else {
      members += '"';
      AppendJsonEscaped(members, f.value());
      members += '"';
    }
  }
  t_json_fields = std::move(members);
  logger->log(level, msg);
  t_json_fields.clear();
}

}  // namespace orchard::log
