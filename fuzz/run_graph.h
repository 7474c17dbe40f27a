// Shared by the harnesses that build graphs (fuzz_model_config, fuzz_onnx): runs a
// small graph once and checks the contract of Op::infer (op.h): what it accepted, the
// op's forward computes, and every node's value has the dims and dtype inferred when
// the graph was built. A finding (__builtin_trap) is a mismatch, or a LibTorch error in
// a forward pass: Model::run reports it as "... could not be computed: ...", which
// means infer let through what the kernel refuses. The ops' own run-time checks (a
// Gather index computed from the pixels) are bdguard::Errors and expected.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bdguard/error.h"
#include "bdguard/model.h"

namespace bdguard::fuzz {

// Runs `m` on a batch of `batch` images (pixels 0..255, the same on every run) when its
// values hold at most `max_elements` numbers in all (speed); does nothing otherwise or
// when the input is not a float (N, ...) batch.
inline void run_and_check(const Model& m, int64_t batch, int64_t max_elements) {
  if (m.inputs().size() != 1) return;
  const Node& input = m.node(static_cast<size_t>(m.inputs()[0]));
  if (input.info.dims.empty() || input.info.dims[0] != kBatch ||
      !at::isFloatingType(input.info.dtype)) {
    return;
  }
  // Op::infer bounds every value to 2^28 elements; the batch dim counts `batch`.
  auto numel = [&](const Dims& d) {
    int64_t e = 1;
    for (int64_t x : d) e *= x == kBatch ? batch : x;
    return e;
  };
  int64_t total = 0;
  std::vector<int> all;
  for (size_t i = 0; i < m.size(); ++i) {
    total += numel(m.node(i).info.dims);
    if (total > max_elements) return;
    all.push_back(static_cast<int>(i));
  }
  Dims dims = input.info.dims;
  dims[0] = batch;
  const at::Tensor x =
      at::arange(c10::multiply_integers(dims), at::kFloat).remainder(256).reshape(dims);
  std::vector<at::Tensor> values;
  try {
    values = m.run(x, all);
  } catch (const Error& e) {
    if (std::string(e.what()).find("could not be computed") != std::string::npos) {
      __builtin_trap();
    }
    return;
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const ValueInfo& info = m.node(i).info;
    const at::Tensor& v = values[i];
    bool same = v.defined() && v.dim() == static_cast<int64_t>(info.dims.size()) &&
                v.scalar_type() == info.dtype;
    for (size_t d = 0; same && d < info.dims.size(); ++d) {
      same = v.size(static_cast<int64_t>(d)) == (info.dims[d] == kBatch ? batch : info.dims[d]);
    }
    if (!same) __builtin_trap();  // Op::infer promised other dims or another dtype
  }
}

}  // namespace bdguard::fuzz
