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
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

Model badnet() { return load_model(test::tiny_dir("badnet") + "/bd_net.h5"); }

// The first `n` rows of one of the tiny BadNet's data files.
TensorData rows(const Model& m, const std::string& file, int64_t n) {
  TensorData all =
      read_tensor_data(LabDataset(test::tiny_dir("badnet") + "/data/" + file, m.input_shape()));
  n = std::min(n, all.size());
  return {all.images.narrow(0, 0, n), all.labels.narrow(0, 0, n)};
}

DefenseData data_of(const Model& m) {
  DefenseData d;
  d.clean = rows(m, "valid.h5", 1500);  // 1,200 trained on, 300 held out
  d.poisoned = rows(m, "bd_valid.h5", 500);
  return d;
}

DefenseOptions options(const json& params, uint64_t seed = 1) {
  DefenseOptions o;
  o.seed = seed;
  o.params = params;
  return o;
}

const json kShortNad = {{"teacher_epochs", 3}, {"epochs", 3}};
const json kShortIbau = {{"rounds", 2}};

bool same_weights(const Model& a, const Model& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t k = 0; k < pa.size(); ++k) {
    if (!at::equal(pa[k], pb[k])) return false;
  }
  return true;
}

TEST(DefendNad, LowersTheAsrOnTheTestFile) {
  BDGUARD_REQUIRE_TINY();
  const Model m = badnet();
  const TensorData bd_test = rows(m, "bd_test.h5", 1000);
  const double before = accuracy(m, bd_test);
  DefenseResult r = defend("nad", m, data_of(m), options(kShortNad));
  const double after = accuracy(r.model, bd_test);
  EXPECT_GT(before, 85.0);
  EXPECT_LT(after, 50.0) << r.figures.dump();
  EXPECT_GT(*r.after.clean_accuracy, *r.before.clean_accuracy - 5) << r.figures.dump();
}

TEST(DefendNad, DistilsTheLastThreeConvsAfterTheirRelu) {
  BDGUARD_REQUIRE_TINY();
  const Model m = badnet();
  DefenseResult r = defend("nad", m, data_of(m), options({{"teacher_epochs", 0}, {"epochs", 1}}));
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
  const Model m = badnet();
  DefenseResult r = defend("nad", m, data_of(m),
                           options({{"teacher_epochs", 0}, {"epochs", 1}, {"betas", "2000"}}));
  ASSERT_EQ(r.figures["stages"].size(), 1u);
  EXPECT_EQ(r.figures["stages"][0]["conv"], "conv_4");
  EXPECT_EQ(r.figures["stages"][0]["beta"].get<double>(), 2000);
}

TEST(DefendNad, RejectsBetasThatAreNotNumbers) {
  BDGUARD_REQUIRE_TINY();
  const Model m = badnet();
  EXPECT_THROW(defend("nad", m, data_of(m), options({{"betas", "500,x"}})), InvalidArgument);
  EXPECT_THROW(defend("nad", m, data_of(m), options({{"betas", "-1"}})), InvalidArgument);
}

TEST(DefendIbau, LowersTheAsrOnTheTestFile) {
  BDGUARD_REQUIRE_TINY();
  const Model m = badnet();
  const TensorData bd_test = rows(m, "bd_test.h5", 1000);
  const double before = accuracy(m, bd_test);
  DefenseResult r = defend("i-bau", m, data_of(m), options(kShortIbau));
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
  const Model m = badnet();
  DefenseResult plain = defend("i-bau", m, data_of(m), options({{"rounds", 1}}));
  DefenseResult clamped = defend("i-bau", m, data_of(m), options({{"rounds", 1}, {"clamp", true}}));
  EXPECT_EQ(clamped.params["clamp"], true);
  // Clamped, the perturbation cannot leave the pixel range: a far smaller one here.
  EXPECT_LT(clamped.figures["rounds"][0]["delta_l2"].get<double>(),
            plain.figures["rounds"][0]["delta_l2"].get<double>());
  EXPECT_FALSE(same_weights(plain.model, clamped.model));
}

