// clp: Channel Lipschitzness-based Pruning (Zheng et al., ECCV 2022), data-free.
//
// For each output channel k of a Conv, the upper bound of its Lipschitz constant
// (UCLC) is the largest singular value of its kernel W_k reshaped to (C_in, kh * kw),
// times |gamma_k / sigma_k| of the BatchNormalization that reads the Conv (sigma =
// sqrt(running variance), no epsilon, as the original); a Conv without one (DeepID)
// uses its kernel alone. The channels whose UCLC exceeds mean + u * std of their layer
// (unbiased std, strict >) are pruned: kernel slice, bias and the BatchNormalization's
// scale and bias set to zero, so the channel is exactly 0 (the original zeroes the
// BatchNormalization's scale and bias: the same output). Each BatchNormalization is
// paired with the Conv whose output it normalises, found in the graph (the original
// pairs by registration order, which is wrong on PreAct ResNets).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "bdguard/error.h"
#include "bdguard/ops.h"
#include "bdguard/prune.h"
#include "methods.h"

namespace bdguard::defense {

// UCLC per output channel of `conv` (see above).
std::vector<double> channel_lipschitz(const Model& m, const ChannelUnit& u) {
  const Node& conv = m.node(static_cast<size_t>(u.node));
  at::Tensor w = m.node(static_cast<size_t>(conv.inputs[1])).value.detach().to(at::kDouble);
  w = w.reshape({w.size(0), w.size(1), -1});  // (O, C_in / groups, kh * kw)
  at::Tensor sv = at::linalg_svdvals(w).amax(1);
  if (!u.batch_norms.empty()) {
    const Node& bn = m.node(static_cast<size_t>(u.batch_norms.front()));
    const at::Tensor gamma =
        m.node(static_cast<size_t>(bn.inputs[1])).value.detach().to(at::kDouble);
    at::Tensor var = m.node(static_cast<size_t>(bn.inputs[4])).value.detach().to(at::kDouble);
    // A zero variance (a dead channel) would divide by 0: only there the epsilon is added.
    const double eps = dynamic_cast<const BatchNormOp&>(*bn.op).epsilon();
    var = at::where(var > 0, var, var + eps);
    sv = sv * (gamma / var.sqrt()).abs();
  }
  sv = sv.contiguous();
  return {sv.data_ptr<double>(), sv.data_ptr<double>() + sv.numel()};
}

nlohmann::json clp_schema() {
  return {
      {"u", option(3.0, "channels above mean + u x std of their layer's UCLC are pruned", 0, 1e6)}};
}

void run_clp(const Context& c, DefenseResult& r) {
  c.stage("channel Lipschitz bounds");
  const double u = get_double(c.params, "u");
  nlohmann::json layers = nlohmann::json::array(), skipped = nlohmann::json::array();
  int64_t total = 0, pruned_total = 0;
  for (size_t i = 0; i < r.model.size(); ++i) {
    if (!r.model.node(i).is_op("Conv")) continue;
    ChannelUnit unit;
    try {
      unit = conv_unit(r.model, static_cast<int>(i));
    } catch (const InvalidArgument& e) {
      skipped.push_back({{"layer", r.model.node(i).name}, {"reason", e.what()}});
      continue;
    }
    const std::vector<double> uclc = channel_lipschitz(r.model, unit);
    const auto n = static_cast<double>(uclc.size());
    if (uclc.size() < 2) continue;
    double mean = 0, var = 0;
    for (double v : uclc) mean += v;
    mean /= n;
    for (double v : uclc) var += (v - mean) * (v - mean);
    const double threshold = mean + u * std::sqrt(var / (n - 1));
    std::vector<int64_t> pruned;
    for (size_t k = 0; k < uclc.size(); ++k) {
      if (uclc[k] > threshold) pruned.push_back(static_cast<int64_t>(k));
    }
    for (int64_t k : pruned) zero_channel(r.model, unit, k);
    total += static_cast<int64_t>(uclc.size());
    pruned_total += static_cast<int64_t>(pruned.size());
    const bool has_bn = !unit.batch_norms.empty();
    layers.push_back(
        {{"layer", r.model.node(i).name},
         {"batch_norm",
          has_bn ? nlohmann::json(r.model.node(static_cast<size_t>(unit.batch_norms[0])).name)
                 : nlohmann::json()},
         {"channels", uclc.size()},
         {"threshold", threshold},
         {"max_uclc", *std::max_element(uclc.begin(), uclc.end())},
         {"pruned", pruned}});
  }
  r.figures = {{"u", u},
               {"channels", total},
               {"channels_pruned", pruned_total},
               {"layers", layers},
               {"skipped", skipped}};
}

}  // namespace bdguard::defense
