// Every command on the real PyTorch exports of ../shared/fixtures/onnx, as a user runs
// them: inspect, eval, predict, prune, finetune, run, goodnet; preprocessing with
// --mean / --std; lab data in either layout; outputs in the input's format.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/dataset.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "hdf5/h5.h"
#include "onnx_fixtures.h"
#include "test_util.h"

namespace bdguard {
namespace {

using test::cnn;
using test::Data;
using test::kScale;
using test::onnx_dir;
using test::resnet;
using test::write_data;
using test::write_set;

namespace fs = std::filesystem;
using nlohmann::json;

TEST(OnnxCli, InspectListsEveryNodeOfTheFile) {
  REQUIRE_ONNX_FIXTURES();
  auto r = test::run_cli("inspect --json --model " + resnet());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["format"], "onnx");
  std::map<std::string, int> ops;
  int64_t params = 0;
  for (const auto& l : doc["layers"]) {
    ops[l["class"].get<std::string>()]++;
    params += l["params"].get<int64_t>();
    const bool prunable = l["class"] == "Conv" || l["class"] == "Gemm";
    EXPECT_EQ(l.contains("zero_channels"), prunable) << l.dump();
  }
  // expected.json's op counts.
  EXPECT_EQ(ops["Conv"], 20);
  EXPECT_EQ(ops["Relu"], 17);
  EXPECT_EQ(ops["Add"], 8);
  EXPECT_EQ(ops["Identity"], 3);
  EXPECT_EQ(ops["Gemm"], 1);
  const json fc = doc["layers"].back();
  EXPECT_EQ(fc["name"], "/fc/Gemm");
  EXPECT_EQ(fc["output_shape"], json::parse("[null, 10]"));
  EXPECT_EQ(fc["params"], 128 * 10 + 10);
  EXPECT_EQ(fc["zero_channels_kind"], "input");
  EXPECT_GT(params, 600000);
}

TEST(OnnxCli, EvalGivesPyTorchsTop1) {
  // The fixture's labels are PyTorch's own top-1 (inputs already in 0..1).
  REQUIRE_ONNX_FIXTURES();
  for (const std::string& m : {resnet(), cnn()}) {
    const std::string data = m.substr(0, m.size() - 5) + ".h5";
    auto r = test::run_cli("eval --json --model " + m + " --clean " + data);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_DOUBLE_EQ(json::parse(r.out)["clean_accuracy"].get<double>(), 100.0) << m;
  }
}

TEST(OnnxCli, ModelsAreRecognisedByTheirContent) {
  // An ONNX file without its extension, and a Keras file named .onnx, still read as
  // what they are.
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  fs::copy_file(cnn(), dir + "/model.bin");
  auto r = test::run_cli("inspect --json --model " + dir + "/model.bin");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["format"], "onnx");
  if (!test::csaw_dir().empty()) {
    fs::copy_file(test::csaw_dir() + "/model_X=2.h5", dir + "/keras.onnx");
    auto k = test::run_cli("inspect --json --model " + dir + "/keras.onnx");
    ASSERT_EQ(k.exit_code, 0) << k.err;
    EXPECT_EQ(json::parse(k.out)["format"], "keras");
  }
}

TEST(OnnxCli, NhwcDataIsReadAsItsTranspose) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Model m = load_model(resnet());
  write_set(m, dir + "/nchw.h5", 5, 40, false);
  write_set(m, dir + "/nhwc.h5", 5, 40, false, /*nhwc=*/true);
  auto a = test::run_cli("eval --json --model " + resnet() + " --clean " + dir + "/nchw.h5");
  auto b = test::run_cli("eval --json --model " + resnet() + " --clean " + dir + "/nhwc.h5");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  // A layout forced against the file is refused.
  auto c = test::run_cli("eval --model " + resnet() + " --layout nchw --clean " + dir + "/nhwc.h5");
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("per --layout"), std::string::npos) << c.err;
}

