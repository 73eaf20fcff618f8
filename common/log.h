// Logging: spdlog, set up once per process by Init(). Every line carries the
// time, level and component; "text" is for people, "json" one object a line
// for log shippers. Thread-safety: spdlog's default logger is thread-safe.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace orchard::log {

// level: trace|debug|info|warn|error; format: text|json. Returns false (and
// logs nothing) when either is unknown.
bool Init(const std::string& component, const std::string& level, const std::string& format);

}  // namespace orchard::log
