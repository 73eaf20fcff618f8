// JsonConfig: JSON files for CLI11's config-file support (json_config.h).
#include "common/json_config.h"

#include <nlohmann/json.hpp>

namespace orchard {
namespace {

CLI::ConversionError Bad(const std::string& key, const std::string& why) {
  return CLI::ConversionError("--config: \"" + key + "\": " + why);
}

std::string Scalar(const std::string& key, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return v.dump();
  throw Bad(key, "want a string, a number or a boolean, got " + std::string(v.type_name()));
}

}  // namespace

std::vector<CLI::ConfigItem> JsonConfig::from_config(std::istream& input) const {
  auto doc = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw CLI::ConversionError("--config: not valid JSON");
  if (!doc.is_object()) throw CLI::ConversionError("--config: want a JSON object of flags");
  std::vector<CLI::ConfigItem> items;
  for (const auto& [key, value] : doc.items()) {
    if (sections_.count(key)) {
      if (!value.is_object()) throw Bad(key, "want an object");
      continue;
    }
    if (app_ != nullptr && (app_->get_option_no_throw("--" + key) == nullptr ||
                            app_->get_option_no_throw("--" + key) == app_->get_config_ptr())) {
      throw Bad(key, "not a flag of this program (see --help)");
    }
    CLI::ConfigItem item;
    item.name = key;
    if (value.is_array()) {
      for (const auto& v : value) item.inputs.push_back(Scalar(key, v));
    } else {
      item.inputs.push_back(Scalar(key, value));
    }
    items.push_back(std::move(item));
  }
  return items;
}

std::string JsonConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string prefix) const {
  nlohmann::json out = nlohmann::json::object();
  for (const CLI::Option* opt : app->get_options()) {
    if (!opt->get_configurable() || opt->get_lnames().empty()) continue;
    if (opt == app->get_help_ptr() || opt == app->get_config_ptr()) continue;
    const std::string& name = opt->get_lnames().front();
    if (opt->count() > 0) {
      out[name] = opt->results().size() == 1 ? nlohmann::json(opt->results().front())
                                             : nlohmann::json(opt->results());
    } else if (default_also && !opt->get_default_str().empty()) {
      out[name] = opt->get_default_str();
    }
  }
  return out.dump(2) + "\n";
}

CLI::Option* AddJsonConfig(CLI::App& app, const std::string& help,
                           std::set<std::string> sections) {
  app.config_formatter(std::make_shared<JsonConfig>(std::move(sections), &app));
  app.allow_config_extras(CLI::config_extras_mode::error);
  return app.set_config("--config", "", help);
}

}  // namespace orchard
