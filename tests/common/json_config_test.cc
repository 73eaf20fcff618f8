// Tests of JsonConfig (common/json_config.h): flags from a JSON file, the
// command line winning over it, and errors that name the key.
#include "common/json_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace orchard {
namespace {

class JsonConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "json_config_test_" +
            testing::UnitTest::GetInstance()->current_test_info()->name() + ".json";
    AddJsonConfig(app_, "flags from a JSON file", {"exec"});
    app_.add_option("--listen", listen_);
    app_.add_option("--slots", slots_)->check(CLI::Range(1, 8));
    app_.add_option("--sync", sync_)->check(CLI::IsMember({"normal", "full"}));
    app_.add_option("--label", labels_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Writes text as the config file and parses args (after the program name).
  // Returns CLI11's error message, or "" when the parse succeeded.
  std::string Parse(const std::string& text, std::vector<std::string> args) {
    std::ofstream(path_) << text;
    args.insert(args.begin(), "prog");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    try {
      app_.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "";
  }

  CLI::App app_{"test"};
  std::string path_, listen_ = "127.0.0.1:7070", sync_ = "normal";
  int slots_ = 4;
  std::vector<std::string> labels_;
};

// This test verifies that every flag can come from the file.
TEST_F(JsonConfigTest, FileSetsFlagsOfEveryType) {
  EXPECT_EQ(Parse(R"({"listen": "10.0.0.5:7070", "slots": 8, "sync": "full",
                      "label": ["a=1", "b=2"]})",
                  {"--config", path_}),
            "");
  EXPECT_EQ(listen_, "10.0.0.5:7070");
  EXPECT_EQ(slots_, 8);
  EXPECT_EQ(sync_, "full");
  EXPECT_EQ(labels_, (std::vector<std::string>{"a=1", "b=2"}));
}

// This test verifies that a flag on the command line wins over the file,
// wherever --config stands, and that the file still sets the others.
TEST_F(JsonConfigTest, CommandLineFlagWinsOverTheFile) {
  EXPECT_EQ(Parse(R"({"listen": "10.0.0.5:7070", "slots": 8})",
                  {"--slots", "2", "--config", path_}),
            "");
  EXPECT_EQ(slots_, 2);
  EXPECT_EQ(listen_, "10.0.0.5:7070");
}

// This test verifies that a flag the file does not name keeps its default.
TEST_F(JsonConfigTest, MissingKeysKeepDefaults) {
  EXPECT_EQ(Parse(R"({})", {"--config", path_}), "");
  EXPECT_EQ(listen_, "127.0.0.1:7070");
  EXPECT_EQ(slots_, 4);
}

// This test verifies that the flags' checks apply to values from the file.
TEST_F(JsonConfigTest, FileValuesAreValidatedLikeFlags) {
  EXPECT_NE(Parse(R"({"slots": 99})", {"--config", path_}), "");
  EXPECT_NE(Parse(R"({"sync": "sometimes"})", {"--config", path_}), "");
}

// This test verifies that a key that is no flag is refused, by name.
TEST_F(JsonConfigTest, UnknownKeyIsAnErrorThatNamesIt) {
  std::string err = Parse(R"({"lisen": "10.0.0.5:7070"})", {"--config", path_});
  EXPECT_NE(err.find("\"lisen\""), std::string::npos) << err;
  EXPECT_NE(err.find("not a flag"), std::string::npos) << err;
  err = Parse(R"({"config": "/etc/other.json"})", {"--config", path_});
  EXPECT_NE(err.find("\"config\""), std::string::npos) << err;
}

// This test verifies that the owner's sections pass, other objects do not.
TEST_F(JsonConfigTest, SectionsAreLeftToTheirOwnerOtherObjectsAreRefused) {
  EXPECT_EQ(Parse(R"({"exec": {"programs": {}}, "slots": 3})", {"--config", path_}), "");
  EXPECT_EQ(slots_, 3);
  std::string err = Parse(R"({"exec": "yes"})", {"--config", path_});
  EXPECT_NE(err.find("\"exec\": want an object"), std::string::npos) << err;
  err = Parse(R"({"listen": {"host": "x"}})", {"--config", path_});
  EXPECT_NE(err.find("\"listen\""), std::string::npos) << err;
  err = Parse(R"({"listen": null})", {"--config", path_});
  EXPECT_NE(err.find("\"listen\""), std::string::npos) << err;
}

// This test verifies that a broken or missing file stops the parse.
TEST_F(JsonConfigTest, InvalidJsonOrMissingFileIsAnError) {
  EXPECT_NE(Parse(R"({"listen": )", {"--config", path_}).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(Parse(R"([1, 2])", {"--config", path_}).find("JSON object"), std::string::npos);
  EXPECT_NE(Parse("{}", {"--config", path_ + ".missing"}), "");
}

}  // namespace
}  // namespace orchard
