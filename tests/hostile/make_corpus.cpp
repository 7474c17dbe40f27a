// make_corpus: writes the hostile-input corpus that tests/hostile/hostile_test.cpp runs
// bdguard on, and the seed corpora of the fuzz harnesses in fuzz/.
//
//   make_corpus OUT_DIR
//
// OUT_DIR/valid/      small valid files every case is derived from: a 5-layer Keras
//                     model taking 8x8 RGB images with 5 classes (full and weights-only,
//                     its architecture as JSON), an ONNX model of the same input and
//                     classes (tiny.onnx, onnx_corpus.h), a data file and a PNG for both
// OUT_DIR/<case>      one malformed file per case (model_*, weights_*, data_*, img_*,
//                     arch_*, onnx_*): truncated and random files, and one per check that
//                     bdguard makes on untrusted input
// OUT_DIR/seeds/      seed corpora for fuzz/ (model_config, keras_weights, data, onnx)
//
// Everything is deterministic (fixed seeds) and built with src/hdf5/h5.h, the HDF5 C
// API and ONNX's protobuf classes directly, so no Python is needed. The corpus lives in the build
// folder only.
#include <ATen/ATen.h>
#include <hdf5.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "data_writers.h"
#include "hdf5/h5.h"
#include "hostile/onnx_corpus.h"

namespace fs = std::filesystem;
using nlohmann::json;
namespace h5 = bdguard::h5;

namespace {

std::string g_out;  // OUT_DIR, set once in main

std::string at_out(const std::string& name) { return g_out + "/" + name; }

// ---- bytes -----------------------------------------------------------------------

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// ---- the valid tiny model --------------------------------------------------------
// input (8, 8, 3) -> conv (Conv2D, 4 filters 3x3, relu) -> pool (MaxPooling2D 2x2)
// -> flatten (36) -> dense (Dense, 5 units, softmax)

json layer(const std::string& cls, const std::string& name, const std::string& inbound,
           json config) {
  config["name"] = name;
  json l = {{"class_name", cls}, {"name", name}, {"config", config}};
  l["inbound_nodes"] =
      inbound.empty() ? json::array()
                      : json::array({json::array({json::array({inbound, 0, 0, json::object()})})});
  return l;
}

json tiny_config() {
  json layers = json::array({
      layer("InputLayer", "input", "",
            {{"batch_input_shape", {nullptr, 8, 8, 3}}, {"dtype", "float32"}}),
      layer("Conv2D", "conv", "input",
            {{"filters", 4},
             {"kernel_size", {3, 3}},
             {"strides", {1, 1}},
             {"padding", "valid"},
             {"data_format", "channels_last"},
             {"dilation_rate", {1, 1}},
             {"activation", "relu"},
             {"use_bias", true}}),
      layer("MaxPooling2D", "pool", "conv",
            {{"pool_size", {2, 2}}, {"strides", {2, 2}}, {"padding", "valid"}}),
      layer("Flatten", "flatten", "pool", {{"data_format", "channels_last"}}),
      layer("Dense", "dense", "flatten",
            {{"units", 5}, {"activation", "softmax"}, {"use_bias", true}}),
  });
  return {{"class_name", "Functional"},
          {"config",
           {{"name", "tiny"},
            {"layers", layers},
            {"input_layers", {{"input", 0, 0}}},
            {"output_layers", {{"dense", 0, 0}}}}},
          {"keras_version", "2.10.0"},
          {"backend", "tensorflow"}};
}

// Index of a layer in tiny_config()["config"]["layers"].
enum TinyLayer { kInput = 0, kConv = 1, kPool = 2, kFlatten = 3, kDense = 4 };

json& layer_config(json& doc, int i) { return doc["config"]["layers"][i]["config"]; }

struct Weight {
  std::string name;  // as in weight_names, e.g. "conv/kernel:0"
  std::vector<int64_t> dims;
  std::vector<float> values;
};

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = scale * static_cast<float>((i * 7) % 13 - 6);
  return v;
}

struct LayerWeights {
  std::string layer;
  std::vector<Weight> weights;
};

std::vector<LayerWeights> tiny_weights() {
  return {
      {"input", {}},
      {"conv",
       {{"conv/kernel:0", {3, 3, 3, 4}, ramp(108, 0.01f)}, {"conv/bias:0", {4}, ramp(4, 0.1f)}}},
      {"pool", {}},
      {"flatten", {}},
      {"dense",
       {{"dense/kernel:0", {36, 5}, ramp(180, 0.02f)}, {"dense/bias:0", {5}, ramp(5, 0.1f)}}}};
}

