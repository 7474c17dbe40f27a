// Helpers shared by the op implementations: checking inputs at build time, axes,
// broadcasting and window arithmetic.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "bdguard/error.h"
#include "bdguard/ops.h"

namespace bdguard::ops {

// Checks the number of inputs (absent optional ones count as given positions).
void arity(const std::vector<const ValueInfo*>& in, size_t lo, size_t hi);
// Input i, which must be present.
const ValueInfo& need(const std::vector<const ValueInfo*>& in, size_t i);
// Input i or nullptr when absent or beyond the list.
const ValueInfo* maybe(const std::vector<const ValueInfo*>& in, size_t i);
void require_rank(const ValueInfo& v, size_t rank, const std::string& what);
void require_float(const ValueInfo& v, const std::string& what);
// A dim that must be known at build time (not the batch size).
int64_t static_dim(const ValueInfo& v, size_t axis, const std::string& what);
// `axis` in [-rank, rank) (or [-rank, rank] with `inclusive`) as a non-negative axis.
int64_t norm_axis(int64_t axis, int64_t rank, const std::string& what, bool inclusive = false);
// Numpy broadcasting of two shapes; the batch size broadcasts with 1 and itself only.
Dims broadcast(const Dims& a, const Dims& b, const std::string& what);
// The contents of a known int64 input (shapes, axes, pads), or throws.
const std::vector<int64_t>& known_ints(const ValueInfo& v, const std::string& what);
// The element count of `d` when every dim is known; -1 otherwise.
int64_t static_numel(const Dims& d);
std::string dim_str(int64_t d);
std::string type_name(at::ScalarType t);

// A window's output size along one axis, and its padding when auto_pad decides it.
struct Axis1d {
  int64_t out = 0, before = 0, after = 0;
};
Axis1d window_axis(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t before,
                   int64_t after, AutoPad auto_pad, bool ceil_mode, const std::string& what);
// Fills window.pads from auto_pad (if set) and returns the output (h, w).
std::pair<int64_t, int64_t> resolve_window(Window2d& w, int64_t h, int64_t wd,
                                           const std::string& what);
bool symmetric(const std::vector<int64_t>& pads);
nlohmann::json window_json(const Window2d& w);

}  // namespace bdguard::ops
