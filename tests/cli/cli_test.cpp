// The bdguard binary, run as a user would: eval on small lab-format files made from
// the fixture faces (with labels counted by hand), predict, inspect, and the exit
// codes and one-line errors of bad usage (2) and bad input (1).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "hdf5/h5.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

std::string q(const std::string& s) { return "'" + s + "'"; }
std::string fixture(const std::string& name) { return test::csaw_dir() + "/" + name; }
std::string image(const std::string& name) { return fixture("images/" + name); }
std::string badnet() { return "--model " + q(fixture("lab3_bd_weights.h5")) + " --arch deepid"; }

// One `error: ...` line on stderr and nothing on stdout.
void expect_one_error_line(const test::CliResult& r) {
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_TRUE(r.out.empty()) << r.out;
}

struct Row {
  std::string image;
  int64_t label;
};

// Both fixture models predict every face's true class and 0 on every sunglasses face
// (expected.json). Clean file: 10 rows, rows 2 and 7 deliberately mislabelled, so
// 8 of 10 are right: 80.00 %.
const std::vector<Row> kClean = {{"cl_0_label=43.png", 43},   {"cl_1_label=328.png", 328},
                                 {"cl_2_label=196.png", 5},   {"cl_3_label=1268.png", 1268},
                                 {"cl_4_label=748.png", 748}, {"sun_0_label=0.png", 0},
                                 {"sun_1_label=0.png", 0},    {"sun_2_label=0.png", 7},
                                 {"cl_0_label=43.png", 43},   {"cl_4_label=748.png", 748}};
// Poisoned file: labels are the attack target 0. The three sunglasses faces go to 0,
// the clean face cl_0 stays 43: 3 of 4, 75.00 %.
const std::vector<Row> kPoisoned = {{"sun_0_label=0.png", 0},
                                    {"sun_1_label=0.png", 0},
                                    {"sun_2_label=0.png", 0},
                                    {"cl_0_label=43.png", 0}};

// (N, 3, 55, 47) raw pixels and (N) labels of `rows`.
std::pair<at::Tensor, at::Tensor> load_rows(const std::vector<Row>& rows) {
  std::vector<at::Tensor> xs;
  std::vector<int64_t> ys;
  for (const auto& r : rows) {
    xs.push_back(load_image(image(r.image), {3, 55, 47}));
    ys.push_back(r.label);
  }
  return {at::cat(xs), at::tensor(ys, at::kLong)};
}

// The lab's layout: data (N, C, H, W) float32, label (N).
std::string write_nchw(const std::string& path, const std::vector<Row>& rows) {
  auto [x, y] = load_rows(rows);
  write_lab_dataset(path, x, y);
  return path;
}

// The same images channels-last: data (N, H, W, C).
std::string write_nhwc(const std::string& path, const std::vector<Row>& rows) {
  auto [x, y] = load_rows(rows);
  at::Tensor nhwc = x.permute({0, 2, 3, 1}).contiguous();
  h5::File f = h5::File::create(path);
  h5::write_float_dataset(f, "/data", {nhwc.size(0), 55, 47, 3}, nhwc.data_ptr<float>());
  h5::write_int64_dataset(f, "/label", {y.numel()}, y.data_ptr<int64_t>());
  f.flush();
  return path;
}