// Writes a Keras HDF5 file as Keras 2.x does: a full model when `config` is given
// (root attribute model_config, weights under /model_weights), else weights only.
void write_model(const std::string& path, const std::string& config,
                 const std::vector<LayerWeights>& layers) {
  h5::File f = h5::File::create(path);
  std::string root = "/";
  if (!config.empty()) {
    h5::write_string_attr(f, "/", "model_config", config, /*variable_length=*/true);
    h5::write_string_attr(f, "/", "keras_version", "2.10.0", true);
    h5::write_string_attr(f, "/", "backend", "tensorflow", true);
    h5::create_group(f, "/model_weights");
    root = "/model_weights";
  }
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.layer);
  h5::write_string_list_attr(f, root, "layer_names", names);
  h5::write_string_attr(f, root, "keras_version", "2.10.0", true);
  h5::write_string_attr(f, root, "backend", "tensorflow", true);
  const std::string prefix = root == "/" ? "" : root;
  for (const auto& l : layers) {
    const std::string group = prefix + "/" + l.layer;
    h5::create_group(f, group);
    std::vector<std::string> wnames;
    for (const auto& w : l.weights) wnames.push_back(w.name);
    h5::write_string_list_attr(f, group, "weight_names", wnames);
    for (const auto& w : l.weights) {
      std::string sub = group + "/" + w.name.substr(0, w.name.find('/'));
      if (!h5::exists(f, sub)) h5::create_group(f, sub);
      h5::write_float_dataset(f, group + "/" + w.name, w.dims, w.values.data());
    }
  }
  f.flush();
}

void write_full(const std::string& name, const json& config,
                const std::vector<LayerWeights>& layers = tiny_weights()) {
  write_model(at_out(name), config.dump(), layers);
}

void write_full_text(const std::string& name, const std::string& config_text) {
  write_model(at_out(name), config_text, tiny_weights());
}

// A full model whose config is tiny_config() changed by `edit`.
void config_case(const std::string& name, const std::function<void(json&)>& edit) {
  json doc = tiny_config();
  edit(doc);
  write_full(name, doc);
}

// A full model whose weights are tiny_weights() changed by `edit`.
void weights_case(const std::string& name,
                  const std::function<void(std::vector<LayerWeights>&)>& edit) {
  auto w = tiny_weights();
  edit(w);
  write_full(name, tiny_config(), w);
}

// A copy of the valid full model, then changed by `edit` (with the HDF5 C API on f.id()).
void patch_case(const std::string& name, const std::function<void(h5::File& f, hid_t id)>& edit) {
  fs::copy_file(at_out("valid/tiny.h5"), at_out(name), fs::copy_options::overwrite_existing);
  h5::File f = h5::File::open(at_out(name), /*writable=*/true);
  edit(f, f.id());
  f.flush();
}

// Replaces dataset `where` by one of `type` and `dims`, written from `values` in
// `mem_type` (nothing written when values is null); `dcpl` may set chunks, storage.
void replace_dataset(hid_t file, const std::string& where, hid_t type,
                     const std::vector<hsize_t>& dims, hid_t mem_type = -1,
                     const void* values = nullptr, hid_t dcpl = H5P_DEFAULT) {
  if (H5Lexists(file, where.c_str(), H5P_DEFAULT) > 0) H5Ldelete(file, where.c_str(), H5P_DEFAULT);
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(file, where.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds < 0) throw std::runtime_error("cannot create dataset " + where);
  if (values) H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
  H5Dclose(ds);
  H5Sclose(space);
}

hid_t chunked(const std::vector<hsize_t>& chunk) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  return dcpl;
}

const char* kConvKernel = "/model_weights/conv/conv/kernel:0";

// ---- data files ------------------------------------------------------------------

// `data` (N, 3, 8, 8) float32 pixels 0..255 and `label` (N) float64, both changed
// by the callers as each case needs.
struct DataSpec {
  hid_t data_type = H5T_IEEE_F32LE;
  std::vector<hsize_t> data_dims{4, 3, 8, 8};
  hid_t data_dcpl = H5P_DEFAULT;
  bool write_data = true;
  hid_t label_type = H5T_IEEE_F64LE;
  std::vector<hsize_t> label_dims{4};
  hid_t label_dcpl = H5P_DEFAULT;
  std::vector<double> labels{0, 1, 2, 3};
  bool write_labels = true;
  bool has_data = true, has_label = true;
  float nan_pixel = 0;  // a pixel value put at index 5 (0: none)
};

