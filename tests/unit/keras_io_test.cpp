// Reading and writing Keras HDF5 models: a model built in memory survives a save and
// load unchanged; model_config JSON is parsed with limits; a model read from a file
// is written back as that file with only the changed weight bytes replaced.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "hdf5/h5.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

json layer_json(const std::string& cls, const std::string& name, json config,
                const std::string& inbound) {
  config["name"] = name;
  json nodes = inbound.empty() ? json::array()
                               : json::array({json::array({{inbound, 0, 0, json::object()}})});
  return {{"class_name", cls}, {"name", name}, {"config", config}, {"inbound_nodes", nodes}};
}

// input (6, 6, 2) -> Conv2D(3, 3x3, same, relu) -> BatchNormalization -> MaxPooling2D
// -> Flatten -> Dense(4, softmax): weights of several kinds, and layers without any.
json small_model_config() {
  json layers = json::array(
      {layer_json("InputLayer", "input", {{"batch_input_shape", {nullptr, 6, 6, 2}}}, ""),
       layer_json(
           "Conv2D", "conv",
           {{"filters", 3}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"activation", "relu"}},
           "input"),
       layer_json("BatchNormalization", "bn", {{"axis", -1}, {"epsilon", 1e-3}}, "conv"),
       layer_json("MaxPooling2D", "pool", {{"pool_size", {2, 2}}}, "bn"),
       layer_json("Flatten", "flat", json::object(), "pool"),
       layer_json("Dense", "dense", {{"units", 4}, {"activation", "softmax"}}, "flat")});
  return {{"class_name", "Functional"},
          {"config",
           {{"name", "small"},
            {"layers", layers},
            {"input_layers", json::array({json::array({"input", 0, 0})})},
            {"output_layers", json::array({json::array({"dense", 0, 0})})}}}};
}

// Seeded random weights of the right shapes (variances kept positive).
Model small_model() {
  Model m = keras_model_from_config(small_model_config(), "small");
  at::manual_seed(7);
  for (const std::string& layer : test::keras_layers(m)) {
    std::vector<at::Tensor> values;
    for (int i : test::layer_params(m, layer)) {
      const Node& n = m.node(static_cast<size_t>(i));
      at::Tensor v = at::randn(test::keras_weight(m, layer, values.size()).sizes());
      if (n.source.find("moving_variance") != std::string::npos) v = v.abs() + 0.5;
      values.push_back(v);
    }
    test::set_keras_weights(m, layer, values);
  }
  return m;
}

TEST(KerasIo, InMemoryModelRoundTripsWithIdenticalWeights) {
  const Model m = small_model();
  const std::string path = test::temp_dir() + "/small.h5";
  save_model(m, path);
  const Model back = load_model(path);
  EXPECT_FALSE(back.weights_only);
  EXPECT_EQ(back.source_path, path);
  ASSERT_EQ(back.size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& a = m.node(i);
    const Node& b = back.node(i);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.layer_class, b.layer_class);
    EXPECT_EQ(a.info.dims, b.info.dims);
    if (a.kind != NodeKind::kParam) continue;
    EXPECT_EQ(a.source, b.source);
    EXPECT_TRUE(at::equal(a.value, b.value)) << a.name;
  }
}

TEST(KerasIo, InMemoryModelRoundTripsWithIdenticalPredictions) {
  const Model m = small_model();
  const std::string path = test::temp_dir() + "/small.h5";
  save_model(m, path);
  const Model back = load_model(path);
  at::manual_seed(11);
  at::Tensor x = at::rand({5, 2, 6, 6}) * 255;
  at::NoGradGuard no_grad;
  at::Tensor y = m.forward(x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{5, 4}));
  EXPECT_TRUE(at::equal(y, back.forward(x)));
}

