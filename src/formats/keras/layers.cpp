// The Keras layer registry: one builder per Keras class, each adding the nodes of a
// layer (Keras' channels-last conventions become the graph's NCHW ones here).
#include "layers.h"

#include <ATen/ATen.h>

#include <map>

#include "bdguard/error.h"

namespace bdguard::keras {
namespace {

constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxImageElements = int64_t{1} << 28;

const ValueInfo& info(const Model& m, int node) { return m.node(static_cast<size_t>(node)).info; }

// Keras shape of a graph value (batch left out, channels last): "(8, 8, 3)".
std::string keras_shape(const Dims& d) {
  Shape s;
  if (d.size() == 4) {
    s = {d[2], d[3], d[1]};
  } else {
    s.assign(d.begin() + (d.empty() ? 0 : 1), d.end());
  }
  return shape_str(s);
}

void require_inputs(const Model& m, const LayerDoc& l, const std::vector<int>& in, size_t count,
                    size_t rank) {
  if (in.size() != count) {
    config_error(l, "inputs", std::to_string(count) + " input(s)", std::to_string(in.size()));
  }
  for (int i : in) {
    if (rank != 0 && info(m, i).dims.size() != rank + 1) {
      throw ShapeMismatch(describe(l.origin, l.label(),
                                   "an input of rank " + std::to_string(rank) + " (batch excluded)",
                                   keras_shape(info(m, i).dims)));
    }
  }
}

// The node helpers: every node of a layer carries the layer's name and class.
int op(Model& m, const LayerDoc& l, const std::string& role, std::unique_ptr<Op> o,
       std::vector<int> in) {
  const std::string name = role.empty() ? l.name : l.name + "/" + role;
  const int i = m.add_op(name, std::move(o), std::move(in), l.label());
  m.node(static_cast<size_t>(i)).layer = l.name;
  m.node(static_cast<size_t>(i)).layer_class = l.class_name;
  return i;
}

// A weight of the layer, in the graph's layout; value.permute(file_order) is the Keras
// layout. Until the file's weights (or init_weights) replace it, its value is a zero
// expanded to the shape, which allocates nothing: a crafted config cannot make the
// reader allocate before the file's datasets are checked against the size limits.
int weight(Model& m, const LayerDoc& l, const std::string& suffix, const Dims& graph_dims,
           std::vector<int64_t> file_order = {}, bool trainable = true) {
  const int i =
      m.add_param(l.name + "/" + suffix, at::zeros({}, at::kFloat).expand(graph_dims), trainable);
  Node& n = m.node(static_cast<size_t>(i));
  n.layer = l.name;
  n.layer_class = l.class_name;
  n.source = l.name + "/" + suffix + ":0";
  n.file_order = std::move(file_order);
  return i;
}

int constant(Model& m, const LayerDoc& l, const std::string& role, at::Tensor v) {
  const int i = m.add_const(l.name + "/" + role, std::move(v));
  m.node(static_cast<size_t>(i)).layer = l.name;
  m.node(static_cast<size_t>(i)).layer_class = l.class_name;
  return i;
}

// Keras' `activation` argument as a node after `x` (none for linear).
int activation(Model& m, const LayerDoc& l, int x, const std::string& name,
               const std::string& role) {
  const int64_t rank = static_cast<int64_t>(info(m, x).dims.size());
  if (name == "linear") return x;
  if (name == "relu") return op(m, l, role, make_unary("Relu"), {x});
  if (name == "sigmoid") return op(m, l, role, make_unary("Sigmoid"), {x});
  if (name == "tanh") return op(m, l, role, make_unary("Tanh"), {x});
  if (name == "softmax") {
    // Keras normalises the last (channel) axis: axis 1 of an NCHW image.
    return op(m, l, role, make_softmax(rank == 4 ? 1 : rank - 1, false, false), {x});
  }
  throw UnsupportedLayer(describe(l.origin, "model_config: layer '" + l.name + "' activation",
                                  "linear, relu, softmax, sigmoid or tanh", "'" + name + "'"));
}

AutoPad keras_padding(const LayerDoc& l) {
  const std::string p = get_string(l, "padding", "valid");
  if (p == "valid") return AutoPad::kValid;
  if (p == "same") return AutoPad::kSameUpper;  // TensorFlow: the extra pixel at the end
  config_error(l, "padding", "'valid' or 'same'", p);
}

int build_input(Model&, const LayerDoc&, const std::vector<int>&) {
  throw InvalidArgument("InputLayer is built by the config reader");
}

int build_conv2d(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 3);
  require_channels_last(l);
  const int64_t filters = get_int(l, "filters", -1, 1, 1 << 16);
  if (filters < 0) config_error(l, "filters", "a positive integer", "nothing");
  Window2d w;
  std::tie(w.kh, w.kw) = get_pair(l, "kernel_size", {-1, -1}, 1, 4096);
  if (w.kh < 0) config_error(l, "kernel_size", "a kernel size", "nothing");
  std::tie(w.sh, w.sw) = get_pair(l, "strides", {1, 1}, 1, 4096);
  std::tie(w.dh, w.dw) = get_pair(l, "dilation_rate", {1, 1}, 1, 4096);
  if ((w.sh > 1 || w.sw > 1) && (w.dh > 1 || w.dw > 1)) {
    config_error(l, "strides", "strides of 1 when dilation_rate > 1", "both above 1");
  }
  w.auto_pad = keras_padding(l);
  const int64_t groups = get_int(l, "groups", 1, 1, 1 << 16);
  const std::string act = get_string(l, "activation", "linear");
  const bool use_bias = get_bool(l, "use_bias", true);
  const int64_t channels = info(m, in[0]).dims[1];
  if (channels % groups != 0 || filters % groups != 0) {
    config_error(l, "groups", "a divisor of the input channels and filters",
                 std::to_string(groups));
  }
  // Keras kernel (kh, kw, in / groups, filters) = OIHW.permute(2, 3, 1, 0).
  const int k = weight(m, l, "kernel", {filters, channels / groups, w.kh, w.kw}, {2, 3, 1, 0});
  std::vector<int> inputs{in[0], k};
  if (use_bias) inputs.push_back(weight(m, l, "bias", {filters}));
  const int y = op(m, l, "", std::make_unique<ConvOp>(w, groups), inputs);
  return activation(m, l, y, act, "activation");
}

int build_dense(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  const Dims& x = info(m, in[0]).dims;
  if (x.size() < 2) config_error(l, "input", "a tensor of rank >= 1", "a scalar");
  const int64_t units = get_int(l, "units", -1, 1, 1 << 24);
  if (units < 0) config_error(l, "units", "a positive integer", "nothing");
  const std::string act = get_string(l, "activation", "linear");
  const bool use_bias = get_bool(l, "use_bias", true);
  if (x.size() != 2 && x.size() != 4) {
    throw ShapeMismatch(
        describe(l.origin, l.label(), "an input of rank 1 or 3 (batch excluded)", keras_shape(x)));
  }
  const bool image = x.size() == 4;
  const int64_t features = image ? x[1] : x[1];
  const int k = weight(m, l, "kernel", {features, units});
  const int b = use_bias ? weight(m, l, "bias", {units}) : -1;
  int y;
  if (!image) {
    std::vector<int> inputs{in[0], k};
    if (b >= 0) inputs.push_back(b);
    y = op(m, l, "", std::make_unique<GemmOp>(GemmAttrs{}), inputs);
  } else {
    // Keras applies Dense to the last axis: per pixel, over the channels.
    const int t = op(m, l, "channels_last", make_transpose({0, 2, 3, 1}), {in[0]});
    y = op(m, l, b >= 0 ? "matmul" : "", make_matmul(), {t, k});
    if (b >= 0) y = op(m, l, "bias", make_binary("Add"), {y, b});
    y = op(m, l, b >= 0 ? "" : "channels_first", make_transpose({0, 3, 1, 2}), {y});
  }
  return activation(m, l, y, act, "activation");
}

Window2d pool_window(const LayerDoc& l) {
  Window2d w;
  std::tie(w.kh, w.kw) = get_pair(l, "pool_size", {2, 2}, 1, 4096);
  std::tie(w.sh, w.sw) = get_pair(l, "strides", {w.kh, w.kw}, 1, 4096);
  w.auto_pad = keras_padding(l);
  return w;
}

int build_max_pool(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 3);
  require_channels_last(l);
  return op(m, l, "", make_max_pool(pool_window(l)), in);
}

