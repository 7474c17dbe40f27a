// BadNets (Gu, Dolan-Gavitt, Garg 2017): a small patch stamped (or blended) at a fixed
// place. Also the dispatch of make_trigger() and apply_trigger() over every method.
#include <ATen/ATen.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cstdio>

#include "bdguard/attack.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"

namespace bdguard {
namespace {

std::pair<int64_t, int64_t> trigger_position(const TriggerOptions& o, int64_t H, int64_t W,
                                             int64_t h, int64_t w, Rng& rng) {
  const std::string& p = o.position;
  auto clamp0 = [](int64_t v) { return std::max<int64_t>(v, 0); };
  const int64_t bottom = clamp0(H - h - 1), right = clamp0(W - w - 1);
  const int64_t top = H > h ? 1 : 0, left = W > w ? 1 : 0;
  if (p == "bottom-right") return {bottom, right};
  if (p == "bottom-left") return {bottom, left};
  if (p == "top-right") return {top, right};
  if (p == "top-left") return {top, left};
  if (p == "center") return {(H - h) / 2, (W - w) / 2};
  if (p == "random") {
    const auto r = static_cast<int64_t>(rng.below(static_cast<uint64_t>(H - h + 1)));
    return {r, static_cast<int64_t>(rng.below(static_cast<uint64_t>(W - w + 1)))};
  }
  long long r = -1, c = -1;
  char extra = 0;
  if (std::sscanf(p.c_str(), "%lld,%lld%c", &r, &c, &extra) != 2 || r < 0 || c < 0 || r + h > H ||
      c + w > W) {
    fail<InvalidArgument>("--position", "'" + p + "'",
                          "a corner, center, random, or ROW,COL with the " + std::to_string(h) +
                              "x" + std::to_string(w) + " trigger inside the " + std::to_string(H) +
                              "x" + std::to_string(W) + " image",
                          "another value");
  }
  return {r, c};
}

bool is_drawn_patch(const std::string& name) {
  return name == "square" || name == "checkerboard" || name == "random" || name == "random-grey";
}

// The (C, size, size) patch `name` (one of is_drawn_patch), 0..255.
at::Tensor drawn_patch(const std::string& name, int64_t C, int64_t size, Rng& rng) {
  at::Tensor p = at::full({C, size, size}, 255.0f);
  float* v = p.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < size; ++i) {
      for (int64_t j = 0; j < size; ++j) {
        float& x = v[(c * size + i) * size + j];
        if (name == "checkerboard") {
          x = (i + j) % 2 ? 0.0f : 255.0f;
        } else if (name == "random") {
          x = rng.below(2) ? 255.0f : 0.0f;
        } else if (name == "random-grey") {
          x = static_cast<float>(rng.below(256));
        }
      }
    }
  }
  return p;
}

}  // namespace

Trigger make_patch_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng) {
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  if (!(o.blend > 0 && o.blend <= 1)) {
    fail<InvalidArgument>("--blend", "", "a value in (0, 1]", std::to_string(o.blend));
  }
  Trigger t;
  t.blend = o.blend;
  if (is_drawn_patch(o.trigger)) {
    if (o.size < 1 || o.size > std::min(H, W)) {
      fail<InvalidArgument>("--trigger-size", "",
                            "a size in [1, " + std::to_string(std::min(H, W)) + "]",
                            std::to_string(o.size));
    }
    t.pattern = drawn_patch(o.trigger, C, o.size, rng);
  } else {
    int w = 0, h = 0, n = 0;
    if (!stbi_info(o.trigger.c_str(), &w, &h, &n)) {
      fail(o.trigger, "--trigger", "square, checkerboard, random, random-grey or an image file",
           stbi_failure_reason() ? stbi_failure_reason() : "no such image");
    }
    if (h > H || w > W) {
      fail<ShapeMismatch>(o.trigger, "trigger image",
                          "at most " + std::to_string(W) + "x" + std::to_string(H) + " pixels",
                          std::to_string(w) + "x" + std::to_string(h));
    }
    t.pattern = load_image(o.trigger, {C, h, w}).squeeze(0);
  }
  std::tie(t.top, t.left) = trigger_position(o, H, W, t.pattern.size(1), t.pattern.size(2), rng);
  return t;
}

Trigger make_trigger(const TriggerOptions& o, const Shape& input_shape, uint64_t seed) {
  if (input_shape.size() != 3) {
    fail<ShapeMismatch>("", "trigger", "a model taking images (C, H, W)", shape_str(input_shape));
  }
  Rng rng(seed);
  Trigger t;
  if (o.method == "badnets") {
    t = make_patch_trigger(o, input_shape, rng);
  } else if (o.method == "blended") {
    t = make_blended_trigger(o, input_shape, rng);
  } else if (o.method == "sig") {
    t = make_sig_trigger(o, input_shape);
  } else if (o.method == "wanet") {
    t = make_wanet_trigger(o, input_shape, rng);
  } else {
    fail<InvalidArgument>("attack", "", "badnets, blended, sig or wanet", "'" + o.method + "'");
  }
  t.method = o.method;
  return t;
}

at::Tensor apply_trigger(const Trigger& t, const at::Tensor& images) {
  at::Tensor x = images.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (x.size(0) == 0) return x;
  if (t.method == "wanet") return warp(x, t.grid);
  if (t.method == "sig") return x.add_(t.pattern.unsqueeze(0)).clamp_(0, 255);
  at::Tensor region = x.narrow(2, t.top, t.pattern.size(1)).narrow(3, t.left, t.pattern.size(2));
  if (t.blend >= 1.0) {
    region.copy_(t.pattern.unsqueeze(0).expand_as(region));
  } else {
    region.mul_(1.0 - t.blend).add_(t.pattern.unsqueeze(0) * t.blend);
  }
  return x;
}

nlohmann::json Trigger::describe() const {
  if (method == "badnets") {
    return {{"size", {pattern.size(1), pattern.size(2)}},
            {"top", top},
            {"left", left},
            {"blend", blend}};
  }
  nlohmann::json d = {{"method", method}};
  if (method == "blended") d["alpha"] = blend;
  if (method == "sig") d["max_abs"] = pattern.abs().max().item<double>();
  if (method == "wanet") {
    at::Tensor f = field.contiguous();
    d["field"] = std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    d["field_shape"] = {f.size(0), f.size(1), f.size(2)};
  }
  return d;
}

}  // namespace bdguard