void write_data(const std::string& path, const DataSpec& s) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (s.has_data) {
    hid_t space =
        H5Screate_simple(static_cast<int>(s.data_dims.size()), s.data_dims.data(), nullptr);
    hid_t ds = H5Dcreate2(file, "data", s.data_type, space, H5P_DEFAULT, s.data_dcpl, H5P_DEFAULT);
    if (s.write_data) {
      hsize_t n = 1;
      for (hsize_t d : s.data_dims) n *= d;
      std::vector<double> px(n);
      for (hsize_t i = 0; i < n; ++i) px[i] = static_cast<double>((i * 37) % 256);
      if (s.nan_pixel != 0 && n > 5) px[5] = s.nan_pixel;
      H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, px.data());
    }
    H5Dclose(ds);
    H5Sclose(space);
  }
  if (s.has_label) {
    hid_t space =
        H5Screate_simple(static_cast<int>(s.label_dims.size()), s.label_dims.data(), nullptr);
    hid_t ds =
        H5Dcreate2(file, "label", s.label_type, space, H5P_DEFAULT, s.label_dcpl, H5P_DEFAULT);
    if (s.write_labels) {
      std::vector<double> l = s.labels;
      hsize_t n = 1;
      for (hsize_t d : s.label_dims) n *= d;
      l.resize(n, 0);
      H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, l.data());
    }
    H5Dclose(ds);
    H5Sclose(space);
  }
  H5Fclose(file);
}

void data_case(const std::string& name, const std::function<void(DataSpec&)>& edit) {
  DataSpec s;
  edit(s);
  write_data(at_out(name), s);
}

// ---- PNG -------------------------------------------------------------------------

void put_be32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s[at + static_cast<size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
}

// A copy of `png` whose IHDR claims `w` x `h` (with a correct CRC).
std::string png_with_size(std::string png, uint32_t w, uint32_t h) {
  // 8-byte signature, then the IHDR chunk: length (4), "IHDR" (4), width at 16, height at 20.
  put_be32(png, 16, w);
  put_be32(png, 20, h);
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);
  put_be32(png, 29, static_cast<uint32_t>(crc));
  return png;
}

// ---- the corpus ------------------------------------------------------------------

void make_valid() {
  fs::create_directories(at_out("valid"));
  write_full("valid/tiny.h5", tiny_config());
  write_model(at_out("valid/tiny_weights.h5"), "", tiny_weights());
  write_bytes(at_out("valid/tiny_arch.json"), tiny_config().dump(1));
  write_data(at_out("valid/data.h5"), DataSpec{});
  at::Tensor img = at::arange(192, at::kFloat).reshape({3, 8, 8}).remainder(256);
  bdguard::write_png(at_out("valid/img.png"), img);
  at::Tensor big = at::zeros({3, 10, 10}, at::kFloat);
  bdguard::write_png(at_out("img_wrong_size.png"), big);
}

void make_files_that_are_not_what_they_claim() {
  const std::string model = read_bytes(at_out("valid/tiny.h5"));
  const std::string data = read_bytes(at_out("valid/data.h5"));
  const std::string png = read_bytes(at_out("valid/img.png"));
  write_bytes(at_out("model_truncated.h5"), model.substr(0, model.size() / 2));
  write_bytes(at_out("model_truncated_superblock.h5"), model.substr(0, 40));
  write_bytes(at_out("model_random.h5"), random_bytes(4096, 1));
  // The HDF5 signature followed by random bytes.
  write_bytes(at_out("model_random_after_signature.h5"),
              std::string("\x89HDF\r\n\x1a\n", 8) + random_bytes(4088, 2));
  // HDF5 1.10 loops forever on a global heap object of index 0 and size 0 (found by
  // fuzz_keras_weights): the model_config string lives in the global heap ("GCOL"
  // collection: 16-byte header, then objects of a 16-byte header and 8-aligned data);
  // zero the header of the object after it.
  {
    std::string loop = model;
    const size_t gcol = loop.find("GCOL");
    if (gcol == std::string::npos) throw std::runtime_error("no global heap in valid/tiny.h5");
    uint64_t size = 0;
    std::memcpy(&size, loop.data() + gcol + 16 + 8, 8);  // object 1's size (little-endian)
    const size_t next = gcol + 16 + 16 + ((size + 7) / 8) * 8;
    std::memset(loop.data() + next, 0, 16);
    write_bytes(at_out("model_hdf5_heap_loop.h5"), loop);
    // The same string object claiming 2^47 bytes: HDF5 copies that much out of a 4 KiB
    // heap into a buffer of the string's length (found by fuzz_keras_weights: SIGSEGV).
    std::string overflow = model;
    const uint64_t huge = uint64_t{1} << 47;
    std::memcpy(overflow.data() + gcol + 16 + 8, &huge, 8);
    write_bytes(at_out("model_hdf5_heap_overflow.h5"), overflow);
  }
  write_bytes(at_out("model_empty.h5"), "");
  write_bytes(at_out("model_text.h5"), tiny_config().dump());
  write_bytes(at_out("data_truncated.h5"), data.substr(0, data.size() * 2 / 3));
  // 122 bytes of 0xff inserted after the superblock: every address that follows points
  // elsewhere, and HDF5 1.10's local-heap reader then copies from a NULL pointer
  // (found by fuzz_data: SIGSEGV in H5F__accum_read under H5Lexists).
  write_bytes(at_out("data_hdf5_local_heap_crash.h5"),
              data.substr(0, 123) + std::string(122, '\xff') + data.substr(123));
  write_bytes(at_out("data_random.h5"), random_bytes(8192, 3));
  write_bytes(at_out("img_truncated.png"), png.substr(0, png.size() / 2));
  write_bytes(at_out("img_random.png"), random_bytes(1024, 4));
  write_bytes(at_out("img_empty.png"), "");
  write_bytes(at_out("img_huge_header.png"), png_with_size(png, 100000, 100000));
  write_bytes(at_out("img_zero_width.png"), png_with_size(png, 0, 8));
}