int build_average_pool(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 3);
  require_channels_last(l);
  // TensorFlow averages over the input's positions only.
  return op(m, l, "", make_average_pool(pool_window(l), /*count_include_pad=*/false), in);
}

int build_global_average_pool(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 3);
  require_channels_last(l);
  return op(m, l, "", make_global_pool(false, get_bool(l, "keepdims", false)), in);
}

int build_flatten(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  require_channels_last(l);
  int x = in[0];
  // Keras flattens channels-last: (H, W, C) order.
  if (info(m, x).dims.size() == 4) x = op(m, l, "channels_last", make_transpose({0, 2, 3, 1}), {x});
  return op(m, l, "", make_flatten(1), {x});
}

int build_add(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  if (in.size() < 2) config_error(l, "inputs", "at least 2 inputs", std::to_string(in.size()));
  for (int i : in) {
    if (info(m, i).dims != info(m, in[0]).dims) {
      throw ShapeMismatch(describe(l.origin, "model_config: layer '" + l.name + "' (Add)",
                                   "inputs of equal shape " + keras_shape(info(m, in[0]).dims),
                                   keras_shape(info(m, i).dims)));
    }
  }
  return op(m, l, "", in.size() == 2 ? make_binary("Add") : make_sum(), in);
}

int build_concatenate(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  if (in.size() < 2) config_error(l, "inputs", "at least 2 inputs", std::to_string(in.size()));
  const auto rank = static_cast<int64_t>(info(m, in[0]).dims.size());
  int64_t axis = get_int(l, "axis", -1, -rank, rank - 1);
  if (axis < 0) axis += rank;
  if (axis == 0) config_error(l, "axis", "a non-batch axis", "0");
  static const int64_t kNchw[4] = {0, 2, 3, 1};
  const int64_t internal = rank == 4 ? kNchw[axis] : axis;
  for (int i : in) {
    const Dims& d = info(m, i).dims;
    bool ok = d.size() == info(m, in[0]).dims.size();
    for (size_t k = 0; ok && k < d.size(); ++k) {
      ok = static_cast<int64_t>(k) == internal || d[k] == info(m, in[0]).dims[k];
    }
    if (!ok) {
      throw ShapeMismatch(describe(
          l.origin, "model_config: layer '" + l.name + "' (Concatenate)",
          "shapes matching " + keras_shape(info(m, in[0]).dims) + " off the axis", keras_shape(d)));
    }
  }
  return op(m, l, "", make_concat(internal), in);
}

