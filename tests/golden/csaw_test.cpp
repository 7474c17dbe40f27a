// Golden tests on the real CSAW-HackML BadNet: predictions of every model x image
// in ../shared/fixtures/csaw/expected.json (an independent float64 implementation),
// and the pruned channels of model_X=2.h5, through the library and through the CLI.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

// Probabilities must match the float64 reference to this absolute tolerance (the
// fixtures' README sets it); top-1 and the top-5 labels must match exactly.
constexpr double kProbTolerance = 1e-4;

// conv_3 channels that model_X=2.h5 prunes (fixture README: 0,1,2,3,6,9,12,13,14,15,
// 17,19-27,29-34,36-45,47-51,53,55,58,59), 45 in all.
const std::vector<int64_t> kPrunedConv3 = {
    0,  1,  2,  3,  6,  9,  12, 13, 14, 15, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31,
    32, 33, 34, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47, 48, 49, 50, 51, 53, 55, 58, 59};

nlohmann::json expected_doc() {
  return nlohmann::json::parse(test::read_text(test::csaw_dir() + "/expected.json"));
}

// The fixtures' weights-only file needs the DeepID architecture; the full model carries its own.
Model load_fixture(const std::string& file) {
  const std::string path = test::csaw_dir() + "/" + file;
  return file == "lab3_bd_weights.h5" ? load_model(path, ArchSource{"deepid", ""})
                                      : load_model(path);
}

// The output layer's logits (its input through the Dense kernel, before softmax).
// Softmax preserves order, and far down the tail the float32 probabilities of the
// trigger images underflow to 0 (the reference lists 1e-47 .. 1e-70), so the top-5
// order is read from the logits.
at::Tensor logits(const Model& m, const at::Tensor& x) { return m.run(x, {m.logits_index()})[0]; }

void check_model(const std::string& file) {
  const nlohmann::json doc = expected_doc();
  ASSERT_TRUE(doc["models"].contains(file)) << file << " is not in expected.json";
  const Model m = load_fixture(file);
  ASSERT_EQ(m.num_classes(), 1283);
  ASSERT_DOUBLE_EQ(doc["input_scale"].get<double>(), m.preprocess.scale);
  at::NoGradGuard no_grad;
  for (const auto& [image, want] : doc["models"][file]["predictions"].items()) {
    SCOPED_TRACE(file + " x " + image);
    at::Tensor x = load_image(test::csaw_dir() + "/images/" + image, m.input_shape());
    at::Tensor probs = m.forward(x)[0].to(at::kDouble);
    EXPECT_EQ(probs.argmax().item<int64_t>(), want["top1"].get<int64_t>());
    EXPECT_NEAR(probs.sum().item<double>(), 1.0, kProbTolerance);

    auto top5 = std::get<1>(logits(m, x)[0].topk(5));
    const auto want_top5 = want["top5"].get<std::vector<int64_t>>();
    const auto want_p = want["top5_p"].get<std::vector<double>>();
    ASSERT_EQ(want_top5.size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(top5[static_cast<int64_t>(k)].item<int64_t>(), want_top5[k]) << "rank " << k;
      EXPECT_NEAR(probs[want_top5[k]].item<double>(), want_p[k], kProbTolerance)
          << "label " << want_top5[k];
    }
    EXPECT_NEAR(probs[want["top1"].get<int64_t>()].item<double>(), want["p_top1"].get<double>(),
                kProbTolerance);
  }
}

TEST(CsawGolden, WeightsOnlyBadNetMatchesReferencePredictions) {
  BDGUARD_REQUIRE_CSAW();
  check_model("lab3_bd_weights.h5");
}

TEST(CsawGolden, FullPrunedModelMatchesReferencePredictions) {
  BDGUARD_REQUIRE_CSAW();
  check_model("model_X=2.h5");
}

