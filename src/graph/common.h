// Helpers shared by the layer implementations: reading Keras config fields with
// validation, and TensorFlow's padding arithmetic.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "bdguard/error.h"
#include "bdguard/layer.h"

namespace bdguard::graph {

// Every config error names the layer and the field.
[[noreturn]] void config_error(const Layer& l, const std::string& field,
                               const std::string& expected, const std::string& found);

int64_t get_int(const Layer& l, const std::string& field, int64_t fallback, int64_t lo, int64_t hi);
double get_double(const Layer& l, const std::string& field, double fallback);
bool get_bool(const Layer& l, const std::string& field, bool fallback);
std::string get_string(const Layer& l, const std::string& field, const std::string& fallback);
// An int or a pair of ints ("kernel_size": 3 or [3, 3]); `fallback` when absent or null.
std::pair<int64_t, int64_t> get_pair(const Layer& l, const std::string& field,
                                     std::pair<int64_t, int64_t> fallback, int64_t lo, int64_t hi);
// Refuses data_format = channels_first (Keras on CPU always used channels_last).
void require_channels_last(const Layer& l);
void require_inputs(const Layer& l, const std::vector<Shape>& inputs, size_t count, size_t rank);

// TensorFlow "same"/"valid" output size and padding (the extra pixel goes bottom/right).
struct Padding1d {
  int64_t out = 0, before = 0, after = 0;
};
Padding1d tf_padding(const Layer& l, const std::string& padding, int64_t in, int64_t kernel,
                     int64_t stride, int64_t dilation);

// Internal tensor of a Keras image batch (N, H, W, C) is NCHW; these convert.
inline at::Tensor to_nhwc(const at::Tensor& x) { return x.permute({0, 2, 3, 1}); }
inline at::Tensor to_nchw(const at::Tensor& x) { return x.permute({0, 3, 1, 2}); }

// Maps a Keras axis of a tensor of Keras rank `rank` (batch included) to the internal axis.
int64_t internal_axis(int64_t keras_axis, int64_t rank);

template <class T>
std::unique_ptr<Layer> clone_layer(const T& self) {
  auto copy = std::make_unique<T>(self);
  for (auto& w : copy->weights) w.value = w.value.detach().clone();
  return copy;
}

}  // namespace bdguard::graph
