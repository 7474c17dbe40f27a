// The real PyTorch 1.13 exports in ../shared/fixtures/onnx: bdguard's graph gives
// PyTorch's top-1 and probabilities (within 1e-5); the fast sweep equals the plain
// method on them (a residual network with a Gemm target, a CNN whose Conv target has a
// BatchNormalization after it); saved models differ from their source only in the
// pruned initializers and pass the onnx checker.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <onnx/checker.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/dataset.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "formats/onnx/proto.h"
#include "sweep_compare.h"
#include "test_util.h"

namespace bdguard {
namespace {

constexpr double kProbTolerance = 1e-5;

std::string onnx_dir() {
  const std::string dir = std::string(BDGUARD_SHARED_DIR) + "/fixtures/onnx";
  return std::ifstream(dir + "/expected.json") ? dir : "";
}
#define REQUIRE_ONNX_FIXTURES()                                                       \
  do {                                                                                \
    if (onnx_dir().empty())                                                           \
      GTEST_SKIP() << "../shared/fixtures/onnx is absent: real-fixture test skipped"; \
  } while (0)

const char* kResNet = "resnet18_narrow_op13_folded.onnx";
const char* kCnn = "simple_cnn_op17_kept.onnx";

nlohmann::json expected() {
  std::ifstream in(onnx_dir() + "/expected.json");
  return nlohmann::json::parse(in);
}

void check_against_pytorch(const std::string& file) {
  const nlohmann::json want = expected()["models"][file];
  Model m = load_model(onnx_dir() + "/" + file);
  const std::string data = onnx_dir() + "/" + want["inputs"].get<std::string>();
  LabDataset d(data, m.input_shape());
  at::NoGradGuard no_grad;
  at::Tensor p = m.probabilities(d.read_all().images).to(at::kDouble);
  const auto top1 = want["top1"].get<std::vector<int64_t>>();
  const auto probs = want["probabilities"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(p.size(0), static_cast<int64_t>(top1.size()));
  for (int64_t i = 0; i < p.size(0); ++i) {
    EXPECT_EQ(p[i].argmax().item<int64_t>(), top1[static_cast<size_t>(i)]) << "input " << i;
    for (int64_t k = 0; k < p.size(1); ++k) {
      EXPECT_NEAR(p[i][k].item<double>(), probs[static_cast<size_t>(i)][static_cast<size_t>(k)],
                  kProbTolerance)
          << "input " << i << " class " << k;
    }
  }
}

TEST(OnnxGolden, ResNetWithFoldedBatchNormMatchesPyTorch) {
  REQUIRE_ONNX_FIXTURES();
  check_against_pytorch(kResNet);
}

TEST(OnnxGolden, CnnWithBatchNormKeptMatchesPyTorch) {
  REQUIRE_ONNX_FIXTURES();
  check_against_pytorch(kCnn);
}

TEST(OnnxGolden, DefaultTargetIsTheClassifierInputForAResNet) {
  // Every stage of a ResNet is bypassed by a skip connection: the features the
  // classifier reads are the target, as in BackdoorBench's Fine-Pruning.
  REQUIRE_ONNX_FIXTURES();
  Model m = load_model(onnx_dir() + "/" + kResNet);
  const ChannelUnit u = default_prune_target(m);
  EXPECT_EQ(m.node(static_cast<size_t>(u.node)).name, "/fc/Gemm");
  EXPECT_EQ(u.kind, ChannelKind::kInput);
  EXPECT_EQ(u.channels, 128);
}

TEST(OnnxGolden, DefaultTargetOfAPlainCnnIsItsLastConvWithItsBatchNorm) {
  REQUIRE_ONNX_FIXTURES();
  Model m = load_model(onnx_dir() + "/" + kCnn);
  const ChannelUnit u = default_prune_target(m);
  EXPECT_EQ(m.node(static_cast<size_t>(u.node)).name, "/conv2/Conv");
  ASSERT_EQ(u.batch_norms.size(), 1u);
  EXPECT_EQ(m.node(static_cast<size_t>(u.batch_norms[0])).name, "/bn2/BatchNormalization");
  EXPECT_EQ(u.slices.size(), 4u);  // conv2 weight and bias, bn2 scale and bias
}

// Inputs like the fixtures' (uniform 0..1) labelled with the model's own top-1 (some
// flipped), and poisoned copies with a bright corner labelled 0.
std::pair<std::string, std::string> write_data(const Model& m, const std::string& dir,
                                               const std::string& stem, uint64_t seed, int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const Shape s = m.input_shape();
  at::Tensor x = at::rand({n, s[0], s[1], s[2]}, gen);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = predict_labels(m, x);
  }
  y.narrow(0, 0, n / 10).fill_(3);
  at::Tensor bx = at::rand({n, s[0], s[1], s[2]}, gen);
  bx.narrow(2, 0, s[1] / 4).narrow(3, 0, s[2] / 4).fill_(1.0);
  const std::string clean = dir + "/" + stem + ".h5", bd = dir + "/bd_" + stem + ".h5";
  write_lab_dataset(clean, x, y);
  write_lab_dataset(bd, bx, at::zeros({n}, at::kLong));
  return {clean, bd};
}

void expect_fast_equals_plain(const std::string& file, const std::string& layer) {
  Model m = load_model(onnx_dir() + "/" + file);
  const std::string dir = test::temp_dir();
  auto [valid, bd_valid] = write_data(m, dir, "valid", 1, 300);
  auto [tst, bd_tst] = write_data(m, dir, "test", 2, 200);
  LabDataset c(valid, m.input_shape()), p(bd_valid, m.input_shape());
  LabDataset t(tst, m.input_shape()), pt(bd_tst, m.input_shape());
  SweepOptions o;
  o.layer = layer;
  o.batch = 64;
  SweepResult fast = run_sweep(m, {&c, &p, &t, &pt}, o);
  SweepResult plain = run_sweep_plain(m, {&c, &p, &t, &pt}, o);
  test::expect_same_sweep(m, fast, plain);
  EXPECT_LT(fast.steps.back().valid_hits, fast.steps.front().valid_hits)
      << "pruning should move the curve";
}

TEST(OnnxGolden, FastSweepEqualsPlainOnTheResNetsClassifierInput) {
  REQUIRE_ONNX_FIXTURES();
  expect_fast_equals_plain(kResNet, "");
}

TEST(OnnxGolden, FastSweepEqualsPlainOnAResNetConvInsideABlock) {
  // layer4.1's first conv: its Relu feeds the block's second conv (linear in the cut),
  // and the block's skip connection is a side input of the part re-run.
  REQUIRE_ONNX_FIXTURES();
  expect_fast_equals_plain(kResNet, "/layer4/layer4.1/conv1/Conv");
}

TEST(OnnxGolden, FastSweepEqualsPlainOnAConvWithBatchNorm) {
  REQUIRE_ONNX_FIXTURES();
  expect_fast_equals_plain(kCnn, "");
}

// ---- Saving ----

onnx::ModelProto read_file(const std::string& path) { return onnx_io::read_model(path); }

std::map<std::string, const onnx::TensorProto*> initializers(const onnx::ModelProto& m) {
  std::map<std::string, const onnx::TensorProto*> out;
  for (const auto& t : m.graph().initializer()) out[t.name()] = &t;
  return out;
}

TEST(OnnxSave, PrunedModelDiffersOnlyInThePrunedInitializersAndPassesTheChecker) {
  REQUIRE_ONNX_FIXTURES();
  const std::string src = onnx_dir() + "/" + kCnn;
  Model m = load_model(src);
  const ChannelUnit u = default_prune_target(m);
  for (int64_t c : {1, 4, 9}) zero_channel(m, u, c);
  const std::string out = test::temp_dir() + "/pruned.onnx";
  save_model(m, out);
  const onnx::ModelProto a = read_file(src), b = read_file(out);
  onnx::checker::check_model(b);
  // The same graph, every initializer byte-identical but the four pruned ones.
  ASSERT_EQ(a.graph().node_size(), b.graph().node_size());
  for (int i = 0; i < a.graph().node_size(); ++i) {
    EXPECT_EQ(a.graph().node(i).SerializeAsString(), b.graph().node(i).SerializeAsString());
  }
  const std::set<std::string> changed = {"conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias"};
  auto ia = initializers(a), ib = initializers(b);
  ASSERT_EQ(ia.size(), ib.size());
  for (const auto& [name, t] : ia) {
    ASSERT_TRUE(ib.count(name)) << name;
    EXPECT_EQ(t->SerializeAsString() == ib[name]->SerializeAsString(), !changed.count(name))
        << name;
  }
  // Reloaded, the three channels are exactly 0 after bn2, and the outputs are the
  // in-memory model's.
  Model back = load_model(out);
  EXPECT_EQ(zero_channels(back, default_prune_target(back)), (std::vector<int64_t>{1, 4, 9}));
  at::NoGradGuard no_grad;
  at::Tensor x = at::rand({4, 1, 28, 28});
  EXPECT_TRUE(at::equal(back.forward(x), m.forward(x)));
  at::Tensor bn2 = back.run(x, {back.find("/bn2/BatchNormalization")})[0];
  for (int64_t c : {1, 4, 9}) EXPECT_EQ(bn2.select(1, c).abs().max().item<float>(), 0.0f) << c;
}

TEST(OnnxSave, UnchangedModelIsWrittenByteForByte) {
  REQUIRE_ONNX_FIXTURES();
  for (const char* file : {kResNet, kCnn}) {
    const std::string src = onnx_dir() + "/" + file;
    const std::string out = test::temp_dir() + "/copy.onnx";
    save_model(load_model(src), out);
    EXPECT_EQ(test::read_text(out), test::read_text(src)) << file;
  }
}

TEST(OnnxSave, SharedInitializerIsCopiedForTheChangedNodeAlone) {
  // The exporter merged layer1's four equal (all-zero) conv biases into onnx::Conv_197,
  // read by one conv directly and by three through Identity nodes. Each conv has its
  // own bias in the graph; when one of them changes (training would do it), the saved
  // file gives that conv a copy, and the other three still read the original.
  REQUIRE_ONNX_FIXTURES();
  const std::string src = onnx_dir() + "/" + kResNet;
  Model m = load_model(src);
  const std::string conv = "/layer1/layer1.0/conv2/Conv";
  const int bias = m.node(static_cast<size_t>(m.find(conv))).inputs.at(2);
  ASSERT_EQ(m.node(static_cast<size_t>(bias)).source, "onnx::Conv_197");
  m.node(static_cast<size_t>(bias)).value.fill_(0.25);
  zero_channel(m, resolve_prune_target(m, conv), 5);
  const std::string out = test::temp_dir() + "/pruned.onnx";
  save_model(m, out);
  const onnx::ModelProto a = read_file(src), b = read_file(out);
  onnx::checker::check_model(b);
  EXPECT_EQ(b.graph().initializer_size(), a.graph().initializer_size() + 1);
  int readers_of_copy = 0;
  std::string copy;
  for (const auto& n : b.graph().node()) {
    for (const auto& in : n.input()) {
      if (in.find(".bdguard") != std::string::npos) {
        ++readers_of_copy;
        copy = in;
        EXPECT_EQ(n.name(), conv);
      }
    }
  }
  EXPECT_EQ(readers_of_copy, 1);
  Model back = load_model(out);
  at::NoGradGuard no_grad;
  at::Tensor x = at::rand({2, 3, 32, 32});
  EXPECT_TRUE(at::equal(back.forward(x), m.forward(x)));
  EXPECT_EQ(zero_channels(back, resolve_prune_target(back, conv)), (std::vector<int64_t>{5}));
  // The other convs that read the shared bias kept it (all zero).
  int zero_biases = 0;
  for (const auto& n : back.parameter_nodes()) {
    const Node& p = back.node(static_cast<size_t>(n));
    if (p.source == "onnx::Conv_197") {
      EXPECT_EQ(p.value.abs().max().item<float>(), 0.0f) << p.layer;
      ++zero_biases;
    }
  }
  EXPECT_EQ(zero_biases, 3);
  EXPECT_FALSE(copy.empty());
}

}  // namespace
}  // namespace bdguard
