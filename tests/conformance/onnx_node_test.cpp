// The ONNX project's own conformance suite (Debian's libonnx-testdata: node tests, and
// the PyTorch-converted and -operator tests), run through bdguard's reader and graph.
//
// Every test whose operators bdguard implements must pass, except the few listed in
// kSkipped below with the reason (a feature of a supported op that bdguard refuses on
// purpose). Tests that use other operators are skipped naming them. Each data set's
// input_K.pb / output_K.pb (serialized TensorProtos, matched to the graph's inputs and
// outputs by position) are compared with ONNX's own tolerances: rtol 1e-3, atol 1e-7;
// integer and boolean outputs exactly. Inputs that are not float (shapes, axes, indices,
// integer data) are given to the graph as constants, as exporters write them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "bdguard/error.h"
#include "formats/onnx/graph_io.h"
#include "formats/onnx/op_table.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

const char* kRoot = "/usr/share/libonnx-testdata/data";

// Tests of supported operators that exercise a feature bdguard refuses, and why.
const std::map<std::string, std::string>& skipped() {
  static const std::map<std::string, std::string> s = {
      {"test_batchnorm_epsilon_training_mode",
       "training-mode BatchNormalization (inference form only)"},
      {"test_batchnorm_example_training_mode",
       "training-mode BatchNormalization (inference form only)"},
      {"test_dropout_default_mask", "Dropout's mask output (inference form only)"},
      {"test_dropout_default_mask_ratio", "Dropout's mask output (inference form only)"},
      {"test_cast_BFLOAT16_to_FLOAT", "bfloat16 tensors"},
      {"test_cast_FLOAT_to_BFLOAT16", "bfloat16 tensors"},
      {"test_cast_FLOAT_to_STRING", "string tensors"},
      {"test_cast_STRING_to_FLOAT", "string tensors"},
      {"test_maxpool_with_argmax_2d_precomputed_pads", "MaxPool's Indices output"},
      {"test_maxpool_with_argmax_2d_precomputed_strides", "MaxPool's Indices output"},
      {"test_identity_opt", "optional types"},
      {"test_identity_sequence", "sequence types"},
      {"test_castlike_BFLOAT16_to_FLOAT_expanded", "bfloat16 tensors"},
      {"test_castlike_FLOAT_to_BFLOAT16_expanded", "bfloat16 tensors"},
      {"test_castlike_FLOAT_to_STRING_expanded", "string tensors"},
      {"test_castlike_STRING_to_FLOAT_expanded", "string tensors"},
      {"test_averagepool_1d_default", "1-D pooling (bdguard's models take 2-D images)"},
      {"test_maxpool_1d_default", "1-D pooling (bdguard's models take 2-D images)"},
      {"test_MaxPool1d_stride_padding_dilation", "1-D pooling (bdguard's models take 2-D images)"},
      {"test_averagepool_3d_default", "3-D pooling (bdguard's models take 2-D images)"},
      {"test_maxpool_3d_default", "3-D pooling (bdguard's models take 2-D images)"},
      {"test_edge_pad", "Pad mode 'edge' (constant padding only)"},
      {"test_reflect_pad", "Pad mode 'reflect' (constant padding only)"},
      {"test_training_dropout", "training-mode Dropout (the identity at inference)"},
      {"test_training_dropout_default", "training-mode Dropout (the identity at inference)"},
      {"test_training_dropout_default_mask", "training-mode Dropout (the identity at inference)"},
      {"test_training_dropout_mask", "training-mode Dropout (the identity at inference)"},
      {"test_training_dropout_zero_ratio_mask",
       "training-mode Dropout (the identity at inference)"},
  };
  return s;
}

struct Case {
  std::string suite, name;  // "node", "test_conv_with_strides_padding"
  std::string dir;
};

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    const fs::path root = fs::path(kRoot) / suite;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (fs::exists(e.path() / "model.onnx")) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back({suite, n, (root / n).string()});
  }
  if (out.empty()) out.push_back({"absent", "absent", ""});
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

onnx::TensorProto read_pb(const std::string& path) {
  onnx::TensorProto t;
  if (!t.ParseFromString(read_bytes(path))) throw std::runtime_error("cannot parse " + path);
  return t;
}

// The data sets of a test: test_data_set_K/{input,output}_J.pb in order.
struct DataSet {
  std::vector<onnx::TensorProto> inputs, outputs;
};
std::vector<DataSet> data_sets(const std::string& dir) {
  std::vector<DataSet> out;
  for (int k = 0;; ++k) {
    const fs::path d = fs::path(dir) / ("test_data_set_" + std::to_string(k));
    if (!fs::is_directory(d)) break;
    DataSet s;
    for (int j = 0; fs::exists(d / ("input_" + std::to_string(j) + ".pb")); ++j) {
      s.inputs.push_back(read_pb((d / ("input_" + std::to_string(j) + ".pb")).string()));
    }
    for (int j = 0; fs::exists(d / ("output_" + std::to_string(j) + ".pb")); ++j) {
      s.outputs.push_back(read_pb((d / ("output_" + std::to_string(j) + ".pb")).string()));
    }
    out.push_back(std::move(s));
  }
  return out;
}

