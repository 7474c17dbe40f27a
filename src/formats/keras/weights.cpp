// Reading a Keras HDF5 model: its architecture, then every weight into the graph.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "hdf5/h5.h"

namespace bdguard {

nlohmann::json read_config_attr(const h5::File& f);  // config.cpp

namespace {

constexpr size_t kMaxWeightsPerLayer = 64;

std::string weights_root(bool weights_only) { return weights_only ? "" : "/model_weights"; }

// "conv_1/kernel:0" -> "kernel"
std::string weight_suffix(const std::string& name) {
  std::string base = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  return base.substr(0, base.find(':'));
}

bool safe_weight_name(const std::string& n) {
  return !n.empty() && n[0] != '/' && n.find("..") == std::string::npos;
}

// Weights must be finite: NaN or Inf would poison every output and every statistic.
void check_finite(const at::Tensor& t, const std::string& file, const std::string& path,
                  const Node& n) {
  at::Tensor bad = at::logical_not(at::isfinite(t)).flatten();
  if (!bad.any().item<bool>()) return;
  const int64_t first = bad.nonzero()[0][0].item<int64_t>();
  const float v = t.flatten()[first].item<float>();
  const int64_t count = bad.sum().item<int64_t>();
  fail(file, path, "finite weights in layer '" + n.layer + "' (" + n.layer_class + ")",
       std::string(std::isnan(v) ? "NaN"
                   : v > 0       ? "+Inf"
                                 : "-Inf") +
           " at element " + std::to_string(first) + " (" + std::to_string(count) +
           " non-finite values)");
}

// The Keras shape of a parameter (its graph dims in the file's order).
Shape file_shape(const Node& n) {
  Shape s(n.value.sizes().begin(), n.value.sizes().end());
  if (n.file_order.empty()) return s;
  Shape out;
  for (int64_t a : n.file_order) out.push_back(s[static_cast<size_t>(a)]);
  return out;
}

// The inverse permutation: the file's layout back to the graph's.
std::vector<int64_t> inverse(const std::vector<int64_t>& p) {
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return inv;
}

void load_weights(Model& m, const h5::File& f, const std::string& root, const LoadOptions& opt) {
  const std::string root_group = root.empty() ? "/" : root;
  if (!h5::is_group(f, root_group)) {
    fail(f.path(), root_group, "the group of model weights", "nothing");
  }
  std::vector<std::string> names = h5::read_string_list_attr(f, root_group, "layer_names", 10000);
  // The parameters of each Keras layer, in Keras' weight order (node order).
  std::vector<std::string> layers;
  std::map<std::string, std::vector<int>> params;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind != NodeKind::kParam) continue;
    if (!params.count(n.layer)) layers.push_back(n.layer);
    params[n.layer].push_back(static_cast<int>(i));
  }
  for (const std::string& layer : layers) {
    const auto& ids = params[layer];
    const Node& first = m.node(static_cast<size_t>(ids[0]));
    const std::string group = root + "/" + layer;
    if (std::find(names.begin(), names.end(), layer) == names.end() || !h5::is_group(f, group)) {
      fail(f.path(), group, "the weights of layer '" + layer + "' (" + first.layer_class + ")",
           "no such layer in the file");
    }
    auto wnames = h5::read_string_list_attr(f, group, "weight_names", kMaxWeightsPerLayer);
    if (wnames.size() != ids.size()) {
      fail<ShapeMismatch>(f.path(), group + "@weight_names",
                          std::to_string(ids.size()) + " weights for " + first.layer_class,
                          std::to_string(wnames.size()));
    }
    for (size_t k = 0; k < ids.size(); ++k) {
      Node& n = m.node(static_cast<size_t>(ids[k]));
      // Keras order is the contract; the suffix, when it names a known weight, must agree.
      const std::string suffix = weight_suffix(n.source);
      std::string wname = wnames[k];
      for (const auto& w : wnames) {
        if (weight_suffix(w) == suffix) wname = w;
      }
      if (!safe_weight_name(wname)) {
        fail(f.path(), group + "@weight_names", "relative weight names", "'" + wname + "'");
      }
      const std::string path = group + "/" + wname;
      h5::DatasetInfo info = h5::dataset_info(f, path);
      if (info.kind != h5::Kind::kFloat ||
          (info.element_size != 2 && info.element_size != 4 && info.element_size != 8)) {
        fail(f.path(), path, "float16, float32 or float64", info.dtype_name());
      }
      const Shape want = file_shape(n);
      if (info.dims != want) {
        fail<ShapeMismatch>(
            f.path(), path,
            shape_str(want) + " for " + n.layer_class + " '" + n.layer + "' " + suffix,
            shape_str(info.dims));
      }
      // read_floats refuses tensors over the limit before allocating.
      std::vector<float> values = h5::read_floats(f, path, opt.max_tensor_bytes);
      at::Tensor t = at::from_blob(values.data(), info.dims, at::kFloat).clone();
      check_finite(t, f.path(), path, n);
      if (!n.file_order.empty()) t = t.permute(inverse(n.file_order)).contiguous();
      n.value = t;
      n.source = wname;
    }
  }
}

}  // namespace

Model load_keras_model(const std::string& path, const ArchSource& arch,
                       const LoadOptions& options) {
  h5::File f = h5::File::open(path);
  const bool full = h5::has_attr(f, "/", "model_config");
  nlohmann::json config;
  std::string origin = path;
  if (full) {
    config = read_config_attr(f);
  } else if (!arch.empty()) {
    config = read_architecture(arch);
    origin = arch.builtin.empty() ? arch.file : "--arch " + arch.builtin;
  } else {
    fail<InvalidArgument>(path, "/@model_config",
                          "a full Keras model, or --arch / --arch-from for a weights-only file",
                          "a weights-only file");
  }
  Model m = keras_model_from_config(config, origin);
  load_weights(m, f, weights_root(!full), options);
  m.origin = path;
  m.preprocess = options.preprocess;
  m.format = ModelFormat::kKeras;
  m.source_path = path;
  m.weights_only = !full;
  return m;
}

}  // namespace bdguard
