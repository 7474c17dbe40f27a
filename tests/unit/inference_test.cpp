// The graph without autograd (op.h: forward_inference): a BatchNormalization or MaxPool
// that applies its neighbouring Relu in the same pass, and ops that write into dead
// inputs, give ATen's results bit for bit and never touch a value someone else holds.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "bdguard/model.h"
#include "bdguard/ops.h"

namespace bdguard {
namespace {

// Same shape and the same bytes (NaN payloads and the sign of zero included).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// Random values with NaN, infinities, -0 and exact zeros sprinkled in.
at::Tensor awkward(at::IntArrayRef sizes, int64_t seed) {
  at::manual_seed(static_cast<uint64_t>(seed));
  at::Tensor x = at::randn(sizes) * 3;
  float* p = x.data_ptr<float>();
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), -0.0f, 0.0f};
  for (int64_t i = 0; i < x.numel(); i += 37) p[i] = specials[(i / 37) % 5];
  return x;
}

struct BnParams {
  int scale, shift, mean, var;
};
BnParams add_bn_params(Model& m, int64_t c, const std::string& p) {
  at::manual_seed(3);
  return {m.add_param(p + ".scale", at::rand({c}) + 0.5), m.add_param(p + ".shift", at::randn({c})),
          m.add_param(p + ".mean", at::randn({c})), m.add_param(p + ".var", at::rand({c}) + 0.1)};
}

int add_bn(Model& m, const std::string& name, int x, const BnParams& p) {
  return m.add_op(name, std::make_unique<BatchNormOp>(1e-5), {x, p.scale, p.shift, p.mean, p.var});
}

at::Tensor aten_bn(const Model& m, const at::Tensor& x, const BnParams& p) {
  auto v = [&](int i) { return m.node(static_cast<size_t>(i)).value; };
  return at::batch_norm(x, v(p.scale), v(p.shift), v(p.mean), v(p.var), false, 0.0, 1e-5, false);
}

TEST(Inference, BatchNormAloneAndWithItsReluGiveAtensBits) {
  for (const bool channels_last : {false, true}) {
    for (const bool relu : {false, true}) {
      Model m;
      const int in = m.add_input("x", {kBatch, 19, 5, 7});
      const BnParams p = add_bn_params(m, 19, "bn");
      int y = add_bn(m, "bn", in, p);
      if (relu) y = m.add_op("relu", make_unary("Relu"), {y});
      m.set_outputs({y});
      at::Tensor x = awkward({3, 19, 5, 7}, 1);
      if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      at::Tensor want = aten_bn(m, x, p);
      if (relu) want = at::relu(want);
      at::NoGradGuard no_grad;
      EXPECT_TRUE(same_bits(m.forward(x), want))
          << "channels-last " << channels_last << " relu " << relu;
    }
  }
}

TEST(Inference, ReluBeforeMaxPoolInOneLoopGivesAtensBits) {
  struct Case {
    int64_t k, s, pad;
    bool ceil;
  };
  for (const Case c :
       {Case{2, 2, 0, false}, Case{3, 2, 1, false}, Case{3, 2, 1, true}, Case{2, 1, 0, true}}) {
    Model m;
    const int in = m.add_input("x", {kBatch, 11, 9, 8});
    Window2d w;
    w.kh = w.kw = c.k;
    w.sh = w.sw = c.s;
    w.pads = {c.pad, c.pad, c.pad, c.pad};
    w.ceil_mode = c.ceil;
    const int r = m.add_op("relu", make_unary("Relu"), {in});
    m.set_outputs({m.add_op("pool", make_max_pool(w), {r})});
    const at::Tensor x = awkward({2, 11, 9, 8}, 2).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor want =
        at::max_pool2d(at::relu(x), {c.k, c.k}, {c.s, c.s}, {c.pad, c.pad}, {1, 1}, c.ceil);
    at::NoGradGuard no_grad;
    const at::Tensor got = m.forward(x);
    EXPECT_TRUE(same_bits(got, want)) << "kernel " << c.k << " stride " << c.s << " pad " << c.pad;
    EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}

TEST(Inference, DeadValuesAreReusedButTheCallersPixelsAndWantedValuesAreNot) {
  // relu = Relu(x); sum = relu + x; out = Relu(sum): the first Relu may not write into
  // the caller's pixels, the Add may write into `sum`'s inputs only once they are dead.
  Model m;
  const int in = m.add_input("x", {kBatch, 4, 3, 3});
  const int r = m.add_op("relu", make_unary("Relu"), {in});
  const int sum = m.add_op("sum", make_binary("Add"), {r, in});
  const int out = m.add_op("out", make_unary("Relu"), {sum});
  m.set_outputs({out});
  const at::Tensor x = awkward({2, 4, 3, 3}, 3);
  const at::Tensor before = x.clone();
  at::NoGradGuard no_grad;
  const auto v = m.run(x, {r, sum, out});
  EXPECT_TRUE(same_bits(x, before));
  EXPECT_TRUE(same_bits(v[0], at::relu(before)));
  EXPECT_TRUE(same_bits(v[1], at::relu(before) + before));
  EXPECT_TRUE(same_bits(v[2], at::relu(at::relu(before) + before)));
  // A given value is the caller's too.
  const at::Tensor g = at::relu(before);
  const at::Tensor g_before = g.clone();
  m.run({}, {out}, {{r, g}, {in, before}});
  EXPECT_TRUE(same_bits(g, g_before));
}

TEST(Inference, PreActivationBlockGivesTheBitsOfTheAutogradPath) {
  // bn -> relu -> conv -> bn -> relu -> conv, + the block's input, -> relu -> max-pool:
  // without autograd every fusion and in-place op applies; with it, none does.
  Model m;
  const int in = m.add_input("x", {kBatch, 8, 10, 10});
  const int r1 =
      m.add_op("relu1", make_unary("Relu"), {add_bn(m, "bn1", in, add_bn_params(m, 8, "bn1"))});
  Window2d w;
  w.kh = w.kw = 3;
  w.pads = {1, 1, 1, 1};
  at::manual_seed(5);
  const int c1 = m.add_op("conv1", std::make_unique<ConvOp>(w, 1),
                          {r1, m.add_param("w1", at::randn({8, 8, 3, 3}) * 0.2)});
  const int r2 =
      m.add_op("relu2", make_unary("Relu"), {add_bn(m, "bn2", c1, add_bn_params(m, 8, "bn2"))});
  const int c2 = m.add_op("conv2", std::make_unique<ConvOp>(w, 1),
                          {r2, m.add_param("w2", at::randn({8, 8, 3, 3}) * 0.2)});
  const int sum = m.add_op("add", make_binary("Add"), {c2, in});
  Window2d pw;
  pw.kh = pw.kw = pw.sh = pw.sw = 2;
  m.set_outputs(
      {m.add_op("pool", make_max_pool(pw), {m.add_op("relu3", make_unary("Relu"), {sum})})});
  const at::Tensor x = at::randn({4, 8, 10, 10});
  at::Tensor plain;
  {
    at::AutoGradMode grad(true);
    plain = m.forward(x).detach();
  }
  at::NoGradGuard no_grad;
  EXPECT_TRUE(same_bits(m.forward(x), plain));
}

}  // namespace
}  // namespace bdguard
