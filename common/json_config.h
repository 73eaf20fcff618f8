// JsonConfig: lets a daemon read its flags from a JSON file
// (`--config /etc/orchard/server.json`), through CLI11's config-file support.
// Every key is a flag's long name without the dashes ("listen", "lease-ttl");
// a value is a string, a number or a boolean (an array gives several values).
// CLI11 fills only the flags the command line did not give, so a flag always
// wins over the file; the file wins over a flag's environment variable.
// Keys of `sections` (e.g. the worker's "exec") must be objects and are left
// to their owner; any other object, a null, or a key that is not a flag of
// the app is an error that names the key. REQUIRES: the app outlives its JsonConfig. Thread-safety: stateless after construction.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace orchard {

class JsonConfig : public CLI::Config {
 public:
  // app (optional) is the program whose flags the keys must name.
  explicit JsonConfig(std::set<std::string> sections = {}, const CLI::App* app = nullptr)
      : sections_(std::move(sections)), app_(app) {}

  // The app's configurable flags and their values (given or default) as one
  // JSON object: a complete example of a config file.
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;

  // Throws CLI::ConversionError (whose message names the key) on bad input.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;

 private:
  std::set<std::string> sections_;
  const CLI::App* app_;
};

// Wires JsonConfig into app as `--config FILE`, refusing unknown keys.
CLI::Option* AddJsonConfig(CLI::App& app, const std::string& help,
                           std::set<std::string> sections = {});

}  // namespace orchard