TEST(DefendNadIbau, SaveAsKerasAndReloadGivesTheSameWeights) {
  BDGUARD_REQUIRE_TINY();
  const Model m = badnet();
  for (const char* method : {"nad", "i-bau"}) {
    const json p = std::string(method) == "nad" ? json{{"teacher_epochs", 1}, {"epochs", 1}}
                                                : json{{"rounds", 1}};
    DefenseResult r = defend(method, m, data_of(m), options(p));
    const std::string path = test::temp_dir() + "/" + method + ".h5";
    save_model(r.model, path);
    const Model back = load_model(path);
    EXPECT_EQ(back.format, ModelFormat::kKeras) << method;
    EXPECT_TRUE(same_weights(back, r.model)) << method;
    EXPECT_FALSE(same_weights(back, m)) << method << ": nothing trained";
  }
}

TEST(DefendNadIbau, KeepPrunedChannelsExactlyZero) {
  BDGUARD_REQUIRE_TINY();
  Model m = badnet();
  const ChannelUnit conv3 = conv_unit(m, m.find("conv_3"));
  const ChannelUnit conv4 = conv_unit(m, m.find("conv_4"));
  zero_channel(m, conv3, 5);
  zero_channel(m, conv4, 0);
  zero_channel(m, conv4, 7);
  for (const char* method : {"nad", "i-bau"}) {
    const json p = std::string(method) == "nad" ? json{{"teacher_epochs", 1}, {"epochs", 1}}
                                                : json{{"rounds", 1}};
    DefenseResult r = defend(method, m, data_of(m), options(p));
    EXPECT_EQ(zero_channels(r.model, conv_unit(r.model, r.model.find("conv_3"))),
              std::vector<int64_t>{5})
        << method;
    EXPECT_EQ(zero_channels(r.model, conv_unit(r.model, r.model.find("conv_4"))),
              (std::vector<int64_t>{0, 7}))
        << method;
    EXPECT_EQ(r.figures["pruned_channels_kept"], 3) << method;
  }
}

// The API takes no test data; the same seed gives the same weights, and the poisoned
// validation data (reported only) changes nothing.
void expect_same_seed_same_weights(const std::string& method, const json& p) {
  const Model m = badnet();
  const DefenseData d = data_of(m);
  const DefenseResult a = defend(method, m, d, options(p, 7));
  const DefenseResult b = defend(method, m, d, options(p, 7));
  EXPECT_TRUE(same_weights(a.model, b.model));
}

void expect_poisoned_data_unused(const std::string& method, const json& p) {
  const Model m = badnet();
  DefenseData with = data_of(m), without = data_of(m);
  without.poisoned.reset();
  const DefenseResult a = defend(method, m, with, options(p));
  const DefenseResult b = defend(method, m, without, options(p));
  EXPECT_TRUE(same_weights(a.model, b.model));
  EXPECT_TRUE(a.after.asr.has_value());
  EXPECT_FALSE(b.after.asr.has_value());
}

TEST(DefendNad, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  expect_same_seed_same_weights("nad", {{"teacher_epochs", 1}, {"epochs", 1}});
}

TEST(DefendIbau, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  expect_same_seed_same_weights("i-bau", {{"rounds", 1}});
}

TEST(DefendNad, PoisonedDataNeverChangesTheEpochKept) {
  BDGUARD_REQUIRE_TINY();
  expect_poisoned_data_unused("nad", {{"teacher_epochs", 1}, {"epochs", 2}});
}

TEST(DefendIbau, PoisonedDataNeverChangesTheRoundKept) {
  BDGUARD_REQUIRE_TINY();
  expect_poisoned_data_unused("i-bau", {{"rounds", 2}, {"keep", "best"}});
}

}  // namespace
}  // namespace bdguard