void make_config_cases() {
  config_case("model_lambda.h5", [](json& d) {
    // A Keras Lambda layer: Keras keeps the marshalled Python bytecode (here a
    // placeholder) in `function` and runs it on load; bdguard refuses the class.
    d["config"]["layers"][kPool]["class_name"] = "Lambda";
    layer_config(d, kPool) = {{"name", "pool"},
                              {"function",
                               {"4wEAAAAAAAAAAQAAAAEAAABTAAAAcwQAAAB8AFMAKQFOqQCpAdoBeHIB"
                                "AAAAcgEAAAD6CDxzdHJpbmc+2gg8bGFtYmRhPgEAAADzAAAAAA==",
                                nullptr, nullptr}},
                              {"function_type", "lambda"},
                              {"output_shape", nullptr}};
  });
  config_case("model_unknown_class.h5",
              [](json& d) { d["config"]["layers"][kPool]["class_name"] = "MyCustomLayer"; });
  config_case("model_cycle.h5", [](json& d) {
    // conv <- dense <- flatten <- pool <- conv
    d["config"]["layers"][kConv]["inbound_nodes"][0][0][0] = "dense";
  });
  config_case("model_dangling_inbound.h5", [](json& d) {
    d["config"]["layers"][kPool]["inbound_nodes"][0][0][0] = "conv_that_is_not_there";
  });
  config_case("model_duplicate_names.h5", [](json& d) {
    d["config"]["layers"][kPool]["name"] = "conv";
    layer_config(d, kPool)["name"] = "conv";
  });
  config_case("model_bad_output_layer.h5", [](json& d) {
    d["config"]["output_layers"] = {{"softmax_out", 0, 0}};
  });
  config_case("model_layer_name_path.h5", [](json& d) {
    d["config"]["layers"][kPool]["name"] = "../../etc";
    layer_config(d, kPool)["name"] = "../../etc";
  });
  config_case("model_input_zero_dim.h5", [](json& d) {
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 0, 8, 3};
  });
  config_case("model_input_negative_dim.h5", [](json& d) {
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 8, -8, 3};
  });
  config_case("model_input_overflow_dims.h5", [](json& d) {
    // Each side within the per-dimension limit, their product far beyond 2^28.
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 1048576, 1048576, 3};
  });
  config_case("model_input_uint64_dim.h5", [](json& d) {
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 18446744073709551615ull, 8, 3};
  });
  config_case("model_input_float_dim.h5", [](json& d) {
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 8.5, 8, 3};
  });
  config_case("model_filters_zero.h5", [](json& d) { layer_config(d, kConv)["filters"] = 0; });
  config_case("model_filters_negative.h5", [](json& d) { layer_config(d, kConv)["filters"] = -4; });
  config_case("model_filters_huge.h5",
              [](json& d) { layer_config(d, kConv)["filters"] = int64_t{1} << 40; });
  config_case("model_filters_uint64.h5",
              [](json& d) { layer_config(d, kConv)["filters"] = 18446744073709551615ull; });
  config_case("model_units_zero.h5", [](json& d) { layer_config(d, kDense)["units"] = 0; });
  config_case("model_units_huge.h5",
              [](json& d) { layer_config(d, kDense)["units"] = int64_t{1} << 62; });
  config_case("model_units_string.h5", [](json& d) { layer_config(d, kDense)["units"] = "5"; });
  config_case("model_kernel_zero.h5", [](json& d) {
    layer_config(d, kConv)["kernel_size"] = {0, 3};
  });
  config_case("model_kernel_negative.h5", [](json& d) {
    layer_config(d, kConv)["kernel_size"] = {3, -3};
  });
  config_case("model_kernel_larger_than_input.h5", [](json& d) {
    layer_config(d, kConv)["kernel_size"] = {9, 9};
  });
  config_case("model_strides_zero.h5", [](json& d) { layer_config(d, kConv)["strides"] = {0, 0}; });
  config_case("model_pool_huge_padding_same.h5", [](json& d) {
    layer_config(d, kPool)["pool_size"] = {100000, 100000};
    layer_config(d, kPool)["padding"] = "same";
  });
  config_case("model_keras3_nodes.h5", [](json& d) {
    d["config"]["layers"][kPool]["inbound_nodes"] = {{{"args", json::array()}}};
  });
  config_case("model_sequential_lambda.h5", [](json& d) {
    json layers = d["config"]["layers"];
    layers[kPool]["class_name"] = "Lambda";
    d = {{"class_name", "Sequential"}, {"config", {{"name", "seq"}, {"layers", layers}}}};
  });
  config_case("model_top_level_array.h5", [](json& d) { d = json::array({d}); });
  write_full_text("model_config_not_json.h5", "{\"class_name\": \"Functional\", \"config\": {");
  write_full_text("model_config_nul.h5", std::string("{\"class_name\"\0:1}", 17));
  // 100 nested arrays inside a layer's config.
  std::string deep = "{\"class_name\": \"Functional\", \"config\": {\"layers\": ";
  deep += std::string(100, '[') + std::string(100, ']') + "}}";
  write_full_text("model_deep_json.h5", deep);
  // 17 MiB of JSON (the limit is 16 MiB).
  json huge = tiny_config();
  layer_config(huge, kPool)["padding_note"] = std::string(size_t{17} << 20, 'x');
  write_full_text("model_huge_json.h5", huge.dump());

  // --arch-from files.
  write_bytes(at_out("arch_deep.json"), std::string(100, '[') + std::string(100, ']'));
  write_bytes(at_out("arch_huge.json"), huge.dump());
  write_bytes(at_out("arch_random.json"), random_bytes(2048, 5));
  fs::copy_file(at_out("valid/tiny_weights.h5"), at_out("arch_weights_only.h5"),
                fs::copy_options::overwrite_existing);
}

