// sau, ft-sam and fst (defend.h) on the tiny Fashion-MNIST BadNet (defend_fixture.h):
// each lowers the ASR on the test file with pruned channels kept at zero, and the same
// seed gives the same weights. Short settings keep the whole file near 20 s on 2 cores.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/defend.h"
#include "bdguard/error.h"
#include "bdguard/prune.h"
#include "defend_fixture.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

const json kShortSau = {{"epochs", 2}};
const json kShortFtSam = {{"epochs", 3}, {"batch", 64}};
const json kShortFst = {{"epochs", 3}, {"batch", 32}};

// Runs `method` with pruned channels (defend_fixture.h) and checks that the ASR on 1,000
// poisoned test images falls below `max_asr` while held-out accuracy stays within
// `max_drop` points.
DefenseResult expect_lower_asr(const std::string& method, const json& p, double max_asr,
                               double max_drop) {
  DefenseResult r = test::expect_pruned_channels_kept(method, p);
  const Model m = test::tiny_badnet();
  const TensorData bd_test = test::tiny_rows(m, "bd_test.h5", 1000);
  EXPECT_GT(accuracy(m, bd_test), 85.0);
  EXPECT_LT(accuracy(r.model, bd_test), max_asr) << method << ": " << r.figures.dump();
  EXPECT_GT(*r.after.clean_accuracy, *r.before.clean_accuracy - max_drop)
      << method << ": " << r.figures.dump();
  return r;
}

TEST(DefendSau, LowersTheAsrAndKeepsPrunedChannels) {
  BDGUARD_REQUIRE_TINY();
  const DefenseResult r = expect_lower_asr("sau", kShortSau, 50.0, 10.0);
  EXPECT_EQ(r.figures["epochs_run"], 2);
  EXPECT_EQ(r.figures["best_epoch"], 2);  // the last round, as the original
  EXPECT_EQ(r.figures["pixel_range"], json::parse("[0, 255]"));
}

TEST(DefendFtSam, LowersTheAsrAndKeepsPrunedChannels) {
  BDGUARD_REQUIRE_TINY();
  const DefenseResult r = expect_lower_asr("ft-sam", kShortFtSam, 60.0, 5.0);
  EXPECT_EQ(r.params["adaptive"], true);
  EXPECT_DOUBLE_EQ(r.params["rho"].get<double>(), 2.0);
}

TEST(DefendFst, LowersTheAsrAndKeepsPrunedChannels) {
  BDGUARD_REQUIRE_TINY();
  const DefenseResult r = expect_lower_asr("fst", kShortFst, 20.0, 5.0);
  // The head: the Dense computing the logits, rescaled to its old norm and turned away
  // from its old weights.
  const Model m = test::tiny_badnet();
  const std::string head = r.figures["head"].get<std::string>();
  const int w = linear_output_unit(m, m.find(head)).slices[0].param;
  EXPECT_NEAR(r.model.node(static_cast<size_t>(w)).value.norm().item<double>(),
              m.node(static_cast<size_t>(w)).value.norm().item<double>(), 1e-3);
  EXPECT_LT(r.figures["head_cosine_to_badnet"].get<double>(), 0.5) << r.figures.dump();
}

TEST(DefendFst, KeepsTheHeadsPrunedInputsZero) {
  BDGUARD_REQUIRE_TINY();
  Model m = test::tiny_badnet();
  const DefenseResult probe =
      defend("fst", m, test::tiny_defense_data(m), test::defense_options({{"epochs", 0}}));
  const ChannelUnit inputs = linear_input_unit(m, m.find(probe.figures["head"].get<std::string>()));
  zero_channel(m, inputs, 2);
  const DefenseResult r =
      defend("fst", m, test::tiny_defense_data(m), test::defense_options({{"epochs", 1}}));
  EXPECT_EQ(zero_channels(r.model, inputs), std::vector<int64_t>{2});
}

TEST(DefendSau, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  test::expect_same_seed_same_weights("sau", {{"epochs", 1}});
}

TEST(DefendFtSam, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  test::expect_same_seed_same_weights("ft-sam", {{"epochs", 1}});
}

TEST(DefendFst, SameSeedGivesIdenticalWeights) {
  BDGUARD_REQUIRE_TINY();
  test::expect_same_seed_same_weights("fst", {{"epochs", 1}});
}

}  // namespace
}  // namespace bdguard
