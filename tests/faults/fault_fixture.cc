// The fault tests' fixture; see fault_fixture.h. Main thread only.
#include "fault_fixture.h"

#include <sqlite3.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "server/store/invariants.h"

namespace orchard::it {

uint64_t SumOf(uint64_t b, uint64_t e) {
  const unsigned __int128 n = e - b;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(b) + e - 1) * n / 2);
}

namespace {
uint64_t ChooseSeed() {
  if (const char* s = std::getenv("ORCHARD_FAULT_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 10);
  }
  return static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
}

std::string TestName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info == nullptr ? "?" : std::string(info->test_suite_name()) + "." + info->name();
}
}  // namespace

FaultTest::FaultTest() : seed_(ChooseSeed()), rng_(seed_) {
  std::cout << "faults: " << TestName() << ": seed " << seed_
            << " (ORCHARD_FAULT_SEED=" << seed_ << " replays it)" << std::endl;
}

Duration FaultTest::RandomDelay(Duration lo, Duration hi) {
  std::uniform_int_distribution<int64_t> d(lo.count(), hi.count());
  return Duration(d(rng_));
}

std::vector<std::string> FaultTest::StartWorkers(const std::vector<std::string>& names,
                                                int slots,
                                                const std::vector<std::string>& extra_args) {
  for (const auto& n : names) StartWorker(n, slots, extra_args);
  std::vector<std::string> ids;
  for (const auto& n : names) ids.push_back(WaitWorkerId(n));
  return ids;
}

void FaultTest::ExpectInvariantsHold() {
  auto report = store::CheckDatabase(db_path().string());
  ASSERT_TRUE(report.ok()) << "the invariant checker could not read " << db_path() << ": "
                           << report.status();
  EXPECT_TRUE(report->ok()) << report->ToText();
  std::cout << "faults: " << TestName() << ": invariants: " << report->ToText();
}

void FaultTest::Summary(std::string_view what, int injected, int survived) {
  std::cout << "faults: " << TestName() << ": injected " << injected << " " << what
            << ", survived " << survived << " (seed " << seed_ << ")" << std::endl;
}

std::optional<int64_t> FaultTest::QueryInt(const std::string& sql) {
  sqlite3* db = nullptr;
  std::optional<int64_t> out;
  if (sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      std::string err = sqlite3_errmsg(db);
      sqlite3_close(db);
      throw HarnessError("bad probe SQL (" + err + "): " + sql);
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
      out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

std::vector<std::string> FaultTest::LinesWith(const std::filesystem::path& path,
                                              std::string_view needle) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

int64_t FaultTest::JsonLogTimeMs(const std::string& line) {
  const json j = json::parse(line);
  const std::string t = j.at("time").get<std::string>();  // 2024-01-02T03:04:05.678Z
  std::tm tm{};
  if (strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr || t.size() < 23) {
    throw HarnessError("not a log time: " + t);
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(t.substr(20, 3));
}

}  // namespace orchard::it
