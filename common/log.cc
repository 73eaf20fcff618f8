#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace orchard::log {

bool Init(const std::string& component, const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  if (format != "text" && format != "json") return false;
  auto logger = spdlog::stderr_logger_mt(component);
  if (format == "json") {
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":")" +
                        component + R"(","msg":"%v"})");
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ " + component + " %v");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return true;
}

}  // namespace orchard::log
