// The Store contract (store_contract.h) on the stores Orchard has: SQLite,
// and SQLite behind a FaultyStore with no fault armed (the decorator must
// change nothing until told to). A new store adds its line here.
#include <memory>

#include "server/store/faulty_store.h"
#include "server/store/sqlite_store.h"
#include "tests/server/store_contract/store_contract.h"

namespace orchard::store_contract {
namespace {

absl::StatusOr<std::unique_ptr<store::Store>> OpenSqlite(const std::filesystem::path& dir) {
  auto s = store::SqliteStore::Open(store::SqliteOptions{.path = (dir / "orchard.db").string()});
  if (!s.ok()) return s.status();
  return std::unique_ptr<store::Store>(std::move(*s));
}

absl::StatusOr<std::unique_ptr<store::Store>> OpenFaultySqlite(const std::filesystem::path& dir) {
  auto s = OpenSqlite(dir);
  if (!s.ok()) return s.status();
  return std::unique_ptr<store::Store>(std::make_unique<store::FaultyStore>(std::move(*s)));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract,
                         ::testing::Values(StoreFactory{"sqlite", OpenSqlite},
                                           StoreFactory{"faulty_sqlite", OpenFaultySqlite}),
                         StoreFactoryName);

}  // namespace
}  // namespace orchard::store_contract
