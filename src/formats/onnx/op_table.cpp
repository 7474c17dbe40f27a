// The ONNX operator table: each supported op type's attributes, per opset, as a graph
// op. Anything else is refused naming the node and its op type.
#include "formats/onnx/op_table.h"

#include <ATen/ATen.h>

#include <map>

#include "bdguard/error.h"
#include "bdguard/ops.h"

namespace bdguard::onnx_io {
namespace {

using Builder = BuiltOp (*)(const NodeContext&);

[[noreturn]] void refuse(const NodeContext& c, const std::string& what, const std::string& expected,
                         const std::string& found) {
  fail<UnsupportedOp>(c.file, node_object(c.node) + (what.empty() ? "" : " " + what), expected,
                      found);
}

BuiltOp of(std::unique_ptr<Op> op) {
  BuiltOp b;
  b.op = std::move(op);
  return b;
}

AutoPad auto_pad_of(const NodeContext& c) {
  const std::string a = c.attrs.get_string("auto_pad", "NOTSET");
  if (a == "NOTSET") return AutoPad::kNotSet;
  if (a == "VALID") return AutoPad::kValid;
  if (a == "SAME_UPPER") return AutoPad::kSameUpper;
  if (a == "SAME_LOWER") return AutoPad::kSameLower;
  refuse(c, "attribute 'auto_pad'", "NOTSET, VALID, SAME_UPPER or SAME_LOWER", quote(a));
}

// kernel_shape, strides, dilations, pads of a 2-D window.
Window2d window_of(const NodeContext& c, std::vector<int64_t> kernel, bool dilations) {
  auto pair = [&](const char* name, std::vector<int64_t> fallback, int64_t lo) {
    std::vector<int64_t> v = c.attrs.get_ints(name, fallback);
    if (v.size() != 2) {
      refuse(c, std::string("attribute '") + name + "'", "2 values (2-D windows only)",
             std::to_string(v.size()) + " values");
    }
    for (int64_t x : v) {
      if (x < lo || x > 4096) {
        refuse(c, std::string("attribute '") + name + "'",
               "values in [" + std::to_string(lo) + ", 4096]", std::to_string(x));
      }
    }
    return v;
  };
  Window2d w;
  const auto k = pair("kernel_shape", kernel, 1);
  w.kh = k[0], w.kw = k[1];
  const auto s = pair("strides", {1, 1}, 1);
  w.sh = s[0], w.sw = s[1];
  if (dilations) {
    const auto d = pair("dilations", {1, 1}, 1);
    w.dh = d[0], w.dw = d[1];
  }
  w.pads = c.attrs.get_ints("pads", {0, 0, 0, 0});
  if (w.pads.size() != 4)
    refuse(c, "attribute 'pads'", "4 values (2-D)", std::to_string(w.pads.size()));
  for (int64_t p : w.pads) {
    if (p < 0 || p > 65536)
      refuse(c, "attribute 'pads'", "values in [0, 65536]", std::to_string(p));
  }
  w.auto_pad = auto_pad_of(c);
  return w;
}

BuiltOp conv(const NodeContext& c) {
  c.attrs.allow_only({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
  std::vector<int64_t> kernel{-1, -1};
  if (c.inputs.size() > 1 && c.inputs[1] && c.inputs[1]->dims.size() == 4) {
    kernel = {c.inputs[1]->dims[2], c.inputs[1]->dims[3]};  // the default: W's own
  }
  if (!c.attrs.has("kernel_shape") && kernel[0] < 0) {
    refuse(c, "", "a kernel_shape or a 4-D weight", "neither (only 2-D convolutions)");
  }
  Window2d w = window_of(c, kernel, true);
  const int64_t group = c.attrs.get_int("group", 1);
  if (group < 1 || group > 65536)
    refuse(c, "attribute 'group'", "a value in [1, 65536]", std::to_string(group));
  return of(std::make_unique<ConvOp>(w, group));
}

BuiltOp max_pool(const NodeContext& c) {
  c.attrs.allow_only(
      {"kernel_shape", "strides", "pads", "dilations", "auto_pad", "ceil_mode", "storage_order"});
  if (!c.attrs.has("kernel_shape")) refuse(c, "", "a kernel_shape", "none");
  if (c.attrs.get_int("storage_order", 0) != 0) {
    refuse(c, "attribute 'storage_order'", "0 (row major)", "1");
  }
  Window2d w = window_of(c, {}, c.opset >= 10);
  w.ceil_mode = c.attrs.get_int("ceil_mode", 0) != 0;
  return of(make_max_pool(w));
}

BuiltOp average_pool(const NodeContext& c) {
  c.attrs.allow_only(
      {"kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "count_include_pad"});
  if (!c.attrs.has("kernel_shape")) refuse(c, "", "a kernel_shape", "none");
  Window2d w = window_of(c, {}, false);
  w.ceil_mode = c.attrs.get_int("ceil_mode", 0) != 0;
  return of(make_average_pool(w, c.attrs.get_int("count_include_pad", 0) != 0));
}

BuiltOp gemm(const NodeContext& c) {
  c.attrs.allow_only({"alpha", "beta", "transA", "transB"});
  GemmAttrs a;
  a.alpha = c.attrs.get_float("alpha", 1.0);
  a.beta = c.attrs.get_float("beta", 1.0);
  a.trans_a = c.attrs.get_int("transA", 0) != 0;
  a.trans_b = c.attrs.get_int("transB", 0) != 0;
  if (!std::isfinite(a.alpha) || !std::isfinite(a.beta))
    refuse(c, "attributes alpha, beta", "finite values", "others");
  return of(std::make_unique<GemmOp>(a));
}

BuiltOp batch_norm(const NodeContext& c) {
  c.attrs.allow_only({"epsilon", "momentum", "spatial", "training_mode"});
  if (c.attrs.get_int("spatial", 1) != 1) refuse(c, "attribute 'spatial'", "1", "0");
  if (c.attrs.get_int("training_mode", 0) != 0) {
    refuse(c, "attribute 'training_mode'", "0 (the inference form)", "1");
  }
  if (c.node.output_size() > 1) {
    for (int i = 1; i < c.node.output_size(); ++i) {
      if (!c.node.output(i).empty()) {
        refuse(c, "", "one output (the inference form)",
               std::to_string(c.node.output_size()) + " outputs");
      }
    }
  }
  return of(std::make_unique<BatchNormOp>(c.attrs.get_float("epsilon", 1e-5),
                                          c.attrs.get_float("momentum", 0.9)));
}

BuiltOp softmax(const NodeContext& c, bool log) {
  c.attrs.allow_only({"axis"});
  const bool before13 = c.opset < 13;
  return of(make_softmax(c.attrs.get_int("axis", before13 ? 1 : -1), before13, log));
}

BuiltOp clip(const NodeContext& c) {
  BuiltOp b = of(make_clip());
  if (c.opset < 11) {
    c.attrs.allow_only({"min", "max"});
    const float lo = static_cast<float>(c.attrs.get_float("min", -3.4028234663852886e38));
    const float hi = static_cast<float>(c.attrs.get_float("max", 3.4028234663852886e38));
    b.extra = {{1, at::tensor(lo)}, {2, at::tensor(hi)}};
    b.keep_inputs = 1;
  } else {
    c.attrs.allow_only({});
  }
  return b;
}

BuiltOp pad(const NodeContext& c) {
  const std::string mode = c.attrs.get_string("mode", "constant");
  if (mode != "constant") refuse(c, "attribute 'mode'", "'constant'", quote(mode));
  if (c.opset < 11) {
    c.attrs.allow_only({"mode", "pads", "value"});
    return of(make_pad(c.attrs.get_ints("pads", {}), c.attrs.get_float("value", 0.0), false));
  }
  c.attrs.allow_only({"mode"});
  if (c.inputs.size() > 3)
    refuse(c, "", "at most 3 inputs (no axes)", std::to_string(c.inputs.size()));
  return of(make_pad({}, 0.0, true));
}

BuiltOp squeeze(const NodeContext& c, bool unsqueeze) {
  if (c.opset < 13) {
    c.attrs.allow_only({"axes"});
    BuiltOp b = of(make_squeeze(c.attrs.get_ints("axes", {}), false, unsqueeze));
    b.keep_inputs = 1;
    return b;
  }
  c.attrs.allow_only({});
  return of(make_squeeze({}, true, unsqueeze));
}

BuiltOp dropout(const NodeContext& c) {
  c.attrs.allow_only({"ratio", "seed", "is_test"});
  for (int i = 1; i < c.node.output_size(); ++i) {
    if (!c.node.output(i).empty()) refuse(c, "", "no mask output (the inference form)", "a mask");
  }
  BuiltOp b = of(make_identity("Dropout"));
  b.keep_inputs = 1;
  return b;
}

BuiltOp cast(const NodeContext& c) {
  c.attrs.allow_only({"to", "saturate"});
  const int64_t to = c.attrs.get_int("to", -1);
  return of(make_cast(
      scalar_type_of(static_cast<int32_t>(to), c.file, node_object(c.node) + " attribute 'to'")));
}

BuiltOp shape(const NodeContext& c) {
  c.attrs.allow_only({"start", "end"});
  return of(make_shape(c.attrs.get_int("start", 0), c.attrs.get_int("end", 0), c.attrs.has("end")));
}

BuiltOp simple(const NodeContext& c, std::unique_ptr<Op> op) {
  c.attrs.allow_only({});
  return of(std::move(op));
}

const std::map<std::string, Builder>& table() {
  static const std::map<std::string, Builder> t = {
      {"Conv", conv},
      {"BatchNormalization", batch_norm},
      {"Gemm", gemm},
      {"MatMul", [](const NodeContext& c) { return simple(c, make_matmul()); }},
      {"Relu", [](const NodeContext& c) { return simple(c, make_unary("Relu")); }},
      {"Sigmoid", [](const NodeContext& c) { return simple(c, make_unary("Sigmoid")); }},
      {"Tanh", [](const NodeContext& c) { return simple(c, make_unary("Tanh")); }},
      {"LeakyRelu",
       [](const NodeContext& c) {
         c.attrs.allow_only({"alpha"});
         return of(make_leaky_relu(c.attrs.get_float("alpha", 0.01)));
       }},
      {"Clip", clip},
      {"Softmax", [](const NodeContext& c) { return softmax(c, false); }},
      {"LogSoftmax", [](const NodeContext& c) { return softmax(c, true); }},
      {"MaxPool", max_pool},
      {"AveragePool", average_pool},
      {"GlobalAveragePool",
       [](const NodeContext& c) { return simple(c, make_global_pool(false)); }},
      {"GlobalMaxPool", [](const NodeContext& c) { return simple(c, make_global_pool(true)); }},
      {"Add", [](const NodeContext& c) { return simple(c, make_binary("Add")); }},
      {"Sub", [](const NodeContext& c) { return simple(c, make_binary("Sub")); }},
      {"Mul", [](const NodeContext& c) { return simple(c, make_binary("Mul")); }},
      {"Div", [](const NodeContext& c) { return simple(c, make_binary("Div")); }},
      {"Sum", [](const NodeContext& c) { return simple(c, make_sum()); }},
      {"Concat",
       [](const NodeContext& c) {
         c.attrs.allow_only({"axis"});
         if (!c.attrs.has("axis")) refuse(c, "", "an axis attribute", "none");
         return of(make_concat(c.attrs.get_int("axis", 0)));
       }},
      {"Flatten",
       [](const NodeContext& c) {
         c.attrs.allow_only({"axis"});
         return of(make_flatten(c.attrs.get_int("axis", 1)));
       }},
      {"Reshape",
       [](const NodeContext& c) {
         c.attrs.allow_only({"allowzero"});
         return of(make_reshape(c.attrs.get_int("allowzero", 0) != 0));
       }},
      {"Transpose",
       [](const NodeContext& c) {
         c.attrs.allow_only({"perm"});
         return of(make_transpose(c.attrs.get_ints("perm", {})));
       }},
      {"Identity", [](const NodeContext& c) { return simple(c, make_identity()); }},
      {"Dropout", dropout},
      {"Pad", pad},
      {"Squeeze", [](const NodeContext& c) { return squeeze(c, false); }},
      {"Unsqueeze", [](const NodeContext& c) { return squeeze(c, true); }},
      {"Shape", shape},
      {"Gather",
       [](const NodeContext& c) {
         c.attrs.allow_only({"axis"});
         return of(make_gather(c.attrs.get_int("axis", 0)));
       }},
      {"Cast", cast},
  };
  return t;
}

}  // namespace

at::ScalarType scalar_type_of(int32_t t, const std::string& file, const std::string& what) {
  switch (t) {
    case onnx::TensorProto::FLOAT:
      return at::kFloat;
    case onnx::TensorProto::DOUBLE:
      return at::kDouble;
    case onnx::TensorProto::FLOAT16:
      return at::kHalf;
    case onnx::TensorProto::INT64:
      return at::kLong;
    case onnx::TensorProto::INT32:
      return at::kInt;
    case onnx::TensorProto::INT16:
      return at::kShort;
    case onnx::TensorProto::INT8:
      return at::kChar;
    case onnx::TensorProto::UINT8:
      return at::kByte;
    case onnx::TensorProto::BOOL:
      return at::kBool;
    default:
      fail<UnsupportedOp>(file, what,
                          "FLOAT, DOUBLE, FLOAT16, INT64, INT32, INT16, INT8, UINT8 or BOOL",
                          data_type_name(t));
  }
}

BuiltOp build_op(const NodeContext& c) {
  auto it = table().find(c.node.op_type());
  if (it == table().end()) {
    std::string known;
    for (const auto& [name, _] : table()) known += (known.empty() ? "" : ", ") + name;
    fail<UnsupportedOp>(c.file, node_object(c.node),
                        "an operator bdguard implements (" + known + ")",
                        "op type " + quote(c.node.op_type()));
  }
  return it->second(c);
}

std::vector<std::string> supported_op_types() {
  std::vector<std::string> out;
  for (const auto& [name, _] : table()) out.push_back(name);
  out.push_back("Constant");
  return out;
}

}  // namespace bdguard::onnx_io
