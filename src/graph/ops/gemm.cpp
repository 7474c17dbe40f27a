// Gemm (a Linear / Dense layer) and MatMul.
#include "common.h"

namespace bdguard {

using namespace ops;

ValueInfo GemmOp::infer(const std::vector<const ValueInfo*>& in) {
  arity(in, 2, 3);
  const ValueInfo& a = need(in, 0);
  const ValueInfo& b = need(in, 1);
  require_rank(a, 2, "input A");
  require_rank(b, 2, "input B");
  require_float(a, "input A");
  if (b.dtype != a.dtype) op_fail("input B", type_name(a.dtype), type_name(b.dtype));
  const int64_t m = a.dims[a_.trans_a ? 1 : 0], k = a.dims[a_.trans_a ? 0 : 1];
  const int64_t kb = b.dims[a_.trans_b ? 1 : 0], n = b.dims[a_.trans_b ? 0 : 1];
  if (k < 0 || kb < 0 || n < 0)
    op_fail("inputs", "inner dimensions known before the model runs",
            dims_str(a.dims) + " and " + dims_str(b.dims));
  if (k != kb) {
    op_fail("input B", std::to_string(k) + " rows" + (a_.trans_b ? " (transposed)" : ""),
            dims_str(b.dims));
  }
  if (const ValueInfo* c = maybe(in, 2)) {
    Dims out = broadcast({m, n}, c->dims, "input C");
    if (out != Dims{m, n})
      op_fail("input C", "a shape that broadcasts to (M, N)", dims_str(c->dims));
  }
  return {{m, n}, a.dtype, std::nullopt};
}

at::Tensor GemmOp::forward(const std::vector<at::Tensor>& in) const {
  const at::Tensor a = a_.trans_a ? in[0].t() : in[0];
  const at::Tensor b = a_.trans_b ? in[1].t() : in[1];
  const bool has_c = in.size() > 2 && in[2].defined();
  if (has_c && a_.beta != 0) return at::addmm(in[2], a, b, a_.beta, a_.alpha);
  at::Tensor y = at::mm(a, b);
  return a_.alpha == 1.0 ? y : y * a_.alpha;
}

nlohmann::json GemmOp::attributes() const {
  return {{"alpha", a_.alpha},
          {"beta", a_.beta},
          {"transA", a_.trans_a ? 1 : 0},
          {"transB", a_.trans_b ? 1 : 0}};
}

namespace {

class MatMulOp : public Op {
 public:
  const char* type() const override { return "MatMul"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 2, 2);
    Dims a = need(in, 0).dims, b = need(in, 1).dims;
    require_float(*in[0], "input A");
    if (in[1]->dtype != in[0]->dtype)
      op_fail("input B", type_name(in[0]->dtype), type_name(in[1]->dtype));
    if (a.empty() || b.empty()) op_fail("inputs", "tensors of rank >= 1", "a scalar");
    const bool va = a.size() == 1, vb = b.size() == 1;
    if (va) a.insert(a.begin(), 1);
    if (vb) b.push_back(1);
    const int64_t k = a.back(), kb = b[b.size() - 2];
    if (k < 0 || k != kb) op_fail("input B", std::to_string(k) + " rows", dims_str(b));
    Dims batch = broadcast(Dims(a.begin(), a.end() - 2), Dims(b.begin(), b.end() - 2), "inputs");
    Dims out = batch;
    if (!va) out.push_back(a[a.size() - 2]);
    if (!vb) out.push_back(b.back());
    return {out, in[0]->dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return at::matmul(in[0], in[1]);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<MatMulOp>(*this); }
};

}  // namespace

std::unique_ptr<Op> make_matmul() { return std::make_unique<MatMulOp>(); }

}  // namespace bdguard
