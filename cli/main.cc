// orchardctl: the operators' command line for Orchard. Wiring only: the
// subcommands live in cli/commands.cc, rendering in cli/format.cc, the gRPC
// calls in cli/client.cc.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/process.h"

int main(int argc, char** argv) {
  orchard::InitProcess();
  CLI::App app{"orchardctl: submit, follow and inspect Orchard tasks", "orchardctl"};
  orchard::cli::Commands commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return orchard::cli::HandleParseError(app, e);
  }
  try {
    return commands.Run();
  } catch (const std::exception& e) {
    // Our code reports failures as Status; this is the last line of defence
    // for a library that throws (std::bad_alloc, a JSON type error).
    std::cerr << "orchardctl: error: " << e.what() << std::endl;
    return orchard::cli::kExitError;
  }
}
