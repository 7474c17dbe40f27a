// How the fast sweep splits a model for one target (prune.h): the cut, the linear
// layers right above it whose pre-activations it keeps up to date, the Gemm fed by one
// of them alone, and how labels are scored. Built from the graph alone.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <vector>

#include "bdguard/prune.h"

namespace bdguard::sweep {

// A linear layer reading the cut: a Conv, or a Gemm / MatMul through layout ops.
struct Linear {
  int node = -1;   // the Conv / Gemm / MatMul
  int given = -1;  // what the upper part reads of it: the Relu after it, or the node itself
  bool relu = false;
  bool conv = false;    // z per image: the Conv's output channels-last (oh, ow, f); else (units)
  int64_t dim = 0;      // z's length per image
  Dims out_dims;        // the node's output dims
  at::Tensor weight64;  // Conv: its kernel (F, C, kh, kw) in float64; else the weight as the
                        // layer sees it (in, units) in float64
  // Gemm / MatMul: for each flat index c * h * w + s of the cut, the weight row it meets.
  std::vector<int64_t> feature_row;
  int second = -1;  // index into Plan::second, or -1
};

// A Gemm / MatMul whose only input is a linear layer's activated output (through
// layout ops): its pre-activations are kept up to date from the entries of that
// output that pruning changes.
struct Second {
  int node = -1, given = -1;
  bool relu = false;
  size_t from = 0;    // index into Plan::linear
  at::Tensor kernel;  // (from's dim, units) float32: row e meets entry e of from's z
  int64_t units = 0;
};

struct Plan {
  ChannelUnit target;
  int cut = -1;
  int64_t channels = 0, h = 1, w = 1;
  std::vector<float> v0;  // each channel's value at the cut once pruned
  std::vector<Linear> linear;
  std::vector<Second> second;
  bool give_cut = false;  // some reader of the cut is re-run from it directly
  std::vector<int> side;  // nodes not above the cut that the upper part reads
  // Scores: the logits of the classifier Gemm `score_gemm`, computed from its input
  // `score_node`; or, when `direct` >= 0, linear layer `direct` is that Gemm and its z
  // are the logits; else (-1, -1) the model's outputs are re-run.
  int score_gemm = -1, score_node = -1;
  int direct = -1;
  at::Tensor score_kernel;  // (in, classes) float32, contiguous
  at::Tensor score_bias;    // (classes) float32, or undefined
  // spread[p] >= max over j of ||w_p - w_j||, the classifier's weight columns; empty
  // when no label certificates are made.
  std::vector<double> spread;
  bool sparse_scores = false;
};

Plan make_plan(const Model& m, const ChannelUnit& target);

// Channel c's share of a linear layer's pre-activations: for each (h, w) position of
// the cut, the entries of z it feeds and with which weight, in float64, zeros left out.
struct ChannelMap {
  struct Run {
    int64_t at = 0, len = 0, w = 0;  // z[at .. at + len) -= d * weight[w .. w + len)
  };
  std::vector<int64_t> start;  // per position, its first run (h * w + 1 offsets)
  std::vector<Run> runs;
  std::vector<double> weight;
};
ChannelMap channel_map(const Model& m, const Plan& p, const Linear& lin, int64_t c);

}  // namespace bdguard::sweep