TEST(OnnxCli, MeanAndStdNormalizeEachChannel) {
  // (pixel * scale - mean_c) / std_c per channel: the CLI's labels equal the ones the
  // model gives the normalized pixels directly.
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Model m = load_model(resnet());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  at::Tensor x = (at::rand({64, 3, 32, 32}, gen) * 255).round();
  const std::vector<double> mean{0.4914, 0.4822, 0.4465}, std{0.247, 0.243, 0.261};
  at::Tensor norm = x / 255.0;
  for (int c = 0; c < 3; ++c)
    norm.select(1, c).sub_(mean[static_cast<size_t>(c)]).div_(std[static_cast<size_t>(c)]);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = predict_labels(m, norm);
  }
  write_lab_dataset(dir + "/d.h5", x, y);
  auto r =
      test::run_cli("eval --json --model " + resnet() + kScale +
                    "--mean 0.4914,0.4822,0.4465 --std 0.247,0.243,0.261 --clean " + dir + "/d.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_DOUBLE_EQ(json::parse(r.out)["clean_accuracy"].get<double>(), 100.0);
  auto bad = test::run_cli("eval --model " + resnet() + " --mean 0.1,0.2 --clean " + dir + "/d.h5");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--mean: expected 1 or 3 values"), std::string::npos) << bad.err;
}

TEST(OnnxCli, PredictReadsAGrayscalePngForAOneChannelModel) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor img = (at::rand({1, 28, 28}, gen) * 255).round();
  write_png(dir + "/digit.png", img);
  auto r = test::run_cli("predict --json --top 3" + kScale + "--model " + cnn() + " " + dir +
                         "/digit.png");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  LoadOptions lo;
  lo.preprocess.scale = 1.0 / 255;
  Model m = load_model(cnn(), {}, lo);
  at::NoGradGuard no_grad;
  at::Tensor p = m.probabilities(img.unsqueeze(0)).to(at::kDouble)[0];
  json doc = json::parse(r.out);
  EXPECT_EQ(doc[0]["label"], p.argmax().item<int64_t>());
  EXPECT_NEAR(doc[0]["prob"].get<double>(), p.max().item<double>(), 1e-6);
  // A 32x32 image does not fit the 28x28 model.
  write_png(dir + "/big.png", at::zeros({1, 32, 32}));
  auto big = test::run_cli("predict --model " + cnn() + " " + dir + "/big.png");
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_NE(big.err.find("expected 28x28"), std::string::npos) << big.err;
}

TEST(OnnxCli, PruneSavesOnnxModelsAndNamesTheTarget) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Data d = write_data(cnn(), dir, 120);
  auto r = test::run_cli("prune --json --quiet" + kScale + "--model " + cnn() + " --clean " +
                         d.valid + " --poisoned " + d.bd_valid + " --test " + d.test +
                         " --poisoned-test " + d.bd_test + " --out " + dir + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["layer"], "/conv2/Conv");
  EXPECT_EQ(doc["cut_layer"], "/MaxPool_1");
  EXPECT_EQ(doc["target"]["kind"], "conv_output_channels");
  EXPECT_EQ(doc["target"]["zeroed"],
            json::parse(R"(["conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias"])"));
  EXPECT_EQ(doc["settings"]["format"], "onnx");
  for (const auto& s : doc["saved_models"]) {
    if (!s["reached"].get<bool>()) continue;
    const std::string file = s["file"].get<std::string>();
    EXPECT_EQ(file.substr(file.size() - 5), ".onnx");
    Model pruned = load_model(dir + "/out/" + file);
    EXPECT_EQ(zero_channels(pruned, default_prune_target(pruned)).size(),
              static_cast<size_t>(s["step"].get<int>()));
  }
}

