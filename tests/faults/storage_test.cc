// Storage trouble: the database on a small tmpfs that fills up. Clients get
// UNAVAILABLE naming the cause, the server keeps running (no crash loop),
// nothing is corrupted, and writes work again once space returns.
//
// Needs root (mount(2) of a tmpfs); skipped, saying so, where that fails.
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "fault_fixture.h"

namespace orchard::it {
namespace {

class StorageTest : public FaultTest {
 protected:
  std::filesystem::path small() const { return dir() / "small"; }
  void TearDown() override {
    // Lazily: the killed processes' open files do not keep it busy.
    if (mounted_) ::umount2(small().c_str(), MNT_DETACH);
    FaultTest::TearDown();
  }
  // Writes filler into the tmpfs until it is full; returns the bytes written.
  uint64_t Fill() {
    std::ofstream f(small() / "filler", std::ios::binary | std::ios::app);
    const std::string chunk(64 * 1024, 'x');
    uint64_t n = 0;
    while (f.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && f.flush()) {
      n += chunk.size();
    }
    return n;
  }

  bool mounted_ = false;
};

// This test verifies that a full disk is an UNAVAILABLE error naming the
// cause, not a crash or corruption, and that the server recovers by itself.
TEST_F(StorageTest, FullDiskGivesClearErrorsAndRecoversWhenSpaceReturns) {
  std::filesystem::create_directories(small());
  if (::mount("tmpfs", small().c_str(), "tmpfs", 0, "size=6m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); the full-disk test needs root";
  }
  mounted_ = true;
  // The cluster's db file lives on the tmpfs; SQLite follows the link, so
  // its -wal and -shm files go there too.
  std::filesystem::create_symlink(small() / "orchard.db", db_path());

  Process& server = StartServer({.lease_ttl = "1s"});
  const pid_t pid = server.pid();
  StartWorker("a", 4);
  WaitWorkerId("a");
  const std::string before = Str(Submit({"--kind", "sum", "--range", "0:100000", "--subtasks",
                                         "50"}),
                                 "id");
  WaitTaskEnded(before, 30s);

  const uint64_t filled = Fill();  // the fault: no space left
  std::string params = R"({"pad": ")" + std::string(60 * 1024, 'p') + R"("})";
  int refused = 0;
  CtlResult last;
  for (int i = 0; i < 200 && refused == 0; ++i) {
    last = Ctl({"submit", "--kind", "noop", "--range", "0:10", "--subtasks", "1", "--params",
                params});
    if (last.exit_code != 0) ++refused;
  }
  ASSERT_EQ(refused, 1) << "no submit was refused after filling " << filled << " bytes";
  EXPECT_EQ(last.exit_code, 1) << last.err;
  EXPECT_NE(last.err.find("UNAVAILABLE"), std::string::npos) << last.err;
  EXPECT_NE(last.err.find("full"), std::string::npos) << "the error should name the cause: "
                                                      << last.err;
  std::cout << "faults: a submit on the full disk: " << last.err;
  // More refusals are the same clear error; reads still work; no crash.
  for (int i = 0; i < 3; ++i) {
    const CtlResult r = Ctl({"submit", "--kind", "noop", "--range", "0:10", "--subtasks", "1",
                             "--params", params});
    if (r.exit_code != 0) {
      ++refused;
      EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
    }
  }
  EXPECT_EQ(Str(GetTask(before), "state"), "Terminated");
  EXPECT_TRUE(server.Running()) << TailFile(server.stderr_path(), 20);

  std::filesystem::remove(small() / "filler");  // space returns
  std::string after;
  WaitFor(
      [&](std::string& observed) {
        const CtlResult r = Ctl({"submit", "--kind", "sum", "--range", "0:1000", "--subtasks",
                                 "10", "-o", "json"});
        observed = r.err;
        if (r.exit_code == 0) after = Str(json::parse(r.out), "id");
        return r.exit_code == 0;
      },
      30s, "a submit to succeed once space returned");
  const json done = WaitTaskEnded(after, 30s);
  EXPECT_EQ(done["result"], (json{{"sum", SumOf(0, 1000)}})) << done.dump();
  EXPECT_EQ(server.pid(), pid);
  EXPECT_TRUE(server.Running()) << "the server should have survived the full disk";
  ExpectInvariantsHold();
  Summary("disk-full write refusals", refused, server.Running() && !HasFailure() ? refused : 0);
}

}  // namespace
}  // namespace orchard::it
