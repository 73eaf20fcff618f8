// Tests of common/log: json lines are valid JSON whatever the message holds,
// and Event()'s fields become JSON members (json) or key=value (text).
#include "common/log.h"

#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

namespace {

// A logger writing to a string with the given formatter, installed as the
// default logger for the test's duration.
class Capture {
 public:
  explicit Capture(bool json) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    logger_ = std::make_shared<spdlog::logger>("capture", sink);
    if (json) {
      logger_->set_formatter(orchard::log::MakeJsonFormatter("test"));
    } else {
      logger_->set_pattern("%v");
    }
    logger_->set_level(spdlog::level::debug);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(logger_);
  }
  ~Capture() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> Lines() {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> logger_, previous_;
};

// This test verifies that a json line is one valid JSON object even when the
// message has quotes, backslashes, newlines and control bytes.
TEST(JsonLog, LinesParseAsJsonWhateverTheMessage) {
  orchard::log::SetFormatForTesting(true);
  Capture c(/*json=*/true);
  const std::string nasty = "he said \"hi\" \\ path C:\\x\nnext\tline \x01 end";
  spdlog::info("{}", nasty);
  spdlog::warn("plain");
  auto lines = c.Lines();
  ASSERT_EQ(lines.size(), 2u);
  nlohmann::json j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["msg"], nasty);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "test");
  EXPECT_TRUE(j["time"].is_string());
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "warning");
}

// This test verifies that Event() adds its fields as JSON members of their
// own, numbers as numbers, and that a plain line after it has none.
TEST(JsonLog, EventFieldsAreMembers) {
  orchard::log::SetFormatForTesting(true);
  Capture c(/*json=*/true);
  orchard::log::Event(spdlog::level::info, "subtask Running -> Preparing (Failed)",
                      {{"task", "t-1"},
                       {"subtask", int64_t{3}},
                       {"attempt", 2u},
                       {"worker", "w-\"x\""},
                       {"reason", "flaky: injected\nfailure"}});
  spdlog::info("after");
  auto lines = c.Lines();
  ASSERT_EQ(lines.size(), 2u);
  nlohmann::json j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["msg"], "subtask Running -> Preparing (Failed)");
  EXPECT_EQ(j["task"], "t-1");
  EXPECT_EQ(j["subtask"], 3);
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["worker"], "w-\"x\"");
  EXPECT_EQ(j["reason"], "flaky: injected\nfailure");
  nlohmann::json after = nlohmann::json::parse(lines[1]);
  EXPECT_FALSE(after.contains("task"));
}

// This test verifies that in text mode the fields follow the message as
// key=value, quoted only when they need it.
TEST(TextLog, EventFieldsAreKeyValue) {
  orchard::log::SetFormatForTesting(false);
  Capture c(/*json=*/false);
  orchard::log::Event(spdlog::level::info, "task Running -> Terminating (AllSucceeded)",
                      {{"task", "t-1"}, {"subtask", -1}, {"reason", "all done"}, {"worker", ""}});
  auto lines = c.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "task Running -> Terminating (AllSucceeded) task=t-1 subtask=-1 reason=\"all done\"");
}

// This test verifies that Event() below the logger's level formats nothing.
TEST(TextLog, EventBelowLevelIsDropped) {
  orchard::log::SetFormatForTesting(false);
  Capture c(/*json=*/false);
  orchard::log::Event(spdlog::level::trace, "noise", {{"task", "t-1"}});
  EXPECT_TRUE(c.Lines().empty());
}

}  // namespace