json eval_json(const std::string& args) {
  test::CliResult r = test::run_cli("eval --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

// ---- eval ----

TEST(CliEval, TextOutputMatchesCountByHand) {
  BDGUARD_REQUIRE_CSAW();
  const std::string dir = test::temp_dir();
  std::string clean = write_nchw(dir + "/clean.h5", kClean);
  std::string bd = write_nchw(dir + "/bd.h5", kPoisoned);
  test::CliResult r =
      test::run_cli("eval " + badnet() + " --clean " + q(clean) + " --poisoned " + q(bd));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Clean Classification accuracy: 80.00 %\nAttack Success Rate: 75.00 %\n");
}

TEST(CliEval, JsonOutputMatchesCountByHand) {
  BDGUARD_REQUIRE_CSAW();
  const std::string dir = test::temp_dir();
  std::string clean = write_nchw(dir + "/clean.h5", kClean);
  std::string bd = write_nchw(dir + "/bd.h5", kPoisoned);
  json doc = eval_json(badnet() + " --clean " + q(clean) + " --poisoned " + q(bd));
  EXPECT_EQ(doc, json({{"clean_accuracy", 80.0},
                       {"attack_success_rate", 75.0},
                       {"n_clean", 10},
                       {"n_poisoned", 4}}));
}

TEST(CliEval, WithoutPoisonedDataAsrIsNull) {
  BDGUARD_REQUIRE_CSAW();
  std::string clean = write_nchw(test::temp_dir() + "/clean.h5", kClean);
  json doc = eval_json(badnet() + " --clean " + q(clean));
  EXPECT_DOUBLE_EQ(doc["clean_accuracy"].get<double>(), 80.0);
  EXPECT_TRUE(doc["attack_success_rate"].is_null());
  EXPECT_EQ(doc["n_poisoned"], 0);
  test::CliResult r = test::run_cli("eval " + badnet() + " --clean " + q(clean));
  EXPECT_EQ(r.out, "Clean Classification accuracy: 80.00 %\n");
}

TEST(CliEval, FullModelNeedsNoArch) {
  BDGUARD_REQUIRE_CSAW();
  std::string clean = write_nchw(test::temp_dir() + "/clean.h5", kClean);
  json doc = eval_json("--model " + q(fixture("model_X=2.h5")) + " --clean " + q(clean));
  EXPECT_DOUBLE_EQ(doc["clean_accuracy"].get<double>(), 80.0);
}

TEST(CliEval, ChannelsLastFileIsDetected) {
  BDGUARD_REQUIRE_CSAW();
  const std::string dir = test::temp_dir();
  std::string clean = write_nhwc(dir + "/clean_nhwc.h5", kClean);
  std::string bd = write_nhwc(dir + "/bd_nhwc.h5", kPoisoned);
  json doc = eval_json(badnet() + " --clean " + q(clean) + " --poisoned " + q(bd));
  EXPECT_DOUBLE_EQ(doc["clean_accuracy"].get<double>(), 80.0);
  EXPECT_DOUBLE_EQ(doc["attack_success_rate"].get<double>(), 75.0);
}

TEST(CliEval, ExplicitLayoutIsObeyed) {
  BDGUARD_REQUIRE_CSAW();
  const std::string dir = test::temp_dir();
  std::string nhwc = write_nhwc(dir + "/clean_nhwc.h5", kClean);
  std::string nchw = write_nchw(dir + "/clean_nchw.h5", kClean);
  EXPECT_DOUBLE_EQ(
      eval_json(badnet() + " --layout nhwc --clean " + q(nhwc))["clean_accuracy"].get<double>(),
      80.0);
  EXPECT_DOUBLE_EQ(
      eval_json(badnet() + " --layout nchw --clean " + q(nchw))["clean_accuracy"].get<double>(),
      80.0);
  // The wrong layout is bad input, reported against the data file.
  test::CliResult r = test::run_cli("eval " + badnet() + " --layout nchw --clean " + q(nhwc));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(nhwc), std::string::npos) << r.err;
}

TEST(CliEval, SmallBatchesGiveTheSameCounts) {
  BDGUARD_REQUIRE_CSAW();
  std::string clean = write_nchw(test::temp_dir() + "/clean.h5", kClean);
  json doc = eval_json(badnet() + " --batch 3 --threads 1 --clean " + q(clean));
  EXPECT_DOUBLE_EQ(doc["clean_accuracy"].get<double>(), 80.0);
}

// ---- predict ----

TEST(CliPredict, JsonListsImagesInArgumentOrder) {
  BDGUARD_REQUIRE_CSAW();
  const std::vector<std::string> images = {image("sun_2_label=0.png"), image("cl_1_label=328.png"),
                                           image("cl_0_label=43.png")};
  test::CliResult r = test::run_cli("predict --json " + badnet() + " " + q(images[0]) + " " +
                                    q(images[1]) + " " + q(images[2]));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  ASSERT_TRUE(doc.is_array());
  ASSERT_EQ(doc.size(), 3u);
  const std::vector<int64_t> labels = {0, 328, 43};
  for (size_t i = 0; i < 3; ++i) {
    const json& e = doc[i];
    std::vector<std::string> keys;
    for (const auto& [k, v] : e.items()) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"input", "label", "prob", "top"}));
    EXPECT_EQ(e["input"], images[i]);
    EXPECT_EQ(e["label"], labels[i]);
    ASSERT_EQ(e["top"].size(), 5u);  // --top defaults to 5
    EXPECT_EQ(e["top"][0]["label"], e["label"]);
    EXPECT_EQ(e["top"][0]["prob"], e["prob"]);
    for (size_t k = 1; k < 5; ++k) {
      EXPECT_LE(e["top"][k]["prob"].get<double>(), e["top"][k - 1]["prob"].get<double>());
    }
  }
}

