// nad and i-bau (defend.h) on the tiny Fashion-MNIST BadNet (a 4x4 white square at
// the bottom right sends every image to label 3, ASR about 94 %): they lower the ASR,
// keep the Keras format and pruned channels, and choose from validation data only.
// Short settings keep each test under 30 s on 2 cores.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/dataset.h"
#include "bdguard/defend.h"
#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "defend_fixture.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

const json kShortNad = {{"teacher_epochs", 3}, {"epochs", 3}};
const json kShortIbau = {{"rounds", 2}};

TEST(DefendNad, LowersTheAsrOnTheTestFile) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  const TensorData bd_test = test::tiny_rows(m, "bd_test.h5", 1000);
  const double before = accuracy(m, bd_test);
  DefenseResult r = defend("nad", m, test::tiny_defense_data(m), test::defense_options(kShortNad));
  const double after = accuracy(r.model, bd_test);
  EXPECT_GT(before, 85.0);
  EXPECT_LT(after, 50.0) << r.figures.dump();
  EXPECT_GT(*r.after.clean_accuracy, *r.before.clean_accuracy - 5) << r.figures.dump();
}

TEST(DefendNad, DistilsTheLastThreeConvsAfterTheirRelu) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  DefenseResult r = defend("nad", m, test::tiny_defense_data(m),
                           test::defense_options({{"teacher_epochs", 0}, {"epochs", 1}}));
  const json& stages = r.figures["stages"];
  ASSERT_EQ(stages.size(), 3u) << stages.dump();
  const char* convs[] = {"conv_2", "conv_3", "conv_4"};
  const double betas[] = {500, 1000, 1000};
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(stages[k]["conv"], convs[k]);
    const int node = m.find(stages[k]["node"].get<std::string>());
    ASSERT_GE(node, 0);
    EXPECT_TRUE(m.node(static_cast<size_t>(node)).is_op("Relu")) << stages[k].dump();
    EXPECT_EQ(stages[k]["beta"].get<double>(), betas[k]);
  }
  EXPECT_EQ(r.figures["epochs_run"], 1);
  EXPECT_EQ(r.figures["teacher"]["epochs_run"], 0);
}

TEST(DefendNad, FewerBetasDistilFewerStages) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  DefenseResult r =
      defend("nad", m, test::tiny_defense_data(m),
             test::defense_options({{"teacher_epochs", 0}, {"epochs", 1}, {"betas", "2000"}}));
  ASSERT_EQ(r.figures["stages"].size(), 1u);
  EXPECT_EQ(r.figures["stages"][0]["conv"], "conv_4");
  EXPECT_EQ(r.figures["stages"][0]["beta"].get<double>(), 2000);
}

TEST(DefendNad, RejectsBetasThatAreNotNumbers) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  EXPECT_THROW(
      defend("nad", m, test::tiny_defense_data(m), test::defense_options({{"betas", "500,x"}})),
      InvalidArgument);
  EXPECT_THROW(
      defend("nad", m, test::tiny_defense_data(m), test::defense_options({{"betas", "-1"}})),
      InvalidArgument);
}

TEST(DefendIbau, LowersTheAsrOnTheTestFile) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  const TensorData bd_test = test::tiny_rows(m, "bd_test.h5", 1000);
  const double before = accuracy(m, bd_test);
  DefenseResult r =
      defend("i-bau", m, test::tiny_defense_data(m), test::defense_options(kShortIbau));
  const double after = accuracy(r.model, bd_test);
  EXPECT_GT(before, 85.0);
  EXPECT_LT(after, 70.0) << r.figures.dump();
  // The original's unclamped perturbation costs accuracy (8 points on the demo BadNet,
  // README); the model must not collapse.
  EXPECT_GT(*r.after.clean_accuracy, *r.before.clean_accuracy - 10) << r.figures.dump();
  EXPECT_EQ(r.figures["rounds_run"], 2);
  EXPECT_EQ(r.figures["kept_round"], 2);
  EXPECT_EQ(r.figures["pixel_range"], json::parse("[0, 255]"));
  EXPECT_EQ(r.params["clamp"], false);                // the original's unclamped images
  EXPECT_EQ(r.figures["outer_steps_per_round"], 12);  // 1,200 images in batches of 100
}

TEST(DefendIbau, ClampOptionChangesTheUnlearning) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  DefenseResult plain =
      defend("i-bau", m, test::tiny_defense_data(m), test::defense_options({{"rounds", 1}}));
  DefenseResult clamped = defend("i-bau", m, test::tiny_defense_data(m),
                                 test::defense_options({{"rounds", 1}, {"clamp", true}}));
  EXPECT_EQ(clamped.params["clamp"], true);
  // Clamped, the perturbation cannot leave the pixel range: a far smaller one here.
  EXPECT_LT(clamped.figures["rounds"][0]["delta_l2"].get<double>(),
            plain.figures["rounds"][0]["delta_l2"].get<double>());
  EXPECT_FALSE(test::same_parameters(plain.model, clamped.model));
}

TEST(DefendNadIbau, SaveAsKerasAndReloadGivesTheSameWeights) {
  BDGUARD_REQUIRE_TINY();
  const Model m = test::tiny_badnet();
  for (const char* method : {"nad", "i-bau"}) {
    const json p = std::string(method) == "nad" ? json{{"teacher_epochs", 1}, {"epochs", 1}}
                                                : json{{"rounds", 1}};
    DefenseResult r = defend(method, m, test::tiny_defense_data(m), test::defense_options(p));
    const std::string path = test::temp_dir() + "/" + method + ".h5";
    save_model(r.model, path);
    const Model back = load_model(path);
    EXPECT_EQ(back.format, ModelFormat::kKeras) << method;
    EXPECT_TRUE(test::same_parameters(back, r.model)) << method;
    EXPECT_FALSE(test::same_parameters(back, m)) << method << ": nothing trained";
  }
}

TEST(DefendNadIbau, KeepPrunedChannelsExactlyZero) {
  BDGUARD_REQUIRE_TINY();
  for (const char* method : {"nad", "i-bau"}) {
    const json p = std::string(method) == "nad" ? json{{"teacher_epochs", 1}, {"epochs", 1}}
                                                : json{{"rounds", 1}};
    test::expect_pruned_channels_kept(method, p);
  }
}

TEST(DefendNad, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  test::expect_same_seed_same_weights("nad", {{"teacher_epochs", 1}, {"epochs", 1}});
}

TEST(DefendIbau, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  test::expect_same_seed_same_weights("i-bau", {{"rounds", 1}});
}

TEST(DefendNad, PoisonedDataNeverChangesTheEpochKept) {
  BDGUARD_REQUIRE_TINY();
  test::expect_poisoned_data_unused("nad", {{"teacher_epochs", 1}, {"epochs", 2}});
}

TEST(DefendIbau, PoisonedDataNeverChangesTheRoundKept) {
  BDGUARD_REQUIRE_TINY();
  test::expect_poisoned_data_unused("i-bau", {{"rounds", 2}, {"keep", "best"}});
}

}  // namespace
}  // namespace bdguard
