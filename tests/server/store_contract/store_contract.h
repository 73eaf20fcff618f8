// The Store contract: what every implementation of store::Store (store.h)
// must do, as one value-parameterised GoogleTest suite, StoreContract, that
// any store runs by instantiating it with a factory. Each test gets a fresh,
// empty store whose files live in the test's own temp directory.
//
// To run the suite on a new store, add one line to a test file linked with
// orchard_store_contract (an OBJECT library, so every TEST_P is kept):
//
//   INSTANTIATE_TEST_SUITE_P(Postgres, StoreContract,
//       ::testing::Values(StoreFactory{"postgres", OpenPostgresForTest}),
//       StoreFactoryName);
//
// The tests assert what a caller relies on (states, counters, history rows,
// compare-and-set and epoch refusals, paging), read back through the Store
// interface only; nothing here may look at a database directly. SQLite-only
// behaviour (group commit, schema upgrades, the write connection's snapshot
// reads) is tested in tests/server/sqlite_*_test.cc.
//
// The files: submit_contract.cc (create, request ids, planning, async
// create), transition_contract.cc (task transitions, CAS, stop, finalize,
// retry), lease_contract.cc (acquire, reconcile leases, heartbeat, expiry),
// report_contract.cc (reports, zombies, snapshots), listing_contract.cc
// (lists and pages, workers, operators' reads, unreconciled tasks).
//
// Thread-safety: the fixture from the test's thread; tests that need
// concurrency start their own threads and join them.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "server/store/store.h"
#include "tests/testing/store_steps.h"

namespace orchard::store_contract {

struct StoreFactory {
  std::string name;  // the instantiation's suffix: letters, digits, '_'
  // A fresh, empty store keeping its files under `dir` (empty, the test's own).
  std::function<absl::StatusOr<std::unique_ptr<store::Store>>(const std::filesystem::path& dir)>
      open;
};

std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info);
// So GoogleTest (and ctest's test names) show the store, not its bytes.
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

class StoreContract : public ::testing::TestWithParam<StoreFactory>,
                      public ::orchard::testing::StoreSteps {
 protected:
  void SetUp() override;
  void TearDown() override;
  store::Store& store() override { return *store_; }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace orchard::store_contract