TEST(KerasIo, FreshWriterWritesAKerasFullModelLayout) {
  const Model m = small_model();
  const std::string path = test::temp_dir() + "/small.h5";
  save_model(m, path);
  h5::File f = h5::File::open(path);
  EXPECT_EQ(json::parse(h5::read_string_attr(f, "/", "model_config", 1 << 20)),
            small_model_config());
  EXPECT_EQ(h5::read_string_list_attr(f, "/model_weights", "layer_names", 100),
            (std::vector<std::string>{"input", "conv", "bn", "pool", "flat", "dense"}));
  EXPECT_EQ(h5::read_string_list_attr(f, "/model_weights/conv", "weight_names", 10),
            (std::vector<std::string>{"conv/kernel:0", "conv/bias:0"}));
  EXPECT_TRUE(h5::read_string_list_attr(f, "/model_weights/pool", "weight_names", 10).empty());
  EXPECT_EQ(h5::dataset_info(f, "/model_weights/conv/conv/kernel:0").dims,
            (std::vector<int64_t>{3, 3, 2, 3}));
}

TEST(KerasIo, SavedCopyOfInMemoryModelIsItselfPatchedOnResave) {
  // A model loaded from a fresh file is written back as a patched copy of that file.
  const std::string dir = test::temp_dir();
  save_model(small_model(), dir + "/a.h5");
  Model m = load_model(dir + "/a.h5");
  test::prune(m, "conv", 1);
  save_model(m, dir + "/b.h5");
  Model back = load_model(dir + "/b.h5");
  EXPECT_EQ(test::zeros_of(back, "conv"), (std::vector<int64_t>{1}));
}

TEST(KerasIo, SequentialModelRoundTrips) {
  json cfg = {
      {"class_name", "Sequential"},
      {"config",
       {{"name", "seq"},
        {"layers",
         json::array({{{"class_name", "Dense"},
                       {"config",
                        {{"name", "d"}, {"units", 2}, {"batch_input_shape", {nullptr, 3}}}}}})}}}};
  Model m = keras_model_from_config(cfg, "seq");
  test::set_keras_weights(m, "d",
                          {at::arange(6, at::kFloat).reshape({3, 2}), at::tensor({0.5f, -0.5f})});
  const std::string path = test::temp_dir() + "/seq.h5";
  save_model(m, path);
  Model back = load_model(path);
  at::Tensor x = at::tensor({1.0f, 2.0f, 3.0f}).reshape({1, 3});
  // [1, 2, 3] x [[0, 1], [2, 3], [4, 5]] + [0.5, -0.5] = [16.5, 21.5].
  EXPECT_TRUE(at::equal(back.forward(x), at::tensor({16.5f, 21.5f}).reshape({1, 2})));
}

// ---- parse_model_config ----

std::string nested_arrays(int depth) {
  return std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']');
}

// {"a": {"a": ... 1 ...}} with `depth` objects.
std::string nested_objects(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "{\"a\": ";
  return s + "1" + std::string(static_cast<size_t>(depth), '}');
}

TEST(ParseModelConfig, AcceptsNestingOf64) {
  EXPECT_NO_THROW(parse_model_config(nested_arrays(64), "cfg.json"));
  EXPECT_NO_THROW(parse_model_config(nested_objects(64), "cfg.json"));
}

TEST(ParseModelConfig, RefusesNestingDeeperThan64) {
  EXPECT_THROW(parse_model_config(nested_arrays(65), "cfg.json"), LimitExceeded);
  EXPECT_THROW(parse_model_config(nested_objects(65), "cfg.json"), LimitExceeded);
  EXPECT_THROW(parse_model_config(nested_arrays(100000), "cfg.json"), LimitExceeded);
}

TEST(ParseModelConfig, RefusesInvalidJsonNamingTheOrigin) {
  try {
    parse_model_config("{\"class_name\": ", "cfg.json");
    FAIL() << "nothing thrown";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
}

// ---- Real fixtures: patching the lab's files ----

std::string fixture(const std::string& name) { return test::csaw_dir() + "/" + name; }

TEST(KerasIoCsaw, WeightsOnlyFileWithoutArchIsRefused) {
  BDGUARD_REQUIRE_CSAW();
  EXPECT_THROW(load_model(fixture("lab3_bd_weights.h5")), InvalidArgument);
}

// The byte ranges [begin, end) of the conv_3 kernel and bias data in `path`.
std::vector<std::pair<int64_t, int64_t>> conv3_ranges(const std::string& path, const Model& m) {
  h5::File f = h5::File::open(path);
  const std::string root = m.weights_only ? "" : "/model_weights";
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int i : test::layer_params(m, "conv_3")) {
    const Node& w = m.node(static_cast<size_t>(i));
    int64_t off = h5::raw_data_offset(f, root + "/conv_3/" + w.source);
    EXPECT_GE(off, 0) << w.source << " is not stored contiguously";
    out.push_back({off, off + w.value.numel() * 4});
  }
  return out;
}