class OnnxConformance : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxConformance, MatchesOnnxOutputs) {
  const Case& c = GetParam();
  if (c.dir.empty()) GTEST_SKIP() << kRoot << " is absent (Debian's libonnx-testdata): skipped";
  if (auto s = skipped().find(c.name); s != skipped().end()) GTEST_SKIP() << s->second;
  const std::string file = c.dir + "/model.onnx";
  onnx::ModelProto proto;
  try {
    proto = onnx_io::read_model(file);
  } catch (const Error& e) {
    GTEST_SKIP() << "refused by the reader: " << e.what();
  }
  // Operators bdguard does not implement: skipped, naming them.
  const auto known = onnx_io::supported_op_types();
  std::set<std::string> missing;
  for (const auto& n : proto.graph().node()) {
    if (std::find(known.begin(), known.end(), n.op_type()) == known.end())
      missing.insert(n.op_type());
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    GTEST_SKIP() << "uses operators bdguard does not implement: " << list;
  }
  std::set<std::string> init;
  for (const auto& t : proto.graph().initializer()) init.insert(t.name());
  std::vector<std::string> inputs;
  for (const auto& in : proto.graph().input()) {
    if (!init.count(in.name())) inputs.push_back(in.name());
  }
  for (const DataSet& ds : data_sets(c.dir)) {
    ASSERT_EQ(ds.inputs.size(), inputs.size()) << "inputs of the data set";
    // Non-float inputs become initializers (constants) of their test values.
    onnx::ModelProto p = proto;
    std::vector<std::pair<std::string, const onnx::TensorProto*>> fed;
    {
      auto* g = p.mutable_graph();
      google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> kept;
      for (size_t i = 0; i < inputs.size(); ++i) {
        const onnx::TensorProto& t = ds.inputs[i];
        const bool is_float = t.data_type() == onnx::TensorProto::FLOAT ||
                              t.data_type() == onnx::TensorProto::DOUBLE ||
                              t.data_type() == onnx::TensorProto::FLOAT16;
        if (is_float) {
          fed.push_back({inputs[i], &t});
          continue;
        }
        onnx::TensorProto* c = g->add_initializer();
        *c = t;
        c->set_name(inputs[i]);
      }
      for (const auto& in : g->input()) {
        bool keep = init.count(in.name()) > 0;
        for (const auto& f : fed) keep |= f.first == in.name();
        if (keep) *kept.Add() = in;
      }
      *g->mutable_input() = kept;
    }
    onnx_io::ReadOptions ro;
    ro.batch_input = false;
    Model m;
    try {
      m = onnx_io::read_graph(p, file, ro);
    } catch (const UnsupportedOp& e) {
      FAIL() << "a test of supported operators was refused: " << e.what();
    }
    std::map<int, at::Tensor> given;
    for (const auto& [name, t] : fed) {
      const int node = m.find(name);
      ASSERT_GE(node, 0) << name;
      given[node] = onnx_io::to_tensor(*t, file, name, int64_t{1} << 32);
    }
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> got = m.run(at::Tensor(), m.outputs(), given);
    ASSERT_EQ(got.size(), ds.outputs.size());
    for (size_t k = 0; k < got.size(); ++k) {
      at::Tensor want = onnx_io::to_tensor(ds.outputs[k], file, "output", int64_t{1} << 32);
      at::Tensor have = got[k].contiguous();
      ASSERT_EQ(have.sizes(), want.sizes()) << "output " << k;
      ASSERT_EQ(have.scalar_type(), want.scalar_type()) << "output " << k;
      if (at::isFloatingType(want.scalar_type())) {
        at::Tensor a = have.to(at::kDouble), b = want.to(at::kDouble);
        EXPECT_TRUE(at::allclose(a, b, /*rtol=*/1e-3, /*atol=*/1e-7, /*equal_nan=*/true))
            << "output " << k << ": max |difference| " << (a - b).abs().max().item<double>();
      } else {
        EXPECT_TRUE(at::equal(have, want)) << "output " << k;
      }
    }
  }
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.suite << "/" << c.name; }

std::string test_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.suite + "_" + info.param.name;
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(LibOnnxTestdata, OnnxConformance, ::testing::ValuesIn(all_cases()),
                         test_name);

}  // namespace
}  // namespace bdguard
