// A fresh, empty directory for the running GoogleTest test, named after it:
// <tmp>/orchard-<prefix>-<pid>-<test name>. Header-only; call from SetUp().
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace orchard::testing {

inline std::filesystem::path FreshTestDir(std::string_view prefix) {
  auto dir = std::filesystem::temp_directory_path() /
             ("orchard-" + std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace orchard::testing
