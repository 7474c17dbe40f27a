#include "common.h"

#include <limits>

namespace bdguard::graph {

void config_error(const Layer& l, const std::string& field, const std::string& expected,
                  const std::string& found) {
  throw UnsupportedLayer(describe(
      "model_config", "layer '" + l.name + "' (" + l.class_name + ") " + field, expected, found));
}

// An integer that fits int64 (JSON allows 2^64 - 1, which would wrap to -1).
static bool is_int64(const nlohmann::json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX});
}

static const nlohmann::json* field_of(const Layer& l, const std::string& field) {
  if (!l.config.is_object()) return nullptr;
  auto it = l.config.find(field);
  if (it == l.config.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t get_int(const Layer& l, const std::string& field, int64_t fallback, int64_t lo,
                int64_t hi) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!is_int64(*v)) config_error(l, field, "an integer", v->dump());
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    config_error(l, field, "a value in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                 std::to_string(x));
  }
  return x;
}

double get_double(const Layer& l, const std::string& field, double fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_number()) config_error(l, field, "a number", v->dump());
  double x = v->get<double>();
  if (!std::isfinite(x)) config_error(l, field, "a finite number", v->dump());
  return x;
}

bool get_bool(const Layer& l, const std::string& field, bool fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_boolean()) config_error(l, field, "true or false", v->dump());
  return v->get<bool>();
}

std::string get_string(const Layer& l, const std::string& field, const std::string& fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_string()) config_error(l, field, "a string", v->dump());
  return v->get<std::string>();
}

std::pair<int64_t, int64_t> get_pair(const Layer& l, const std::string& field,
                                     std::pair<int64_t, int64_t> fallback, int64_t lo, int64_t hi) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  auto check = [&](const nlohmann::json& x) {
    if (!is_int64(x)) config_error(l, field, "integers", v->dump());
    int64_t i = x.get<int64_t>();
    if (i < lo || i > hi) {
      config_error(l, field, "values in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                   v->dump());
    }
    return i;
  };
  if (v->is_number()) {
    int64_t i = check(*v);
    return {i, i};
  }
  if (!v->is_array() || v->size() != 2) config_error(l, field, "an int or two ints", v->dump());
  return {check((*v)[0]), check((*v)[1])};
}

void require_channels_last(const Layer& l) {
  std::string fmt = get_string(l, "data_format", "channels_last");
  if (fmt != "channels_last") config_error(l, "data_format", "channels_last", fmt);
}

void require_inputs(const Layer& l, const std::vector<Shape>& inputs, size_t count, size_t rank) {
  if (inputs.size() != count) {
    config_error(l, "inputs", std::to_string(count) + " input(s)", std::to_string(inputs.size()));
  }
  for (const auto& s : inputs) {
    if (rank != 0 && s.size() != rank) {
      throw ShapeMismatch(describe("model_config", "layer '" + l.name + "' (" + l.class_name + ")",
                                   "an input of rank " + std::to_string(rank) + " (batch excluded)",
                                   shape_str(s)));
    }
  }
}

Padding1d tf_padding(const Layer& l, const std::string& padding, int64_t in, int64_t kernel,
                     int64_t stride, int64_t dilation) {
  int64_t eff = (kernel - 1) * dilation + 1;
  Padding1d p;
  if (padding == "valid") {
    if (in < eff) {
      throw ShapeMismatch(describe("model_config", "layer '" + l.name + "' (" + l.class_name + ")",
                                   "an input of at least " + std::to_string(eff) + " pixels",
                                   std::to_string(in)));
    }
    p.out = (in - eff) / stride + 1;
  } else if (padding == "same") {
    p.out = (in + stride - 1) / stride;
    int64_t total = std::max<int64_t>((p.out - 1) * stride + eff - in, 0);
    p.before = total / 2;
    p.after = total - p.before;
  } else {
    config_error(l, "padding", "'valid' or 'same'", padding);
  }
  return p;
}

int64_t internal_axis(int64_t keras_axis, int64_t rank) {
  int64_t a = keras_axis < 0 ? keras_axis + rank : keras_axis;
  if (rank != 4) return a;
  static const int64_t kMap[4] = {0, 2, 3, 1};
  return kMap[a];
}

}  // namespace bdguard::graph