TEST(CsawGolden, ExpectedJsonCoversBothModelsAndEveryImage) {
  BDGUARD_REQUIRE_CSAW();
  const nlohmann::json doc = expected_doc();
  EXPECT_EQ(doc["models"].size(), 2u);
  for (const auto& [file, model] : doc["models"].items()) {
    EXPECT_EQ(model["predictions"].size(), doc["images"].size()) << file;
  }
  EXPECT_EQ(doc["images"].size(), 8u);
}

TEST(CsawGolden, PrunedModelHasExactlyThe45ListedConv3ChannelsZero) {
  BDGUARD_REQUIRE_CSAW();
  const Model m = load_fixture("model_X=2.h5");
  EXPECT_FALSE(m.weights_only);
  const int conv3 = m.find("conv_3");
  ASSERT_GE(conv3, 0);
  EXPECT_EQ(kPrunedConv3.size(), 45u);
  EXPECT_EQ(test::zeros_of(m, "conv_3"), kPrunedConv3);
  for (const char* other : {"conv_1", "conv_2", "conv_4", "fc_1", "fc_2", "output"}) {
    EXPECT_TRUE(test::zeros_of(m, other).empty()) << other;
  }
}

TEST(CsawGolden, BadNetHasNoZeroChannels) {
  BDGUARD_REQUIRE_CSAW();
  const Model m = load_fixture("lab3_bd_weights.h5");
  EXPECT_TRUE(m.weights_only);
  EXPECT_TRUE(pruned_channels(m).empty());
  for (const char* layer : {"conv_1", "conv_2", "conv_3", "conv_4", "fc_1", "fc_2", "output"}) {
    EXPECT_TRUE(test::zeros_of(m, layer).empty()) << layer;
  }
}

TEST(CsawGolden, PrunedModelOtherWeightsAreBitIdenticalToBadNet) {
  BDGUARD_REQUIRE_CSAW();
  const Model bad = load_fixture("lab3_bd_weights.h5");
  const Model pruned = load_fixture("model_X=2.h5");
  ASSERT_EQ(bad.size(), pruned.size());
  for (int i : bad.parameter_nodes()) {
    // The two files list the layers in different orders: match them by name.
    const Node& a = bad.node(static_cast<size_t>(i));
    const int j = pruned.find(a.name);
    ASSERT_GE(j, 0) << a.name;
    const Node& b = pruned.node(static_cast<size_t>(j));
    if (a.layer == "conv_3") {
      // Output channels lie along axis 0 of the graph's kernel (OIHW) and the bias.
      at::Tensor keep = at::ones({60}, at::kBool);
      for (int64_t c : kPrunedConv3) keep[c] = false;
      at::Tensor kept = keep.nonzero().squeeze(1);
      EXPECT_TRUE(at::equal(a.value.index_select(0, kept), b.value.index_select(0, kept)));
    } else {
      EXPECT_TRUE(at::equal(a.value, b.value)) << a.name;
    }
  }
}

std::vector<int64_t> cli_zero_channels(const std::string& args, const std::string& layer) {
  test::CliResult r = test::run_cli("inspect --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out);
  for (const auto& l : doc["layers"]) {
    if (l["name"] == layer) return l["zero_channels"].get<std::vector<int64_t>>();
  }
  ADD_FAILURE() << "no layer " << layer << " in: " << r.out;
  return {};
}

TEST(CsawGolden, CliInspectListsThe45PrunedConv3Channels) {
  BDGUARD_REQUIRE_CSAW();
  const std::string model = "'" + test::csaw_dir() + "/model_X=2.h5'";
  EXPECT_EQ(cli_zero_channels("--model " + model, "conv_3"), kPrunedConv3);
}

TEST(CsawGolden, CliInspectListsNoPrunedChannelsInBadNet) {
  BDGUARD_REQUIRE_CSAW();
  const std::string model = "'" + test::csaw_dir() + "/lab3_bd_weights.h5' --arch deepid";
  EXPECT_TRUE(cli_zero_channels("--model " + model, "conv_3").empty());
}

}  // namespace
}  // namespace bdguard