int build_activation(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  const std::string act = get_string(l, "activation", "linear");
  if (act == "linear") return op(m, l, "", make_identity(), in);
  return activation(m, l, in[0], act, "");
}

int build_relu(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  const bool has_max = has_field(l, "max_value");
  const double max_value = get_double(l, "max_value", 0.0);
  const double slope = get_double(l, "negative_slope", 0.0);
  const double threshold = get_double(l, "threshold", 0.0);
  if (has_max && max_value < 0) config_error(l, "max_value", ">= 0", std::to_string(max_value));
  if (!has_max && slope == 0.0 && threshold == 0.0) return op(m, l, "", make_unary("Relu"), in);
  return op(m, l, "", make_keras_relu(threshold, max_value, has_max, slope), in);
}

int build_dropout(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  return op(m, l, "", make_identity("Dropout"), in);
}

int build_batch_normalization(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  const Dims& x = info(m, in[0]).dims;
  const auto rank = static_cast<int64_t>(x.size());
  int64_t axis = -1;
  if (l.config.is_object() && l.config.contains("axis")) {
    const auto& a = l.config["axis"];
    if (a.is_array() && a.size() == 1 && a[0].is_number_integer()) {
      axis = a[0].get<int64_t>();
    } else if (a.is_number_integer()) {
      axis = a.get<int64_t>();
    } else {
      config_error(l, "axis", "one integer axis", a.dump());
    }
  }
  if (axis < 0) axis += rank;
  if (axis != rank - 1) config_error(l, "axis", "the last axis", std::to_string(axis));
  if (rank < 2) config_error(l, "input", "a tensor of rank >= 1", "a scalar");
  const double eps = get_double(l, "epsilon", 1e-3);
  const double momentum = get_double(l, "momentum", 0.99);
  if (!(momentum >= 0 && momentum <= 1)) {
    config_error(l, "momentum", "a number in [0, 1]", std::to_string(momentum));
  }
  const bool center = get_bool(l, "center", true), scale = get_bool(l, "scale", true);
  const int64_t c = x[1];  // the channel axis of the graph's NCHW (or (N, F)) value
  const int gamma = scale ? weight(m, l, "gamma", {c}) : constant(m, l, "gamma", at::ones({c}));
  const int beta = center ? weight(m, l, "beta", {c}) : constant(m, l, "beta", at::zeros({c}));
  const int mean = weight(m, l, "moving_mean", {c}, {}, /*trainable=*/false);
  const int var = weight(m, l, "moving_variance", {c}, {}, /*trainable=*/false);
  return op(m, l, "", std::make_unique<BatchNormOp>(eps, momentum),
            {in[0], gamma, beta, mean, var});
}

