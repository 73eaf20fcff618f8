#include "tests/server/store_contract/store_contract.h"

#include <unistd.h>

#include <string>

#include "tests/testing/ok.h"

namespace orchard::store_contract {

std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

void StoreContract::SetUp() {
  // A parameterised test's name has a '/' ("Test/sqlite"): flatten it, so
  // TearDown removes the whole directory.
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  dir_ = std::filesystem::temp_directory_path() /
         ("orchard-contract-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  store_ = ::orchard::testing::Ok(GetParam().open(dir_));
}

void StoreContract::TearDown() {
  store_.reset();
  std::filesystem::remove_all(dir_);
}

}  // namespace orchard::store_contract
