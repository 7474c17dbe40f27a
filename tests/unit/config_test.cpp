#include "bdguard/config.h"

#include <gtest/gtest.h>

#include "bdguard/error.h"

namespace bdguard {
namespace {

TEST(Config, TomlGivesFlatEntriesInFileOrder) {
  auto e = parse_config(
      "# a run\nvalid = \"v.h5\"\nmodel = 'bd.h5'\nbatch = 64\nquiet = true\n"
      "input-scale = 0.5\ndrops = [2, 4.5]\n",
      "run.toml");
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0].key, "valid");
  EXPECT_EQ(e[0].values, std::vector<std::string>{"v.h5"});
  EXPECT_EQ(e[1].key, "model");
  EXPECT_EQ(e[2].values, std::vector<std::string>{"64"});
  EXPECT_EQ(e[3].values, std::vector<std::string>{"true"});
  EXPECT_EQ(e[4].values, std::vector<std::string>{"0.5"});
  EXPECT_TRUE(e[5].is_array);
  EXPECT_EQ(e[5].values, (std::vector<std::string>{"2", "4.5"}));
}

TEST(Config, JsonIsDetectedByItsBrace) {
  auto e = parse_config("  {\"model\": \"bd.h5\", \"batch\": 64, \"quiet\": false}", "run.cfg");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].key, "batch");  // JSON objects are unordered: keys come sorted
  EXPECT_EQ(e[0].values, std::vector<std::string>{"64"});
  EXPECT_EQ(e[1].values, std::vector<std::string>{"bd.h5"});
}

TEST(Config, TomlSyntaxErrorNamesFileAndLine) {
  try {
    parse_config("model = \"bd.h5\"\nvalid = \n", "run.toml");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("run.toml: line 2"), std::string::npos) << e.what();
  }
}

TEST(Config, NestedTablesAreRefused) {
  EXPECT_THROW(parse_config("[data]\nvalid = \"v.h5\"\n", "run.toml"), FormatError);
  EXPECT_THROW(parse_config("{\"data\": {\"valid\": \"v.h5\"}}", "run.json"), FormatError);
}

TEST(Config, OversizedFileIsRefused) {
  EXPECT_THROW(parse_config(std::string(kMaxConfigBytes + 1, '#'), "big.toml"), LimitExceeded);
}

}  // namespace
}  // namespace bdguard