void make_weight_cases() {
  weights_case("weights_shape_mismatch.h5", [](auto& w) {
    w[kConv].weights[0].dims = {3, 3, 3, 5};
    w[kConv].weights[0].values = ramp(135, 0.01f);
  });
  weights_case("weights_missing_layer.h5", [](auto& w) { w.erase(w.begin() + kDense); });
  weights_case("weights_nan.h5", [](auto& w) {
    w[kDense].weights[0].values[17] = std::numeric_limits<float>::quiet_NaN();
  });
  weights_case("weights_inf.h5", [](auto& w) {
    w[kConv].weights[1].values[2] = -std::numeric_limits<float>::infinity();
  });
  weights_case("weights_too_many_names.h5", [](auto& w) {
    for (int i = 0; i < 70; ++i) {
      w[kConv].weights.push_back({"conv/extra_" + std::to_string(i) + ":0", {1}, {0.f}});
    }
  });
  patch_case("weights_name_escapes.h5", [](h5::File& f, hid_t id) {
    H5Adelete_by_name(id, "/model_weights/conv", "weight_names", H5P_DEFAULT);
    h5::write_string_list_attr(f, "/model_weights/conv", "weight_names",
                               {"../../dense/dense/kernel:0", "conv/bias:0"});
  });
  patch_case("weights_missing_dataset.h5",
             [](h5::File&, hid_t f) { H5Ldelete(f, kConvKernel, H5P_DEFAULT); });
  patch_case("weights_missing_layer_names.h5", [](h5::File&, hid_t f) {
    H5Adelete_by_name(f, "/model_weights", "layer_names", H5P_DEFAULT);
  });
  patch_case("weights_int32.h5", [](h5::File&, hid_t f) {
    std::vector<int32_t> v(108, 1);
    replace_dataset(f, kConvKernel, H5T_STD_I32LE, {3, 3, 3, 4}, H5T_NATIVE_INT32, v.data());
  });
  patch_case("weights_string.h5", [](h5::File&, hid_t f) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    std::vector<char> v(108 * 4, 'a');
    replace_dataset(f, kConvKernel, t, {3, 3, 3, 4}, t, v.data());
    H5Tclose(t);
  });
  patch_case("weights_rank9.h5", [](h5::File&, hid_t f) {
    replace_dataset(f, kConvKernel, H5T_IEEE_F32LE, {1, 1, 1, 1, 1, 3, 3, 3, 4});
  });
  patch_case("weights_layer_is_dataset.h5", [](h5::File&, hid_t f) {
    H5Ldelete(f, "/model_weights/dense", H5P_DEFAULT);
    replace_dataset(f, "/model_weights/dense", H5T_IEEE_F32LE, {5});
  });
  patch_case("weights_model_config_int.h5", [](h5::File&, hid_t f) {
    H5Adelete(f, "model_config");
    hsize_t n = 3;
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(f, "model_config", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int32_t v[3] = {1, 2, 3};
    H5Awrite(a, H5T_NATIVE_INT32, v);
    H5Aclose(a);
    H5Sclose(space);
  });
  // A layer group that is an external link into another file.
  patch_case("weights_external_link.h5", [](h5::File&, hid_t f) {
    H5Ldelete(f, "/model_weights/conv", H5P_DEFAULT);
    H5Lcreate_external("tiny.h5", "/model_weights/conv", f, "/model_weights/conv", H5P_DEFAULT,
                       H5P_DEFAULT);
  });
  patch_case("weights_soft_link.h5", [](h5::File&, hid_t f) {
    H5Ldelete(f, "/model_weights/conv/conv", H5P_DEFAULT);
    H5Lcreate_soft("/model_weights/dense/dense", f, "/model_weights/conv/conv", H5P_DEFAULT,
                   H5P_DEFAULT);
  });
  // Raw data in another file: a crafted model could read any file (or block on a FIFO).
  patch_case("weights_external_storage.h5", [](h5::File&, hid_t f) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, "/dev/zero", 0, 3 * 3 * 3 * 4 * 4);
    replace_dataset(f, kConvKernel, H5T_IEEE_F32LE, {3, 3, 3, 4}, -1, nullptr, dcpl);
    H5Pclose(dcpl);
  });
  patch_case("weights_virtual_dataset.h5", [](h5::File&, hid_t f) {
    hsize_t dims[4] = {3, 3, 3, 4};
    hid_t space = H5Screate_simple(4, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_virtual(dcpl, space, "tiny.h5", kConvKernel, space);
    replace_dataset(f, kConvKernel, H5T_IEEE_F32LE, {3, 3, 3, 4}, -1, nullptr, dcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
  });
  // A Dense kernel of 2^20 x 2^20 floats (4 TiB), declared in chunks never written:
  // the file is small, reading it would allocate without bound.
  {
    json d = tiny_config();
    auto& layers = d["config"]["layers"];
    layer_config(d, kInput)["batch_input_shape"] = {nullptr, 1048576};
    json dense = layers[kDense];
    dense["inbound_nodes"][0][0][0] = "input";
    dense["config"]["units"] = 1048576;
    layers = json::array({layers[kInput], dense});
    const std::string path = at_out("weights_huge_dense.h5");
    write_model(
        path, d.dump(),
        {{"input", {}}, {"dense", {{"dense/kernel:0", {1}, {0.f}}, {"dense/bias:0", {1}, {0.f}}}}});
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dcpl = chunked({1024, 1024});
    replace_dataset(f, "/model_weights/dense/dense/kernel:0", H5T_IEEE_F32LE, {1048576, 1048576},
                    -1, nullptr, dcpl);
    H5Pclose(dcpl);
    dcpl = chunked({1024});
    replace_dataset(f, "/model_weights/dense/dense/bias:0", H5T_IEEE_F32LE, {1048576}, -1, nullptr,
                    dcpl);
    H5Pclose(dcpl);
    H5Fclose(f);
  }
  // weight_names as fixed-length strings of 1 MiB each (dense attribute storage).
  {
    const std::string path = at_out("weights_huge_attribute.h5");
    fs::copy_file(at_out("valid/tiny.h5"), path, fs::copy_options::overwrite_existing);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl);
    // A new group: only the object headers of the 1.8 format hold attributes over 64 KiB.
    H5Ldelete(f, "/model_weights/conv", H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "/model_weights/conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size_t{1} << 20);
    hsize_t n = 2;
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(g, "weight_names", t, space, H5P_DEFAULT, H5P_DEFAULT);
    std::string v(size_t{2} << 20, 'k');
    if (a < 0 || H5Awrite(a, t, v.data()) < 0) throw std::runtime_error("huge attribute");
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(t);
    H5Gclose(g);
    H5Fclose(f);
    H5Pclose(fapl);
  }
}

void make_data_cases() {
  data_case("data_rank2.h5", [](DataSpec& s) { s.data_dims = {4, 192}; });
  data_case("data_scalar.h5", [](DataSpec& s) { s.data_dims = {}; });
  data_case("data_zero_images.h5", [](DataSpec& s) {
    s.data_dims = {0, 3, 8, 8};
    s.label_dims = {0};
  });
  data_case("data_zero_height.h5", [](DataSpec& s) { s.data_dims = {4, 3, 0, 8}; });
  data_case("data_wrong_image_size.h5", [](DataSpec& s) { s.data_dims = {4, 3, 9, 8}; });
  data_case("data_int64_pixels.h5", [](DataSpec& s) { s.data_type = H5T_STD_I64LE; });
  data_case("data_string_pixels.h5", [](DataSpec& s) {
    s.data_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(s.data_type, 8);
    s.write_data = false;
  });
  data_case("data_nan_pixel.h5",
            [](DataSpec& s) { s.nan_pixel = std::numeric_limits<float>::quiet_NaN(); });
  data_case("data_label_out_of_range.h5", [](DataSpec& s) { s.labels = {0, 1, 5, 3}; });
  data_case("data_label_negative.h5", [](DataSpec& s) { s.labels = {0, -1, 2, 3}; });
  data_case("data_label_fraction.h5", [](DataSpec& s) { s.labels = {0, 1, 2.5, 3}; });
  data_case("data_label_nan.h5", [](DataSpec& s) {
    s.labels = {0, 1, 2, std::numeric_limits<double>::quiet_NaN()};
  });
  data_case("data_label_string.h5", [](DataSpec& s) {
    s.label_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(s.label_type, 4);
    s.write_labels = false;
  });
  data_case("data_label_count_mismatch.h5", [](DataSpec& s) { s.label_dims = {3}; });
  data_case("data_no_label.h5", [](DataSpec& s) { s.has_label = false; });
  data_case("data_no_data.h5", [](DataSpec& s) { s.has_data = false; });
  // 2^39 images and labels declared, never written: a small file that would take
  // terabytes to read.
  data_case("data_huge_count.h5", [](DataSpec& s) {
    s.data_dims = {hsize_t{1} << 39, 3, 8, 8};
    s.data_dcpl = chunked({1, 3, 8, 8});
    s.write_data = false;
    s.label_dims = {hsize_t{1} << 39};
    s.label_dcpl = chunked({1024});
    s.write_labels = false;
  });
  // One chunk of 48 MiB (HDF5 allocates a whole chunk to read any row of it).
  data_case("data_huge_chunk.h5", [](DataSpec& s) {
    s.data_dims = {65536, 3, 8, 8};
    s.data_dcpl = chunked({65536, 3, 8, 8});
    s.write_data = false;
    s.label_dims = {65536};
    s.write_labels = false;
  });
  data_case("data_external_storage.h5", [](DataSpec& s) {
    s.data_dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(s.data_dcpl, "/dev/zero", 0, 4 * 3 * 8 * 8 * 4);
    s.write_data = false;
  });
}

// npy, npz, image_folder: small valid files of each format (tests/data_writers.h).
void make_data_format_seeds(const std::string& seeds) {
  namespace t = bdguard::test;
  for (const char* d : {"npy", "npz", "image_folder"}) fs::create_directories(seeds + "/" + d);
  const at::Tensor x = at::arange(2 * 8 * 8 * 3, at::kByte).reshape({2, 8, 8, 3});
  const at::Tensor y = at::tensor({int64_t{1}, int64_t{4}});
  t::write_bytes(seeds + "/npy/nhwc_uint8.npy", t::npy_of(x));
  t::write_bytes(seeds + "/npy/nchw_float32.npy",
                 t::npy_of(x.permute({0, 3, 1, 2}).to(at::kFloat)));
  t::write_npz(seeds + "/npz/xy_deflated.npz", x, y);
  t::write_bytes(seeds + "/npz/data_label_stored.npz",
                 t::zip_bytes({{"data.npy", t::npy_of(x)}, {"label.npy", t::npy_of(y)}}));
  bdguard::write_png(seeds + "/image_folder/rgb.png", at::full({3, 8, 8}, 7.0));
  std::string png = read_bytes(seeds + "/image_folder/rgb.png");
  t::write_bytes(seeds + "/image_folder/class_image", std::string(1, '\0') + png);
  t::write_bytes(seeds + "/image_folder/labels_csv",
                 "\x01"
                 "file,label\na.png,1\nb.png,0\n");
  fs::remove(seeds + "/image_folder/rgb.png");
}

void make_seeds() {
  const std::string seeds = at_out("seeds");
  for (const char* d : {"model_config", "keras_weights", "data", "onnx"})
    fs::create_directories(seeds + "/" + d);
  // model_config: the valid config, DeepID, and the configs of a few cases.
  write_bytes(seeds + "/model_config/tiny.json", tiny_config().dump());
  json seq = tiny_config();
  seq = {{"class_name", "Sequential"},
         {"config", {{"name", "seq"}, {"layers", tiny_config()["config"]["layers"]}}}};
  write_bytes(seeds + "/model_config/sequential.json", seq.dump());
  json branchy = tiny_config();
  {
    auto& layers = branchy["config"]["layers"];
    json conv2 = layers[kConv];
    conv2["name"] = "conv2";
    conv2["config"]["name"] = "conv2";
    conv2["config"]["padding"] = "same";
    conv2["config"]["strides"] = {2, 2};
    json add = layer("Add", "add", "", json::object());
    add["inbound_nodes"] = {{{"conv", 0, 0, json::object()}, {"conv2", 0, 0, json::object()}}};
    json cat = layer("Concatenate", "cat", "", {{"axis", -1}});
    cat["inbound_nodes"] = {{{"conv", 0, 0, json::object()}, {"add", 0, 0, json::object()}}};
    json bn = layer("BatchNormalization", "bn", "cat", {{"axis", -1}, {"epsilon", 0.001}});
    json pad = layer("ZeroPadding2D", "pad", "bn", {{"padding", {{1, 0}, {0, 1}}}});
    json gap = layer("GlobalAveragePooling2D", "gap", "pad", json::object());
    json act = layer("Activation", "act", "gap", {{"activation", "relu"}});
    json drop = layer("Dropout", "drop", "act", {{"rate", 0.5}});
    json dense = layer("Dense", "dense", "drop", {{"units", 5}, {"activation", "softmax"}});
    layers = {layers[kInput], layers[kConv], conv2, add, cat, bn, pad, gap, act, drop, dense};
    layers[2]["config"]["padding"] = "valid";
    layers[2]["config"]["strides"] = {1, 1};
  }
  write_bytes(seeds + "/model_config/branchy.json", branchy.dump());
  write_bytes(seeds + "/model_config/deepid.json", bdguard::builtin_architecture("deepid").dump());
  for (const char* c : {"model_cycle.h5", "model_duplicate_names.h5", "model_lambda.h5"}) {
    h5::File f = h5::File::open(at_out(c));
    write_bytes(seeds + "/model_config/" + std::string(c) + ".json",
                h5::read_string_attr(f, "/", "model_config", 1 << 20));
  }
  // keras_weights: the valid files and the small malformed ones.
  for (const char* c : {"valid/tiny.h5", "valid/tiny_weights.h5", "weights_nan.h5",
                        "weights_shape_mismatch.h5", "weights_missing_dataset.h5",
                        "weights_soft_link.h5", "weights_int32.h5", "model_truncated.h5"}) {
    fs::copy_file(at_out(c), seeds + "/keras_weights/" + fs::path(c).filename().string(),
                  fs::copy_options::overwrite_existing);
  }
  for (const char* c : {"valid/data.h5", "data_label_out_of_range.h5", "data_label_nan.h5",
                        "data_int64_pixels.h5", "data_huge_chunk.h5", "data_truncated.h5"}) {
    fs::copy_file(at_out(c), seeds + "/data/" + fs::path(c).filename().string(),
                  fs::copy_options::overwrite_existing);
  }
  // onnx: the valid model and the small malformed ones (scripts/fuzz.sh adds real
  // exports and ONNX's node tests).
  fs::copy_file(at_out("valid/tiny.onnx"), seeds + "/onnx/tiny.onnx");
  for (const auto& c : bdguard::test::onnx_corpus_cases()) {
    const fs::path p = at_out(c.file);
    if (fs::is_regular_file(p) && fs::file_size(p) <= (64 << 10)) {
      fs::copy_file(p, seeds + "/onnx/" + c.file);
    }
  }
  // A channels-last uint8 data file with integer labels.
  DataSpec nhwc;
  nhwc.data_type = H5T_STD_U8LE;
  nhwc.data_dims = {4, 8, 8, 3};
  nhwc.label_type = H5T_STD_I64LE;
  write_data(seeds + "/data/nhwc_uint8.h5", nhwc);
  make_data_format_seeds(seeds);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus OUT_DIR\n";
    return 2;
  }
  g_out = argv[1];
  try {
    fs::create_directories(g_out);
    make_valid();
    make_files_that_are_not_what_they_claim();
    make_config_cases();
    make_weight_cases();
    make_data_cases();
    bdguard::test::write_onnx_corpus(g_out);
    make_seeds();
  } catch (const std::exception& e) {
    std::cerr << "make_corpus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