int build_zero_padding(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 3);
  const auto* v =
      l.config.is_object() && l.config.contains("padding") ? &l.config["padding"] : nullptr;
  int64_t t = 1, b = 1, le = 1, r = 1;
  auto num = [&](const nlohmann::json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > 65536) {
      config_error(l, "padding", "non-negative integers", v->dump());
    }
    return x.get<int64_t>();
  };
  if (v && v->is_number()) {
    t = b = le = r = num(*v);
  } else if (v && v->is_array() && v->size() == 2 && (*v)[0].is_array()) {
    if ((*v)[0].size() != 2 || !(*v)[1].is_array() || (*v)[1].size() != 2) {
      config_error(l, "padding", "((top, bottom), (left, right))", v->dump());
    }
    t = num((*v)[0][0]), b = num((*v)[0][1]), le = num((*v)[1][0]), r = num((*v)[1][1]);
  } else if (v && v->is_array() && v->size() == 2) {
    t = b = num((*v)[0]);
    le = r = num((*v)[1]);
  } else if (v) {
    config_error(l, "padding", "an int, a pair or a pair of pairs", v->dump());
  }
  require_channels_last(l);
  return op(m, l, "", make_pad({0, 0, t, le, 0, 0, b, r}, 0.0, false), in);
}

int build_rescaling(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  require_inputs(m, l, in, 1, 0);
  const double scale = get_double(l, "scale", 1.0), offset = get_double(l, "offset", 0.0);
  int y = op(m, l, offset == 0.0 ? "" : "scale", make_binary("Mul"),
             {in[0], constant(m, l, "scale_value", at::tensor(static_cast<float>(scale)))});
  if (offset != 0.0) {
    y = op(m, l, "", make_binary("Add"),
           {y, constant(m, l, "offset_value", at::tensor(static_cast<float>(offset)))});
  }
  return y;
}

using Builder = int (*)(Model&, const LayerDoc&, const std::vector<int>&);

const std::map<std::string, Builder>& registry() {
  static const std::map<std::string, Builder> table = {
      {"InputLayer", build_input},
      {"Conv2D", build_conv2d},
      {"Dense", build_dense},
      {"MaxPooling2D", build_max_pool},
      {"AveragePooling2D", build_average_pool},
      {"GlobalAveragePooling2D", build_global_average_pool},
      {"Flatten", build_flatten},
      {"Add", build_add},
      {"Concatenate", build_concatenate},
      {"Activation", build_activation},
      {"ReLU", build_relu},
      {"Dropout", build_dropout},
      {"BatchNormalization", build_batch_normalization},
      {"ZeroPadding2D", build_zero_padding},
      {"Rescaling", build_rescaling},
  };
  return table;
}

}  // namespace

void require_known(const LayerDoc& l) {
  if (registry().count(l.class_name) == 0) add_layer_unknown(l);
}

int add_layer(Model& m, const LayerDoc& l, const std::vector<int>& in) {
  auto it = registry().find(l.class_name);
  if (it == registry().end()) add_layer_unknown(l);
  return it->second(m, l, in);
}

void add_layer_unknown(const LayerDoc& l) {
  {
    std::string why = l.class_name == "Lambda"
                          ? "a Lambda layer (its config carries Python bytecode; bdguard never "
                            "executes code from a file)"
                          : "class '" + l.class_name + "'";
    std::string known;
    for (const auto& [name, _] : registry()) known += (known.empty() ? "" : ", ") + name;
    throw UnsupportedLayer(
        describe(l.origin, "model_config: layer '" + l.name + "'", "one of " + known, why));
  }
}

Dims input_dims(const LayerDoc& l) {
  const nlohmann::json* s = nullptr;
  for (const char* key : {"batch_input_shape", "batch_shape"}) {
    if (l.config.is_object() && l.config.contains(key) && l.config[key].is_array()) {
      s = &l.config[key];
    }
  }
  auto bad = [&](const std::string& expected, const std::string& found) {
    fail(l.origin, "model_config: layer '" + l.name + "' batch_input_shape", expected, found);
  };
  if (!s) fail(l.origin, "model_config: layer '" + l.name + "'", "a batch_input_shape", "none");
  if (s->size() != 2 && s->size() != 4) bad("(None, H, W, C) or (None, features)", s->dump());
  Shape keras;
  int64_t total = 1;
  for (size_t i = 1; i < s->size(); ++i) {
    const auto& d = (*s)[i];
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxDim) {
      bad("dimensions in [1, " + std::to_string(kMaxDim) + "]", s->dump());
    }
    keras.push_back(d.get<int64_t>());
    total *= keras.back();
    if (total > kMaxImageElements) {
      throw LimitExceeded(describe(l.origin,
                                   "model_config: layer '" + l.name + "' batch_input_shape",
                                   "at most 2^28 elements per image", s->dump()));
    }
  }
  if (keras.size() == 3) return {kBatch, keras[2], keras[0], keras[1]};
  return {kBatch, keras[0]};
}

std::vector<std::string> supported_classes() {
  std::vector<std::string> out;
  for (const auto& [name, _] : registry()) out.push_back(name);
  return out;
}

}  // namespace bdguard::keras
