#include "bdguard/zoo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "bdguard/error.h"
#include "test_util.h"

namespace bdguard {
namespace {

ZooOptions twenty() {
  ZooOptions o;
  o.models = 20;
  o.seed = 7;
  return o;
}

TEST(ZooPlan, CleanFractionAndEveryKindAndArchitecture) {
  const auto plan = plan_zoo(twenty());
  ASSERT_EQ(plan.size(), 20u);
  std::map<std::string, int> kinds;
  std::set<std::pair<std::string, std::string>> kind_arch;
  for (const auto& r : plan) {
    ++kinds[r.kind];
    kind_arch.insert({r.kind, r.arch});
  }
  EXPECT_EQ(kinds["clean"], 7);  // round(20 * 0.35)
  // 13 BadNets over 5 kinds: 3, 3, 3, 2, 2.
  for (const char* k : {"badnets", "blended", "sig", "wanet", "all-to-all"}) {
    EXPECT_GE(kinds[k], 2) << k;
    EXPECT_LE(kinds[k], 3) << k;
  }
  // Architectures in turn within each kind: every kind with 3 models meets all 3.
  EXPECT_EQ(kind_arch.count({"clean", "resbn"}), 1u);
  EXPECT_EQ(kind_arch.count({"badnets", "vgg"}), 1u);
}

TEST(ZooPlan, NamesAreIndicesAndSayNothingOfTheKind) {
  const auto plan = plan_zoo(twenty());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].index, static_cast<int64_t>(i));
    char want[32];
    std::snprintf(want, sizeof want, "model_%03zu", i);
    EXPECT_EQ(plan[i].name, want);
  }
  // Shuffled: the clean models are not simply the first seven.
  int clean_first = 0;
  for (size_t i = 0; i < 7; ++i) clean_first += plan[i].kind == "clean";
  EXPECT_LT(clean_first, 7);
}

TEST(ZooPlan, SameSeedSamePlanOtherSeedOtherPlan) {
  const auto a = plan_zoo(twenty()), b = plan_zoo(twenty());
  ZooOptions o = twenty();
  o.seed = 8;
  const auto c = plan_zoo(o);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(to_json(a[i]), to_json(b[i]));
    differ += to_json(a[i]) != to_json(c[i]);
  }
  EXPECT_GT(differ, 10);
}

TEST(ZooPlan, RecipesMapToTheirAttack) {
  ZooOptions o = twenty();
  o.data = "/data";
  for (const auto& r : plan_zoo(o)) {
    const auto args = zoo_attack_args(o, r, r.seed + 1, "/z/work/x", 2);
    ASSERT_GE(args.size(), 2u);
    EXPECT_EQ(args[0], "attack");
    EXPECT_EQ(args[1], r.kind == "clean" || r.kind == "all-to-all" ? "badnets" : r.kind);
    auto value = [&](const std::string& flag) {
      const auto it = std::find(args.begin(), args.end(), flag);
      return it == args.end() || it + 1 == args.end() ? std::string("-") : *(it + 1);
    };
    EXPECT_EQ(value("--seed"), std::to_string(r.seed + 1));
    EXPECT_EQ(value("--split-seed"), "7");  // every model: the zoo's one clean split
    EXPECT_EQ(value("--mapping"), r.kind == "all-to-all" ? "all-to-all" : "all-to-one");
    EXPECT_EQ(value("--data"), "/data");
    if (r.kind == "clean") {
      EXPECT_EQ(value("--poison-rate"), "0");
    }
    if (r.kind == "blended") {
      EXPECT_EQ(value("--pattern"), "noise");
    }
  }
}

TEST(ZooPlan, UnknownKindIsRefused) {
  ZooOptions o = twenty();
  o.kinds = {"clean", "trojannn"};
  EXPECT_THROW(plan_zoo(o), InvalidArgument);
}

TEST(ZooPlan, ResumingWithOtherOptionsIsRefused) {
  ZooOptions o = twenty();
  o.out = test::temp_dir() + "/zoo";
  const auto first = open_zoo(o);
  const auto again = open_zoo(o);
  ASSERT_EQ(first.size(), again.size());
  EXPECT_EQ(to_json(first[3]), to_json(again[3]));
  o.epochs = 9;
  try {
    open_zoo(o);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("epochs"), std::string::npos) << e.what();
  }
}

TEST(ZooPlan, FinishNamesTheModelsWithoutARecord) {
  ZooOptions o = twenty();
  o.models = 2;
  o.out = test::temp_dir() + "/zoo";
  open_zoo(o);
  try {
    finish_zoo(read_zoo_plan(o.out));
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("model_000, model_001"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bdguard
