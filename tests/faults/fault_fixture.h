// The fault tests' fixture: a Cluster (tests/integration/harness.h) plus what
// every fault test needs at its end and in between: a seeded RNG whose seed
// is printed (ORCHARD_FAULT_SEED replays a run), the invariant checker run on
// the cluster's database, a one-line summary of faults injected and survived,
// read-only SQL probes of the database, and log-file searches.
//
// Runs on the test's main thread only, like the harness.
#ifndef ORCHARD_TESTS_FAULTS_FAULT_FIXTURE_H_
#define ORCHARD_TESTS_FAULTS_FAULT_FIXTURE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "harness.h"

namespace orchard::it {

// The exact sum of the integers in [b, e), as the sum and flaky handlers
// return it.
uint64_t SumOf(uint64_t b, uint64_t e);

class FaultTest : public Cluster {
 protected:
  FaultTest();

  // The test's RNG, seeded from ORCHARD_FAULT_SEED or the clock; the seed is
  // printed when the fixture is built.
  std::mt19937_64& rng() { return rng_; }
  uint64_t seed() const { return seed_; }
  // A uniformly random duration in [lo, hi].
  Duration RandomDelay(Duration lo, Duration hi);

  // Starts workers with these names (and `extra_args`) and waits until each
  // is registered and alive; returns their ids in order.
  std::vector<std::string> StartWorkers(const std::vector<std::string>& names, int slots,
                                        const std::vector<std::string>& extra_args = {});

  // Runs the invariant checker on the cluster's database (live, read-only,
  // or after the server stopped) and fails the test with every violation.
  void ExpectInvariantsHold();
  // Prints "faults: <test>: injected N <what>, survived M (seed S)".
  void Summary(std::string_view what, int injected, int survived);

  // One integer from a read-only query of the database; nullopt when it
  // returns no row.
  std::optional<int64_t> QueryInt(const std::string& sql);
  // The lines of a log file that contain `needle`.
  static std::vector<std::string> LinesWith(const std::filesystem::path& path,
                                            std::string_view needle);
  // The time of a `--log-format json` line, in ms since the epoch (UTC).
  static int64_t JsonLogTimeMs(const std::string& line);

 private:
  uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace orchard::it

#endif  // ORCHARD_TESTS_FAULTS_FAULT_FIXTURE_H_
