// Reading Keras config fields with validation.
#include <cmath>
#include <limits>

#include "bdguard/error.h"
#include "layers.h"

namespace bdguard::keras {

std::string LayerDoc::label() const {
  return "model_config: layer '" + name + "' (" + class_name + ")";
}

void config_error(const LayerDoc& l, const std::string& field, const std::string& expected,
                  const std::string& found) {
  throw UnsupportedLayer(describe(l.origin, l.label() + " " + field, expected, found));
}

namespace {

// An integer that fits int64 (JSON allows 2^64 - 1, which would wrap to -1).
bool is_int64(const nlohmann::json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX});
}

const nlohmann::json* field_of(const LayerDoc& l, const std::string& field) {
  if (!l.config.is_object()) return nullptr;
  auto it = l.config.find(field);
  if (it == l.config.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

bool has_field(const LayerDoc& l, const std::string& field) {
  return field_of(l, field) != nullptr;
}

int64_t get_int(const LayerDoc& l, const std::string& field, int64_t fallback, int64_t lo,
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

double get_double(const LayerDoc& l, const std::string& field, double fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_number()) config_error(l, field, "a number", v->dump());
  double x = v->get<double>();
  if (!std::isfinite(x)) config_error(l, field, "a finite number", v->dump());
  return x;
}

bool get_bool(const LayerDoc& l, const std::string& field, bool fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_boolean()) config_error(l, field, "true or false", v->dump());
  return v->get<bool>();
}

std::string get_string(const LayerDoc& l, const std::string& field, const std::string& fallback) {
  const auto* v = field_of(l, field);
  if (!v) return fallback;
  if (!v->is_string()) config_error(l, field, "a string", v->dump());
  return v->get<std::string>();
}

std::pair<int64_t, int64_t> get_pair(const LayerDoc& l, const std::string& field,
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

void require_channels_last(const LayerDoc& l) {
  std::string fmt = get_string(l, "data_format", "channels_last");
  if (fmt != "channels_last") config_error(l, "data_format", "channels_last", fmt);
}

}  // namespace bdguard::keras
