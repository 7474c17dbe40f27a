// Add, Sub, Mul, Div (numpy broadcasting) and Sum.
#include "common.h"

namespace bdguard {

using namespace ops;

namespace {

enum class Binary { kAdd, kSub, kMul, kDiv };

class BinaryOp : public Op {
 public:
  explicit BinaryOp(Binary kind) : kind_(kind) {}
  const char* type() const override {
    static const char* names[] = {"Add", "Sub", "Mul", "Div"};
    return names[static_cast<int>(kind_)];
  }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 2, 2);
    const ValueInfo& a = need(in, 0);
    const ValueInfo& b = need(in, 1);
    if (a.dtype != b.dtype) op_fail("input B", type_name(a.dtype), type_name(b.dtype));
    ValueInfo out{broadcast(a.dims, b.dims, "inputs"), a.dtype, std::nullopt};
    // Shape arithmetic on known int64 values (never on the batch size).
    if (a.known && b.known && a.dtype == at::kLong && a.known->size() == b.known->size()) {
      std::vector<int64_t> v(a.known->size());
      bool ok = true;
      for (size_t i = 0; i < v.size() && ok; ++i) {
        const int64_t x = (*a.known)[i], y = (*b.known)[i];
        ok = x != kBatchValue && y != kBatchValue && !(kind_ == Binary::kDiv && y == 0) &&
             apply(x, y, v[i]) && v[i] != kBatchValue;
      }
      if (ok) out.known = v;
    }
    return out;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    switch (kind_) {
      case Binary::kAdd:
        return at::add(in[0], in[1]);
      case Binary::kSub:
        return at::sub(in[0], in[1]);
      case Binary::kMul:
        return at::mul(in[0], in[1]);
      default:
        // Integer division truncates, as ONNX (and C) do.
        if (at::isIntegralType(in[0].scalar_type(), true)) return at::div(in[0], in[1], "trunc");
        return at::div(in[0], in[1]);
    }
  }
  // Float operands of one dtype: the result goes into a dead operand of the result's
  // shape (a + b and a * b into either; a - b and a / b into a). The in-place kernels
  // are the same as the out-of-place ones, element for element.
  at::Tensor forward_inference(const std::vector<at::Tensor>& in,
                               const InferenceHints& hints) const override {
    const at::Tensor &a = in[0], &b = in[1];
    if (!at::isFloatingType(a.scalar_type()) || b.scalar_type() != a.scalar_type())
      return forward(in);
    const std::vector<int64_t> out = at::infer_size(a.sizes(), b.sizes());
    auto into = [&](size_t k) {
      const at::Tensor& t = in[k];
      return hints.may_reuse(k) && t.sizes() == at::IntArrayRef(out) &&
             t.is_non_overlapping_and_dense();
    };
    const bool commutes = kind_ == Binary::kAdd || kind_ == Binary::kMul;
    if (!into(0) && !(commutes && into(1))) return forward(in);
    at::Tensor y = into(0) ? a : b;
    const at::Tensor& other = into(0) ? b : a;
    switch (kind_) {
      case Binary::kAdd:
        return y.add_(other);
      case Binary::kMul:
        return y.mul_(other);
      case Binary::kSub:
        return y.sub_(other);
      default:
        return y.div_(other);
    }
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<BinaryOp>(*this); }

 private:
  // x op y into r; false on overflow (the value is then not known: ATen wraps at run
  // time, which no shape can mean). x, y != kBatchValue, so x / y cannot overflow.
  bool apply(int64_t x, int64_t y, int64_t& r) const {
    switch (kind_) {
      case Binary::kAdd:
        return !__builtin_add_overflow(x, y, &r);
      case Binary::kSub:
        return !__builtin_sub_overflow(x, y, &r);
      case Binary::kMul:
        return !__builtin_mul_overflow(x, y, &r);
      default:
        r = x / y;
        return true;
    }
  }
  Binary kind_;
};

class SumOp : public Op {
 public:
  const char* type() const override { return "Sum"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1 << 16);
    Dims dims = need(in, 0).dims;
    for (size_t i = 1; i < in.size(); ++i) {
      const ValueInfo& v = need(in, i);
      if (v.dtype != in[0]->dtype)
        op_fail("input " + std::to_string(i), type_name(in[0]->dtype), type_name(v.dtype));
      dims = broadcast(dims, v.dims, "inputs");
    }
    return {dims, in[0]->dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    at::Tensor y = in[0];
    for (size_t i = 1; i < in.size(); ++i) y = y + in[i];
    return y;
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<SumOp>(*this); }
};

}  // namespace

std::unique_ptr<Op> make_binary(const std::string& type) {
  if (type == "Add") return std::make_unique<BinaryOp>(Binary::kAdd);
  if (type == "Sub") return std::make_unique<BinaryOp>(Binary::kSub);
  if (type == "Mul") return std::make_unique<BinaryOp>(Binary::kMul);
  if (type == "Div") return std::make_unique<BinaryOp>(Binary::kDiv);
  throw InvalidArgument("make_binary: " + type);
}

std::unique_ptr<Op> make_sum() { return std::make_unique<SumOp>(); }

}  // namespace bdguard
