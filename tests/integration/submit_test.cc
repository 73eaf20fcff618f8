// Submitting through orchardctl against a real server: idempotent submit by
// request id, and bad input refused with a clear message and nothing stored.
// Scenarios 5 and 8 of issue 2.
#include <cctype>
#include <string>
#include <vector>

#include "harness.h"

namespace orchard::it {
namespace {

class SubmitTest : public Cluster {};

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// This test verifies that submitting twice with the same --request-id returns
// the same task both times and stores a single task.
TEST_F(SubmitTest, SameRequestIdSubmittedTwiceGivesOneTask) {
  StartServer();
  const std::vector<std::string> args = {"--kind", "noop", "--range", "0:100", "--subtasks",
                                         "4", "--request-id", "nightly-2024-06-01"};
  const json first = Submit(args);
  const json second = Submit(args);
  ASSERT_TRUE(first.contains("id")) << first.dump();
  EXPECT_FALSE(Str(first, "id").empty()) << first.dump();
  EXPECT_EQ(Str(second, "id"), Str(first, "id"))
      << "first: " << first.dump() << "\nsecond: " << second.dump();

  const json tasks = ListTasks();
  ASSERT_TRUE(tasks.is_array()) << tasks.dump();
  ASSERT_EQ(tasks.size(), 1u) << tasks.dump(1);
  EXPECT_EQ(Str(tasks[0], "id"), Str(first, "id")) << tasks.dump(1);

  // Once a worker runs it, a third submit still returns that task, now done.
  StartWorker("a", 2);
  WaitTaskEnded(Str(first, "id"));
  const json third = Submit(args);
  EXPECT_EQ(Str(third, "id"), Str(first, "id")) << third.dump();
  EXPECT_EQ(Str(third, "state"), "Terminated") << third.dump();
  EXPECT_EQ(ListTasks().size(), 1u);
}

// This test verifies that bad input to orchardctl exits non-zero with a
// message naming the problem, and stores nothing.
TEST_F(SubmitTest, BadInputIsRefusedWithMessageNamingTheProblemAndStoresNothing) {
  StartServer();
  struct Case {
    std::vector<std::string> args;
    std::string names;  // what stderr must mention (case-insensitive)
  };
  const std::vector<Case> cases = {
      {{"submit", "--kind", "sum", "--range", "10:5", "--subtasks", "2"}, "range"},
      {{"submit", "--kind", "sum", "--range", "0:10", "--subtasks", "0"}, "subtasks"},
      {{"submit", "--kind", "sum", "--range", "0:10", "--subtasks", "2", "--params", "[1]"},
       "params"},
      {{"get", "no-such-task-0000"}, "not found"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args[0] + " expecting \"" + c.names + "\"");
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"-o", "json"});
    const CtlResult r = Ctl(args);
    EXPECT_NE(r.exit_code, 0) << r.command << "\nstdout: " << r.out;
    EXPECT_NE(r.err.find("orchardctl: error:"), std::string::npos)
        << r.command << "\nstderr: " << r.err;
    EXPECT_NE(Lower(r.err).find(c.names), std::string::npos)
        << r.command << "\nstderr should name \"" << c.names << "\": " << r.err;
  }

  // An unknown subcommand is a usage error: exit 2, naming the subcommand.
  const CtlResult unknown = Ctl({"frobnicate", "x"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.command << "\nstderr: " << unknown.err;
  EXPECT_NE(unknown.err.find("frobnicate"), std::string::npos)
      << unknown.command << "\nstderr: " << unknown.err;

  const json tasks = ListTasks();
  EXPECT_EQ(tasks, json::array()) << "bad input stored something: " << tasks.dump(1);
}

}  // namespace
}  // namespace orchard::it
