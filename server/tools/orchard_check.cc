// orchard-check: runs the invariant checker (server/store/invariants.h) on a
// database file and prints each violation. Exit 0: every invariant holds;
// 1: violations; 2: bad usage; 3: the file could not be read.
// Single-threaded; safe to run against a live server's database (read-only).
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "orchard/version.h"
#include "server/store/invariants.h"

int main(int argc, char** argv) {
  CLI::App app{
      "orchard-check: checks an Orchard database's invariants (legal histories, counters,\n"
      "one committed result per subtask, task results equal the reduce of their subtasks)."};
  std::string db, output = "text";
  app.add_option("--db", db, "SQLite database file (opened read-only)")->required();
  app.add_option("-o,--output", output, "text|json")->check(CLI::IsMember({"text", "json"}));
  app.set_version_flag("--version", "orchard-check " ORCHARD_VERSION_STRING);
  CLI11_PARSE(app, argc, argv);

  auto report = orchard::store::CheckDatabase(db);
  if (!report.ok()) {
    fprintf(stderr, "orchard-check: error: --db %s: %s\n", db.c_str(),
            std::string(report.status().message()).c_str());
    return 3;
  }
  const std::string text = output == "json" ? report->ToJson() + "\n" : report->ToText();
  fputs(text.c_str(), stdout);
  return report->ok() ? 0 : 1;
}
