// orchardctl's subcommands: their flags, help texts, and what each one does.
//
// Commands registers every subcommand on a CLI11 app; after app.parse() has
// succeeded, Run() executes the one that was chosen and returns the process
// exit code (cli/exit_codes.h). Every failure prints one line
// "orchardctl: error: <message>" on stderr; `-o json` prints exactly one JSON
// document on stdout.
//
// Thread-safety: main's thread only.
#pragma once

#include <functional>
#include <memory>

namespace CLI {
class App;
class Error;
}  // namespace CLI

namespace orchard::cli {

class Commands {
 public:
  // Adds the global flags and the subcommands to `app`.
  explicit Commands(CLI::App& app);
  ~Commands();

  // REQUIRES: app.parse() succeeded.
  int Run();

  struct Flags;

 private:
  std::unique_ptr<Flags> flags_;
  std::function<int()> chosen_;
};

// Prints CLI11's error (or the help it was asked for) and returns the exit
// code: 0 for --help, kExitUsage for any parse error.
int HandleParseError(CLI::App& app, const CLI::Error& e);

}  // namespace orchard::cli
