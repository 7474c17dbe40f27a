// Shape arithmetic: Shape, Gather, Cast. PyTorch exports `x.view(x.size(0), -1)` with a
// dynamic batch as Shape -> Gather -> Unsqueeze -> Concat -> Reshape; what these ops
// know at build time (ValueInfo::known) lets Reshape know its output's dims.
#include "common.h"

namespace bdguard {

using namespace ops;

namespace {

class ShapeOp : public Op {
 public:
  ShapeOp(int64_t start, int64_t end, bool has_end) : start_(start), end_(end), has_end_(has_end) {}
  const char* type() const override { return "Shape"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const Dims& d = need(in, 0).dims;
    range(static_cast<int64_t>(d.size()), b_, e_);
    std::vector<int64_t> v;
    for (int64_t i = b_; i < e_; ++i) {
      const int64_t x = d[static_cast<size_t>(i)];
      v.push_back(x == kBatch ? kBatchValue : x);
    }
    return {{static_cast<int64_t>(v.size())}, at::kLong, v};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    std::vector<int64_t> v(in[0].sizes().begin(), in[0].sizes().end());
    int64_t b = 0, e = 0;
    range(static_cast<int64_t>(v.size()), b, e);
    return at::tensor(std::vector<int64_t>(v.begin() + b, v.begin() + e), at::kLong);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<ShapeOp>(*this); }
  nlohmann::json attributes() const override {
    nlohmann::json a = {{"start", start_}};
    if (has_end_) a["end"] = end_;
    return a;
  }

 private:
  // ONNX clamps start and end to [0, rank] after adding rank to negative ones.
  void range(int64_t rank, int64_t& b, int64_t& e) const {
    auto clamp = [&](int64_t x) { return std::clamp<int64_t>(x < 0 ? x + rank : x, 0, rank); };
    b = clamp(start_);
    e = has_end_ ? clamp(end_) : rank;
    if (e < b) e = b;
  }
  int64_t start_, end_;
  bool has_end_;
  int64_t b_ = 0, e_ = 0;
};

class GatherOp : public Op {
 public:
  explicit GatherOp(int64_t axis) : axis_(axis) {}
  const char* type() const override { return "Gather"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 2, 2);
    const ValueInfo& data = need(in, 0);
    const ValueInfo& idx = need(in, 1);
    if (idx.dtype != at::kLong && idx.dtype != at::kInt)
      op_fail("input indices", "int32 or int64", type_name(idx.dtype));
    const auto rank = static_cast<int64_t>(data.dims.size());
    if (rank == 0) op_fail("input data", "a tensor of rank >= 1", "a scalar");
    axis_ = norm_axis(axis_, rank, "attribute axis");
    const auto a = static_cast<size_t>(axis_);
    Dims out(data.dims.begin(), data.dims.begin() + static_cast<std::ptrdiff_t>(a));
    out.insert(out.end(), idx.dims.begin(), idx.dims.end());
    out.insert(out.end(), data.dims.begin() + static_cast<std::ptrdiff_t>(a) + 1, data.dims.end());
    ValueInfo r{out, data.dtype, std::nullopt};
    const int64_t size = data.dims[a];
    if (idx.known && size >= 0) {
      for (int64_t i : *idx.known) {
        if (i < -size || i >= size) {
          op_fail("input indices",
                  "indices in [" + std::to_string(-size) + ", " + std::to_string(size) + ")",
                  std::to_string(i));
        }
      }
    }
    if (data.known && idx.known && rank == 1) {
      std::vector<int64_t> v;
      for (int64_t i : *idx.known)
        v.push_back((*data.known)[static_cast<size_t>(i < 0 ? i + size : i)]);
      r.known = v;
    }
    return r;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& data = in[0];
    const int64_t size = data.size(axis_);
    at::Tensor idx = in[1].to(at::kLong);
    idx = at::where(idx < 0, idx + size, idx);
    if (idx.numel() > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= size)) {
      throw ShapeMismatch("input indices: expected indices in [" + std::to_string(-size) + ", " +
                          std::to_string(size) + ")");
    }
    at::Tensor flat = data.index_select(axis_, idx.flatten());
    std::vector<int64_t> shape(data.sizes().begin(), data.sizes().begin() + axis_);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), data.sizes().begin() + axis_ + 1, data.sizes().end());
    return flat.reshape(shape);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<GatherOp>(*this); }
  nlohmann::json attributes() const override { return {{"axis", axis_}}; }

 private:
  int64_t axis_;
};

class CastOp : public Op {
 public:
  explicit CastOp(at::ScalarType to) : to_(to) {}
  const char* type() const override { return "Cast"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    ValueInfo r{x.dims, to_, std::nullopt};
    // Known values stay known where the cast keeps them (an int32 cast truncates).
    auto fits = [&](int64_t v) {
      return v == kBatchValue || to_ == at::kLong || (v >= INT32_MIN && v <= INT32_MAX);
    };
    if (x.known && (to_ == at::kLong || to_ == at::kInt) &&
        std::all_of(x.known->begin(), x.known->end(), fits)) {
      r.known = x.known;
    }
    return r;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override { return in[0].to(to_); }
  std::unique_ptr<Op> clone() const override { return std::make_unique<CastOp>(*this); }

 private:
  at::ScalarType to_;
};

}  // namespace

std::unique_ptr<Op> make_shape(int64_t start, int64_t end, bool has_end) {
  return std::make_unique<ShapeOp>(start, end, has_end);
}
std::unique_ptr<Op> make_gather(int64_t axis) { return std::make_unique<GatherOp>(axis); }
std::unique_ptr<Op> make_cast(at::ScalarType to) { return std::make_unique<CastOp>(to); }

}  // namespace bdguard