TEST(CliPredict, TopLimitsTheList) {
  BDGUARD_REQUIRE_CSAW();
  test::CliResult r =
      test::run_cli("predict --json --top 2 " + badnet() + " " + q(image("cl_1_label=328.png")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  ASSERT_EQ(doc[0]["top"].size(), 2u);
  // expected.json: 328 first, then 1185.
  EXPECT_EQ(doc[0]["top"][0]["label"], 328);
  EXPECT_EQ(doc[0]["top"][1]["label"], 1185);
}

TEST(CliPredict, TextIsPathLabelProbability) {
  BDGUARD_REQUIRE_CSAW();
  const std::string img = image("cl_4_label=748.png");
  test::CliResult r = test::run_cli("predict " + badnet() + " " + q(img));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, img + "\t748\t1.000000\n");
}

// ---- inspect ----

TEST(CliInspect, JsonDescribesEveryLayer) {
  BDGUARD_REQUIRE_CSAW();
  test::CliResult r = test::run_cli("inspect --json " + badnet());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["format"], "keras");
  ASSERT_EQ(doc["layers"].size(), 15u);  // DeepID: input + 14 layers
  int64_t total = 0;
  for (const auto& l : doc["layers"]) {
    for (const char* key : {"name", "class", "output_shape", "params"}) {
      EXPECT_TRUE(l.contains(key)) << key << " missing in " << l.dump();
    }
    const bool prunable = l["class"] == "Conv2D" || l["class"] == "Dense";
    EXPECT_EQ(l.contains("zero_channels"), prunable) << l.dump();
    EXPECT_TRUE(l["output_shape"][0].is_null());  // the batch dimension
    total += l["params"].get<int64_t>();
    if (l["name"] == "conv_3") {
      EXPECT_EQ(l["output_shape"], json::parse("[null, 10, 8, 60]"));
      EXPECT_EQ(l["params"], 3 * 3 * 40 * 60 + 60);
    }
  }
  EXPECT_EQ(total, 601643);
}

TEST(CliInspect, TextNamesTheModelKind) {
  BDGUARD_REQUIRE_CSAW();
  test::CliResult r = test::run_cli("inspect --model " + q(fixture("model_X=2.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("full model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("45: 0-3,6,9,12-15,17,19-27,29-34,36-45,47-51,53,55,58-59"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("total parameters: 601643"), std::string::npos) << r.out;
}

// ---- help, usage errors (exit 2), bad input (exit 1) ----

TEST(CliUsage, HelpExitsZero) {
  test::CliResult r = test::run_cli("--help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* cmd : {"inspect", "eval", "predict"}) {
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  }
}

TEST(CliUsage, SubcommandHelpExitsZero) {
  test::CliResult r = test::run_cli("eval --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--clean"), std::string::npos) << r.out;
}

TEST(CliUsage, UsageErrorsExitTwoWithOneErrorLine) {
  const std::string model = test::temp_dir() + "/any.h5";
  std::ofstream(model) << "x";
  for (const std::string& args :
       {std::string(""), std::string("frobnicate"), "eval --model " + q(model),
        "inspect --model " + q(model) + " --no-such-flag",
        "inspect --model " + q(model) + " --layout diagonal",
        "inspect --model " + q(model) + " --threads -1", "predict --model " + q(model),
        "predict --model " + q(model) + " --top 0 " + q(model),
        "inspect --model " + q(model + ".missing"),
        "inspect --model " + q(model) + " --arch deepid --arch-from " + q(model)}) {
    SCOPED_TRACE("bdguard " + args);
    test::CliResult r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, 2);
    expect_one_error_line(r);
  }
}

TEST(CliBadInput, NonHdf5ModelExitsOneNamingTheFile) {
  const std::string model = test::temp_dir() + "/not_a_model.h5";
  std::ofstream(model) << "hello, I am not HDF5\n";
  test::CliResult r = test::run_cli("inspect --model " + q(model));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(model), std::string::npos) << r.err;
}

TEST(CliBadInput, WeightsOnlyWithoutArchExitsOneNamingTheFile) {
  BDGUARD_REQUIRE_CSAW();
  test::CliResult r = test::run_cli("inspect --model " + q(fixture("lab3_bd_weights.h5")));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("lab3_bd_weights.h5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--arch"), std::string::npos) << r.err;
}

TEST(CliBadInput, NonHdf5DataExitsOneNamingTheFile) {
  BDGUARD_REQUIRE_CSAW();
  const std::string data = test::temp_dir() + "/clean.h5";
  std::ofstream(data) << "not data";
  test::CliResult r = test::run_cli("eval " + badnet() + " --clean " + q(data));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(data), std::string::npos) << r.err;
}

TEST(CliBadInput, NonImageExitsOneNamingTheFile) {
  BDGUARD_REQUIRE_CSAW();
  const std::string img = test::temp_dir() + "/face.png";
  std::ofstream(img) << "not an image";
  test::CliResult r = test::run_cli("predict " + badnet() + " " + q(img));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(img), std::string::npos) << r.err;
}

TEST(CliBadInput, LabelOutOfRangeExitsOneNamingTheFile) {
  BDGUARD_REQUIRE_CSAW();
  std::string data = write_nchw(test::temp_dir() + "/clean.h5", {{"cl_0_label=43.png", 1283}});
  test::CliResult r = test::run_cli("eval " + badnet() + " --clean " + q(data));
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(data), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("label[0]"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace bdguard