TEST(OnnxCli, FinetuneKeepsPrunedChannelsAndBatchNormStatistics) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Data d = write_data(cnn(), dir, 100);
  Model m = load_model(cnn());
  const ChannelUnit u = default_prune_target(m);
  for (int64_t c : {0, 7, 11}) zero_channel(m, u, c);
  save_model(m, dir + "/pruned.onnx");
  auto r = test::run_cli("finetune --quiet --json --epochs 2" + kScale + "--model " + dir +
                         "/pruned.onnx --clean " + d.valid + " --out " + dir + "/tuned.onnx");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Model tuned = load_model(dir + "/tuned.onnx");
  EXPECT_EQ(zero_channels(tuned, default_prune_target(tuned)), (std::vector<int64_t>{0, 7, 11}));
  bool trained = false;
  for (int i : m.parameter_nodes()) {
    const Node& a = m.node(static_cast<size_t>(i));
    const Node& b = tuned.node(static_cast<size_t>(tuned.find(a.name)));
    trained |= !at::equal(a.value, b.value);
  }
  EXPECT_TRUE(trained);
  // Running statistics are fixed (BatchNormalization in its inference form).
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& a = m.node(i);
    if (a.kind == NodeKind::kParam && !a.trainable) {
      EXPECT_TRUE(at::equal(a.value, tuned.node(static_cast<size_t>(tuned.find(a.name))).value))
          << a.name;
    }
  }
  // The output keeps the input's format: an .h5 name is refused before any training.
  auto h5 = test::run_cli("finetune --quiet --model " + dir + "/pruned.onnx --clean " + d.valid +
                          " --out " + dir + "/tuned.h5");
  EXPECT_EQ(h5.exit_code, 1);
  EXPECT_NE(h5.err.find("expected a file name ending in .onnx"), std::string::npos) << h5.err;
}

TEST(OnnxCli, RunWritesOnnxModelsAndTheReport) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Data d = write_data(resnet(), dir, 100);
  auto r = test::run_cli("run --quiet --no-detect --no-compare --epochs 1" + kScale +
                         "--mean 0.5 --std 0.25 --model " + resnet() + " --valid " + d.valid +
                         " --poisoned-valid " + d.bd_valid + " --test " + d.test +
                         " --poisoned-test " + d.bd_test + " --out " + dir + "/run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json summary = json::parse(test::read_text(dir + "/run/summary.json"));
  EXPECT_EQ(summary["settings"]["mean"], json::parse("[0.5]"));
  EXPECT_EQ(summary["settings"]["std"], json::parse("[0.25]"));
  EXPECT_EQ(summary["sweep"]["layer"], "/fc/Gemm");
  for (const auto& s : summary["saved_models"]) {
    if (!s["reached"].get<bool>()) continue;
    EXPECT_TRUE(fs::exists(dir + "/run/" + s["file"].get<std::string>()));
  }
  for (const auto& f : summary["fine_pruned_models"]) {
    const std::string file = f["file"].get<std::string>();
    EXPECT_EQ(file.substr(file.size() - 15), "_finetuned.onnx") << file;
  }
}

TEST(OnnxCli, GoodnetManifestRecordsThePreprocessing) {
  REQUIRE_ONNX_FIXTURES();
  const std::string dir = test::temp_dir();
  Data d = write_data(resnet(), dir, 60);
  Model m = load_model(resnet());
  const ChannelUnit u = default_prune_target(m);
  for (int64_t c = 0; c < 40; ++c) zero_channel(m, u, c);
  save_model(m, dir + "/p.onnx");
  const std::string flags = kScale + "--mean 0.5 --std 0.25";
  auto s = test::run_cli("goodnet save" + flags + " --badnet " + resnet() + " --pruned " + dir +
                         "/p.onnx --out " + dir + "/g.json");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  json g = json::parse(test::read_text(dir + "/g.json"));
  EXPECT_EQ(g["mean"], json::parse("[0.5]"));
  EXPECT_EQ(g["std"], json::parse("[0.25]"));
  auto a = test::run_cli("goodnet eval --json" + flags + " --badnet " + resnet() + " --pruned " +
                         dir + "/p.onnx --clean " + d.test + " --poisoned " + d.bd_test);
  auto b = test::run_cli("goodnet eval --json --goodnet " + dir + "/g.json --clean " + d.test +
                         " --poisoned " + d.bd_test);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json ra = json::parse(a.out)["rows"][0], rb = json::parse(b.out)["rows"][0];
  ra.erase("pruned");
  rb.erase("pruned");
  EXPECT_EQ(ra, rb);
}

}  // namespace
}  // namespace bdguard