// Loads `file`, prunes `extra` conv_3 channels in a copy, saves it, and checks the
// result: byte-identical outside conv_3's kernel and bias, read back with exactly
// the old plus the new channels zero, every other weight unchanged.
void check_patched_save(const std::string& file, const ArchSource& arch,
                        const std::vector<int64_t>& extra) {
  const Model original = load_model(fixture(file), arch);
  const int conv3 = original.find("conv_3");
  ASSERT_GE(conv3, 0);
  std::vector<int64_t> want = test::zeros_of(original, "conv_3");
  Model copy = original.clone();
  for (int64_t c : extra) test::prune(copy, "conv_3", c);
  want.insert(want.end(), extra.begin(), extra.end());
  std::sort(want.begin(), want.end());

  const std::string out = test::temp_dir() + "/pruned.h5";
  save_model(copy, out);

  // Byte by byte, except inside conv_3's kernel and bias.
  const std::string a = test::read_text(fixture(file));
  const std::string b = test::read_text(out);
  ASSERT_EQ(a.size(), b.size());
  auto ranges = conv3_ranges(out, copy);
  EXPECT_EQ(ranges, conv3_ranges(fixture(file), original));
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    bool inside = std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) {
      return static_cast<int64_t>(i) >= r.first && static_cast<int64_t>(i) < r.second;
    });
    ASSERT_TRUE(inside) << "byte " << i << " changed outside conv_3's weights";
    ++differing;
  }
  EXPECT_GT(differing, 0);

  // The file reads back with exactly those channels zero; the original is untouched.
  const Model back = load_model(out, arch);
  EXPECT_EQ(back.weights_only, original.weights_only);
  EXPECT_EQ(test::zeros_of(back, "conv_3"), want);
  for (int i : original.parameter_nodes()) {
    const Node& l = original.node(static_cast<size_t>(i));
    const Node& r = back.node(static_cast<size_t>(back.find(l.name)));
    const Node& c = copy.node(static_cast<size_t>(copy.find(l.name)));
    EXPECT_TRUE(at::equal(r.value, l.layer == "conv_3" ? c.value : l.value)) << l.name;
  }
}

TEST(KerasIoCsaw, PrunedWeightsOnlyCopyChangesOnlyConv3Bytes) {
  BDGUARD_REQUIRE_CSAW();
  check_patched_save("lab3_bd_weights.h5", ArchSource{"deepid", ""}, {5, 17, 42});
}

TEST(KerasIoCsaw, PrunedFullModelCopyChangesOnlyConv3Bytes) {
  BDGUARD_REQUIRE_CSAW();
  // Channels 4 and 5 are not among model_X=2.h5's 45.
  check_patched_save("model_X=2.h5", ArchSource{}, {4, 5});
}

TEST(KerasIoCsaw, WeightsOnlyCopyStaysWeightsOnly) {
  BDGUARD_REQUIRE_CSAW();
  Model m = load_model(fixture("lab3_bd_weights.h5"), ArchSource{"deepid", ""});
  const std::string out = test::temp_dir() + "/copy.h5";
  save_model(m, out);
  h5::File f = h5::File::open(out);
  EXPECT_FALSE(h5::has_attr(f, "/", "model_config"));
  EXPECT_THROW(load_model(out), InvalidArgument);
}

TEST(KerasIoCsaw, FullModelCopyKeepsItsModelConfig) {
  BDGUARD_REQUIRE_CSAW();
  Model m = load_model(fixture("model_X=2.h5"));
  const std::string out = test::temp_dir() + "/copy.h5";
  save_model(m, out);
  h5::File in = h5::File::open(fixture("model_X=2.h5"));
  h5::File f = h5::File::open(out);
  ASSERT_TRUE(h5::has_attr(f, "/", "model_config"));
  EXPECT_EQ(h5::read_string_attr(f, "/", "model_config", 1 << 24),
            h5::read_string_attr(in, "/", "model_config", 1 << 24));
  EXPECT_FALSE(load_model(out).weights_only);
}

}  // namespace
}  // namespace bdguard
