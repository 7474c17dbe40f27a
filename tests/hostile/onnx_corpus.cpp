#include "hostile/onnx_corpus.h"

#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>

#include "formats/onnx/proto.h"
#include "onnx_builder.h"

namespace bdguard::test {
namespace {

namespace fs = std::filesystem;
using onnx::ModelProto;
using onnx::TensorProto;

ModelProto tiny() {
  ModelProto m = onnx_model(13);
  add_input(m, "input", {-1, 3, 8, 8});
  add_output(m, "output", {-1, 5});
  add_initializer(m, "conv.weight", test_values({4, 3, 3, 3}));
  add_initializer(m, "conv.bias", test_values({4}, 1));
  add_initializer(m, "fc.weight", test_values({5, 64}, 2));
  add_initializer(m, "fc.bias", test_values({5}, 3));
  onnx::NodeProto& conv = add_node(m, "Conv", "/conv/Conv", {"input", "conv.weight", "conv.bias"},
                                   {"/conv/Conv_output_0"});
  attr_ints(conv, "dilations", {1, 1});
  attr_int(conv, "group", 1);
  attr_ints(conv, "kernel_shape", {3, 3});
  attr_ints(conv, "pads", {1, 1, 1, 1});
  attr_ints(conv, "strides", {1, 1});
  add_node(m, "Relu", "/relu/Relu", {"/conv/Conv_output_0"}, {"/relu/Relu_output_0"});
  onnx::NodeProto& pool =
      add_node(m, "MaxPool", "/pool/MaxPool", {"/relu/Relu_output_0"}, {"/pool/MaxPool_output_0"});
  attr_int(pool, "ceil_mode", 0);
  attr_ints(pool, "kernel_shape", {2, 2});
  attr_ints(pool, "pads", {0, 0, 0, 0});
  attr_ints(pool, "strides", {2, 2});
  attr_int(add_node(m, "Flatten", "/Flatten", {"/pool/MaxPool_output_0"}, {"/Flatten_output_0"}),
           "axis", 1);
  onnx::NodeProto& fc =
      add_node(m, "Gemm", "/fc/Gemm", {"/Flatten_output_0", "fc.weight", "fc.bias"}, {"output"});
  attr_float(fc, "alpha", 1);
  attr_float(fc, "beta", 1);
  attr_int(fc, "transB", 1);
  return m;
}

onnx::NodeProto& node(ModelProto& m, const std::string& name) {
  for (auto& n : *m.mutable_graph()->mutable_node()) {
    if (n.name() == name) return n;
  }
  throw std::logic_error("tiny.onnx has no node " + name);
}

TensorProto& initializer(ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() == name) return t;
  }
  throw std::logic_error("tiny.onnx has no initializer " + name);
}

onnx::AttributeProto& attribute(onnx::NodeProto& n, const std::string& name) {
  for (auto& a : *n.mutable_attribute()) {
    if (a.name() == name) return a;
  }
  throw std::logic_error("no attribute " + name);
}

// conv.bias ([4] float32, raw_data) without its payload.
TensorProto& bare_bias(ModelProto& m) {
  TensorProto& t = initializer(m, "conv.bias");
  t.clear_raw_data();
  return t;
}

onnx::TensorShapeProto::Dimension& input_dim(ModelProto& m, int i) {
  return *m.mutable_graph()
              ->mutable_input(0)
              ->mutable_type()
              ->mutable_tensor_type()
              ->mutable_shape()
              ->mutable_dim(i);
}

// A node `op_type` between /conv/Conv and /relu/Relu: it reads the Conv's output and
// `more`, and Relu reads its first output.
onnx::NodeProto& insert_after_conv(ModelProto& m, const std::string& op_type,
                                   const std::string& name, const std::vector<std::string>& more) {
  std::vector<std::string> inputs{"/conv/Conv_output_0"};
  inputs.insert(inputs.end(), more.begin(), more.end());
  const std::string out = name.substr(0, name.rfind('/') + 1) + op_type + "_output_0";
  node(m, "/relu/Relu").set_input(0, out);
  return add_node(m, op_type, name, inputs, {out});
}

// BatchNormalization (inference form, attribute 0 is training_mode 0) after the Conv.
onnx::NodeProto& add_bn_after_conv(ModelProto& m) {
  add_initializer(m, "bn.weight", at::ones({4}));
  add_initializer(m, "bn.bias", at::zeros({4}));
  add_initializer(m, "bn.running_mean", at::zeros({4}));
  add_initializer(m, "bn.running_var", at::ones({4}));
  onnx::NodeProto& bn =
      insert_after_conv(m, "BatchNormalization", "/bn/BatchNormalization",
                        {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"});
  attr_int(bn, "training_mode", 0);
  attr_float(bn, "epsilon", 1e-5f);
  return bn;
}

// /Flatten replaced by /Reshape to the value `shape`.
void flatten_to_reshape(ModelProto& m, const std::string& shape) {
  onnx::NodeProto& n = node(m, "/Flatten");
  n.set_op_type("Reshape");
  n.set_name("/Reshape");
  n.clear_attribute();
  n.add_input(shape);
}

using Write = std::function<void(const std::string& path)>;

// tiny.onnx changed by `change`.
Write tiny_with(std::function<void(ModelProto&)> change) {
  return [change](const std::string& path) {
    ModelProto m = tiny();
    change(m);
    save_onnx(m, path);
  };
}

Write bytes(std::function<std::string()> make) {
  return [make](const std::string& path) { save_bytes(path, make()); };
}

struct Entry {
  OnnxCase c;
  Write write;
};

const std::vector<Entry>& entries() {
  using S = OnnxStage;
  static const std::vector<Entry> all = {
      // The file and its wire format.
      {{"onnx_directory.onnx", S::kReader, {"expected a regular file, found a folder"}},
       [](const std::string& path) { fs::create_directory(path); }},
      // (The CLI refuses it earlier, as neither format: "found an empty file" too.)
      {{"onnx_empty.onnx", S::kReader, {"found an empty file"}},
       bytes([] { return std::string(); })},
      {{"onnx_truncated.onnx",
        S::kReader,
        {"expected a serialized ONNX ModelProto",
         "found damaged or truncated protobuf data at byte"}},
       bytes([] {
         const std::string b = onnx_bytes(tiny());
         return b.substr(0, b.size() / 2);
       })},
      {{"onnx_random.onnx",
        S::kReader,
        {"expected a serialized ONNX ModelProto", "found damaged or truncated protobuf data"}},
       // After ir_version 7, so that it is read as ONNX (model_file_format looks at the
       // first field).
       bytes([] {
         std::mt19937 rng(1);
         std::string s(4096, '\0');
         for (auto& c : s) c = static_cast<char>(rng() & 0xff);
         return "\x08\x07" + s;
       })},
      {{"onnx_deep_nesting.onnx",
        S::kReader,
        {"expected protobuf messages nested at most 100 deep", "found deeper nesting"}},
       tiny_with([](ModelProto& m) {
         onnx::TypeProto* t = m.mutable_graph()->mutable_input(0)->mutable_type();
         t->Clear();
         for (int i = 0; i < 150; ++i) t = t->mutable_sequence_type()->mutable_elem_type();
         t->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
       })},
      // The model.
      {{"onnx_no_graph.onnx", S::kReader, {"model: expected a graph, found none"}},
       tiny_with([](ModelProto& m) { m.clear_graph(); })},
      {{"onnx_ir_version_2.onnx", S::kReader, {"ir_version: expected 3..10, found 2"}},
       tiny_with([](ModelProto& m) { m.set_ir_version(2); })},
      {{"onnx_opset6.onnx", S::kReader, {"opset_import: expected opset 7..17, found opset 6"}},
       tiny_with([](ModelProto& m) { m.mutable_opset_import(0)->set_version(6); })},
      {{"onnx_opset99.onnx", S::kReader, {"opset_import: expected opset 7..17, found opset 99"}},
       tiny_with([](ModelProto& m) { m.mutable_opset_import(0)->set_version(99); })},
      {{"onnx_opset_twice.onnx",
        S::kReader,
        {"opset_import: expected one entry for the default domain, found two (versions 13 and "
         "11)"}},
       tiny_with([](ModelProto& m) {
         auto* o = m.add_opset_import();
         o->set_domain("ai.onnx");
         o->set_version(11);
       })},
      {{"onnx_opset_missing.onnx",
        S::kReader,
        {"opset_import: expected one entry for the default domain, found none"}},
       tiny_with([](ModelProto& m) { m.clear_opset_import(); })},
      {{"onnx_opset_custom_domain.onnx",
        S::kReader,
        {"opset_import: expected only the default domain", "found domain 'com.example'"}},
       tiny_with([](ModelProto& m) {
         auto* o = m.add_opset_import();
         o->set_domain("com.example");
         o->set_version(1);
       })},
      {{"onnx_function.onnx",
        S::kReader,
        {"function 'MyFn': expected no model-local functions, found one defined in the model"}},
       tiny_with([](ModelProto& m) {
         auto* f = m.add_functions();
         f->set_name("MyFn");
         f->set_domain("com.example");
       })},
      {{"onnx_training_info.onnx",
        S::kReader,
        {"training_info: expected none (an inference model), found 1 entry"}},
       tiny_with([](ModelProto& m) { m.add_training_info(); })},
      {{"onnx_sparse_initializer.onnx",
        S::kReader,
        {"sparse_initializer 'sparse.w': expected dense initializers only, found a sparse one"}},
       tiny_with([](ModelProto& m) {
         auto* s = m.mutable_graph()->add_sparse_initializer();
         *s->mutable_values() = onnx_tensor("sparse.w", at::ones({1}));
         *s->mutable_indices() = onnx_tensor("sparse.i", at::zeros({1}, at::kLong));
         s->add_dims(4);
       })},
      {{"onnx_too_many_nodes.onnx",
        S::kReader,
        {"graph: expected at most 100000 nodes, found 100005"}},
       tiny_with([](ModelProto& m) {
         for (int i = 0; i < onnx_io::kMaxNodes; ++i) {
           add_node(m, "Identity", "", {"input"}, {"x" + std::to_string(i)});
         }
       })},
      {{"onnx_too_many_initializers.onnx",
        S::kReader,
        {"graph: expected at most 100000 initializers, found 100004"}},
       tiny_with([](ModelProto& m) {
         for (int i = 0; i < onnx_io::kMaxInitializers; ++i) {
           TensorProto* t = m.mutable_graph()->add_initializer();  // empty: dims [0]
           t->set_name("w" + std::to_string(i));
           t->set_data_type(TensorProto::FLOAT);
           t->add_dims(0);
         }
       })},
      // Nodes and attributes.
      {{"onnx_custom_domain.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu): expected an op of the default domain ('' or 'ai.onnx'), found "
         "domain 'com.example'"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_domain("com.example"); })},
      {{"onnx_no_op_type.onnx",
        S::kReader,
        {"node '/relu/Relu' (no op_type): expected an op_type, found none"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").clear_op_type(); })},
      {{"onnx_node_no_output.onnx",
        S::kReader,
        {"node '/fc/Gemm' (Gemm): expected an output, found none"}},
       tiny_with([](ModelProto& m) { node(m, "/fc/Gemm").clear_output(); })},
      // What fuzz_onnx found: an unnamed last node without its output.
      {{"onnx_unnamed_node_no_output.onnx",
        S::kReader,
        {"unnamed node (Gemm): expected an output, found none"}},
       tiny_with([](ModelProto& m) {
         node(m, "/fc/Gemm").clear_output();
         node(m, "/fc/Gemm").clear_name();
       })},
      {{"onnx_if_subgraph.onnx",
        S::kReader,
        {"node '/If' (If) attribute 'else_branch'",
         "found GRAPH (a subgraph, as If, Loop and Scan"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "cond", at::ones({}, at::kBool));
         onnx::NodeProto& n = add_node(m, "If", "/If", {"cond"}, {"/If_output_0"});
         for (const char* branch : {"else_branch", "then_branch"}) {
           auto* a = n.add_attribute();
           a->set_name(branch);
           a->set_type(onnx::AttributeProto::GRAPH);
           onnx::GraphProto* g = a->mutable_g();
           g->set_name(branch);
           auto* id = g->add_node();
           id->set_op_type("Identity");
           id->add_input("input");
           id->add_output("y");
           g->add_output()->set_name("y");
         }
       })},
      {{"onnx_sparse_tensor_attribute.onnx",
        S::kReader,
        {"node '/Constant' (Constant) attribute 'sparse_value'", "found SPARSE_TENSOR"}},
       tiny_with([](ModelProto& m) {
         auto* a = add_node(m, "Constant", "/Constant", {}, {"/Constant_output_0"}).add_attribute();
         a->set_name("sparse_value");
         a->set_type(onnx::AttributeProto::SPARSE_TENSOR);
         a->mutable_sparse_tensor()->add_dims(4);
       })},
      {{"onnx_type_proto_attribute.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'dtype'", "found TYPE_PROTO"}},
       tiny_with([](ModelProto& m) {
         auto* a = node(m, "/conv/Conv").add_attribute();
         a->set_name("dtype");
         a->set_type(onnx::AttributeProto::TYPE_PROTO);
         a->mutable_tp()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
       })},
      {{"onnx_ref_attr_name.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'group': expected a value, found a reference to the "
         "function attribute 'g'"}},
       tiny_with([](ModelProto& m) {
         attribute(node(m, "/conv/Conv"), "group").set_ref_attr_name("g");
       })},
      {{"onnx_duplicate_attribute.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'pads': expected attribute names unique in the node, "
         "found a second one"}},
       tiny_with([](ModelProto& m) {
         attr_ints(node(m, "/conv/Conv"), "pads", {0, 0, 0, 0});
       })},
      {{"onnx_attribute_smuggled_graph.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'group': expected only the field of its type INT, "
         "found also 'g'"}},
       tiny_with([](ModelProto& m) {
         attribute(node(m, "/conv/Conv"), "group").mutable_g()->set_name("smuggled");
       })},
      {{"onnx_attribute_no_type.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'group': expected an attribute type, found none"}},
       tiny_with([](ModelProto& m) { attribute(node(m, "/conv/Conv"), "group").clear_type(); })},
      {{"onnx_huge_string_attribute.onnx",
        S::kReader,
        {"node '/conv/Conv' (Conv) attribute 'auto_pad': expected a string of at most 65536 bytes, "
         "found 100000 bytes"}},
       tiny_with([](ModelProto& m) {
         attr_string(node(m, "/conv/Conv"), "auto_pad", std::string(100000, 'A'));
       })},
      {{"onnx_huge_name.onnx",
        S::kReader,
        {"(Relu): expected a name of at most 65536 bytes, found 100000 bytes"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_name(std::string(100000, 'r')); })},
      {{"onnx_constant_bad_tensor.onnx",
        S::kReader,
        {"node '/Constant' (Constant) attribute 'value': expected 8 bytes of raw_data for dims [1] "
         "of INT64, found 7"}},
       tiny_with([](ModelProto& m) {
         onnx::NodeProto& n = add_node(m, "Constant", "/Constant", {}, {"/Constant_output_0"});
         attr_tensor(n, "value", at::ones({1}, at::kLong))
             .mutable_t()
             ->mutable_raw_data()
             ->resize(7);
       })},
      // Tensors.
      {{"onnx_external_data.onnx",
        S::kReader,
        {"initializer 'conv.weight': expected the payload inside the model file",
         "found external data at location '/etc/passwd'"}},
       tiny_with([](ModelProto& m) {
         TensorProto& t = initializer(m, "conv.weight");
         t.clear_raw_data();
         t.set_data_location(TensorProto::EXTERNAL);
         auto* e = t.add_external_data();
         e->set_key("location");
         e->set_value("/etc/passwd");
       })},
      {{"onnx_segment.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected a whole tensor, found a segment"}},
       tiny_with(
           [](ModelProto& m) { initializer(m, "conv.bias").mutable_segment()->set_begin(0); })},
      {{"onnx_string_tensor.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected data_type FLOAT, DOUBLE", "found STRING"}},
       tiny_with([](ModelProto& m) {
         TensorProto& t = bare_bias(m);
         t.set_data_type(TensorProto::STRING);
         for (int i = 0; i < 4; ++i) t.add_string_data("s");
       })},
      {{"onnx_unknown_data_type.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected data_type FLOAT", "found data_type 99"}},
       tiny_with([](ModelProto& m) { initializer(m, "conv.bias").set_data_type(99); })},
      {{"onnx_negative_dim.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected dims >= 0, found dims [-4] of FLOAT"}},
       tiny_with([](ModelProto& m) { initializer(m, "conv.bias").set_dims(0, -4); })},
      {{"onnx_overflow_dims.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected a tensor of at most 2147483648 bytes",
         "found dims [1099511627776, 1099511627776] of FLOAT, over 2^63 bytes"}},
       tiny_with([](ModelProto& m) {
         TensorProto& t = bare_bias(m);
         t.set_dims(0, int64_t{1} << 40);
         t.add_dims(int64_t{1} << 40);
       })},
      // Over the size limit with no payload at all: refused from dims and type alone.
      {{"onnx_tensor_too_big.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected a tensor of at most 2147483648 bytes",
         "found dims [2147483648] of FLOAT, 8589934592 bytes"}},
       tiny_with([](ModelProto& m) { bare_bias(m).set_dims(0, int64_t{1} << 31); })},
      {{"onnx_raw_data_size.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected 16 bytes of raw_data for dims [4] of FLOAT, found 15"}},
       tiny_with(
           [](ModelProto& m) { initializer(m, "conv.bias").mutable_raw_data()->resize(15); })},
      {{"onnx_typed_data_count.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected 4 values in float_data for dims [4] of FLOAT, found "
         "3"}},
       tiny_with([](ModelProto& m) {
         TensorProto& t = bare_bias(m);
         for (int i = 0; i < 3; ++i) t.add_float_data(1);
       })},
      {{"onnx_raw_and_typed_data.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected the payload in one field, found both raw_data and "
         "float_data"}},
       tiny_with([](ModelProto& m) {
         for (int i = 0; i < 4; ++i) initializer(m, "conv.bias").add_float_data(1);
       })},
      {{"onnx_wrong_typed_field.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected the payload in raw_data or float_data for dims [4] of "
         "FLOAT, found int64_data"}},
       tiny_with([](ModelProto& m) {
         TensorProto& t = bare_bias(m);
         for (int i = 0; i < 4; ++i) t.add_int64_data(1);
       })},
      {{"onnx_no_payload.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected 16 bytes of raw_data or 4 values in float_data for "
         "dims [4] of FLOAT, found no payload"}},
       tiny_with([](ModelProto& m) { bare_bias(m); })},
      {{"onnx_int8_out_of_range.onnx",
        S::kReader,
        {"initializer 'extra.int8': expected int32_data values in [-128, 127] for INT8, found 300 "
         "at element 1"}},
       tiny_with([](ModelProto& m) {
         TensorProto* t = m.mutable_graph()->add_initializer();
         t->set_name("extra.int8");
         t->set_data_type(TensorProto::INT8);
         t->add_dims(2);
         t->add_int32_data(1);
         t->add_int32_data(300);
       })},
      {{"onnx_bool_byte.onnx",
        S::kReader,
        {"initializer 'extra.bool': expected raw_data bytes 0 or 1 for BOOL, found 2 at element "
         "0"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "extra.bool", at::ones({1}, at::kBool)).set_raw_data("\x02");
       })},
      // Names.
      {{"onnx_duplicate_initializer.onnx",
        S::kReader,
        {"initializer 'conv.bias': expected a unique name, found a second initializer of that "
         "name"}},
       tiny_with([](ModelProto& m) { add_initializer(m, "conv.bias", at::zeros({4})); })},
      {{"onnx_duplicate_input.onnx",
        S::kReader,
        {"graph input 'input': expected a unique name, found a second graph input of that name"}},
       tiny_with([](ModelProto& m) {
         add_input(m, "input", {-1, 3, 8, 8});
       })},
      {{"onnx_duplicate_node_output.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu) output '/conv/Conv_output_0': expected a unique name, found a "
         "name that node '/conv/Conv' (Conv) already defines"}},
       tiny_with(
           [](ModelProto& m) { node(m, "/relu/Relu").set_output(0, "/conv/Conv_output_0"); })},
      {{"onnx_output_shadows_initializer.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu) output 'fc.weight': expected a unique name, found a name that "
         "initializer 'fc.weight' already defines"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_output(0, "fc.weight"); })},
      {{"onnx_output_shadows_input.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu) output 'input': expected a unique name, found a name that graph "
         "input 'input' already defines"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_output(0, "input"); })},
      {{"onnx_undefined_input.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu) input 'nowhere': expected the name of a graph input, "
         "initializer or node output, found a name nothing defines"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_input(0, "nowhere"); })},
      {{"onnx_undefined_output.onnx",
        S::kReader,
        {"graph output 'nowhere': expected the name of a graph input, initializer or node output, "
         "found a name nothing defines"}},
       tiny_with([](ModelProto& m) { m.mutable_graph()->mutable_output(0)->set_name("nowhere"); })},
      {{"onnx_cycle.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu): expected an acyclic graph, found a cycle node '/relu/Relu' "
         "(Relu) -> node '/conv/Conv' (Conv) -> node '/relu/Relu' (Relu)"}},
       tiny_with([](ModelProto& m) { node(m, "/conv/Conv").set_input(0, "/relu/Relu_output_0"); })},
      // Graph inputs.
      {{"onnx_sequence_input.onnx",
        S::kReader,
        {"graph input 'input': expected a tensor type (TypeProto.tensor_type), found "
         "TypeProto.sequence_type"}},
       tiny_with([](ModelProto& m) {
         onnx::TypeProto* t = m.mutable_graph()->mutable_input(0)->mutable_type();
         t->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(
             TensorProto::FLOAT);
       })},
      {{"onnx_input_negative_dim.onnx",
        S::kReader,
        {"graph input 'input' dim 1: expected a size >= 0, found -3"}},
       tiny_with([](ModelProto& m) {
         m.mutable_graph()
             ->mutable_input(0)
             ->mutable_type()
             ->mutable_tensor_type()
             ->mutable_shape()
             ->mutable_dim(1)
             ->set_dim_value(-3);
       })},
      // Weights the reader accepts and the graph mapper refuses.
      {{"onnx_nan_weight.onnx",
        S::kGraph,
        {"initializer 'conv.weight': expected finite values, found NaN at element 17"}},
       tiny_with([](ModelProto& m) {
         at::Tensor w = test_values({4, 3, 3, 3});
         w.view(-1)[17] = std::numeric_limits<float>::quiet_NaN();
         onnx_io::set_tensor(initializer(m, "conv.weight"), w);
       })},
      {{"onnx_inf_weight.onnx",
        S::kGraph,
        {"initializer 'fc.bias': expected finite values, found -Inf at element 2"}},
       tiny_with([](ModelProto& m) {
         at::Tensor b = test_values({5}, 3);
         b[2] = -std::numeric_limits<float>::infinity();
         onnx_io::set_tensor(initializer(m, "fc.bias"), b);
       })},
      // Graphs the reader accepts and the graph mapper refuses: ops, options and shapes
      // bdguard does not implement, and graphs that are not a classifier.
      {{"onnx_unsupported_op.onnx",
        S::kGraph,
        {"node '/relu/Relu' (Einsum): expected an operator bdguard implements (",
         "found op type 'Einsum'"}},
       tiny_with([](ModelProto& m) {
         onnx::NodeProto& n = node(m, "/relu/Relu");
         n.set_op_type("Einsum");
         attr_string(n, "equation", "nchw->nchw");
       })},
      // torch.onnx.export without dynamic_axes, fed a batch: x.view(1, -1).
      {{"onnx_reshape_static_batch.onnx",
        S::kGraph,
        {"node '/Reshape' (Reshape) input shape: expected a shape that keeps the batch dimension "
         "apart (export with a dynamic batch axis), found (N, 4, 4, 4) to [1,-1]"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "shape", at::tensor(std::vector<int64_t>{1, -1}));
         flatten_to_reshape(m, "shape");
       })},
      {{"onnx_conv_channels_mismatch.onnx",
        S::kGraph,
        {"node '/conv/Conv' (Conv) input W: expected (F, 3, kh, kw) for 3 input channels, found "
         "(4, 2, 3, 3)"}},
       tiny_with([](ModelProto& m) {
         initializer(m, "conv.weight") = onnx_tensor("conv.weight", test_values({4, 2, 3, 3}));
       })},
      {{"onnx_gemm_inner_mismatch.onnx",
        S::kGraph,
        {"node '/fc/Gemm' (Gemm) input B: expected 64 rows (transposed), found (5, 63)"}},
       tiny_with([](ModelProto& m) {
         initializer(m, "fc.weight") = onnx_tensor("fc.weight", test_values({5, 63}, 2));
       })},
      {{"onnx_conv_3d_kernel.onnx",
        S::kGraph,
        {"node '/conv/Conv' (Conv) attribute 'kernel_shape': expected 2 values (2-D windows "
         "only), found 3 values"}},
       tiny_with(
           [](ModelProto& m) { attribute(node(m, "/conv/Conv"), "kernel_shape").add_ints(3); })},
      {{"onnx_maxpool_storage_order.onnx",
        S::kGraph,
        {"node '/pool/MaxPool' (MaxPool) attribute 'storage_order': expected 0 (row major), "
         "found 1"}},
       tiny_with([](ModelProto& m) { attr_int(node(m, "/pool/MaxPool"), "storage_order", 1); })},
      {{"onnx_batchnorm_training.onnx",
        S::kGraph,
        {"node '/bn/BatchNormalization' (BatchNormalization) attribute 'training_mode': expected "
         "0 (the inference form), found 1"}},
       tiny_with([](ModelProto& m) {
         m.mutable_opset_import(0)->set_version(15);  // training_mode came in opset 14
         add_bn_after_conv(m).mutable_attribute(0)->set_i(1);
       })},
      {{"onnx_pad_reflect.onnx",
        S::kGraph,
        {"node '/pad/Pad' (Pad) attribute 'mode': expected 'constant', found 'reflect'"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "pads", at::tensor(std::vector<int64_t>{0, 0, 1, 1, 0, 0, 1, 1}));
         onnx::NodeProto& pad = insert_after_conv(m, "Pad", "/pad/Pad", {"pads"});
         attr_string(pad, "mode", "reflect");
       })},
      {{"onnx_two_inputs.onnx",
        S::kGraph,
        {"graph: expected one input (the image), found 2 inputs"}},
       tiny_with([](ModelProto& m) {
         add_input(m, "input2", {-1, 4, 8, 8});
         insert_after_conv(m, "Add", "/add/Add", {"input2"});
       })},
      {{"onnx_two_outputs.onnx",
        S::kGraph,
        {"graph: expected one output (the class scores), found 2 outputs"}},
       tiny_with([](ModelProto& m) {
         add_output(m, "/relu/Relu_output_0", {-1, 4, 8, 8});
       })},
      {{"onnx_output_rank4.onnx",
        S::kGraph,
        {"output '/pool/MaxPool': expected class scores of dims (N, classes), one row per input, "
         "found (N, 4, 4, 4)"}},
       tiny_with([](ModelProto& m) {
         m.mutable_graph()->mutable_output(0)->set_name("/pool/MaxPool_output_0");
       })},
      {{"onnx_symbolic_dim.onnx",
        S::kGraph,
        {"graph input 'input' dim 2: expected a fixed size (only the first dim may be symbolic: "
         "the batch), found symbolic dim 'H'"}},
       tiny_with([](ModelProto& m) { input_dim(m, 2).set_dim_param("H"); })},
      {{"onnx_input_huge_dims.onnx",
        S::kGraph,
        {"input 'input': expected dimensions in [0, 1048576], found (N, 3, 1099511627776, "
         "1099511627776)"}},
       tiny_with([](ModelProto& m) {
         input_dim(m, 2).set_dim_value(int64_t{1} << 40);
         input_dim(m, 3).set_dim_value(int64_t{1} << 40);
       })},
      {{"onnx_dropout_mask_read.onnx",
        S::kGraph,
        {"node '/drop/Dropout' (Dropout) output 1: expected only the first output read (the "
         "inference form), found '/drop/Dropout_output_1', which the graph reads"}},
       tiny_with([](ModelProto& m) {
         onnx::NodeProto& drop = insert_after_conv(m, "Dropout", "/drop/Dropout", {});
         drop.add_output("/drop/Dropout_output_1");
         attr_int(add_node(m, "Cast", "/Cast", {"/drop/Dropout_output_1"}, {"/Cast_output_0"}),
                  "to", TensorProto::FLOAT);
         // The mask multiplies the activations: the graph reads it.
         node(m, "/relu/Relu").set_input(0, "/mul/Mul_output_0");
         add_node(m, "Mul", "/mul/Mul", {"/drop/Dropout_output_0", "/Cast_output_0"},
                  {"/mul/Mul_output_0"});
       })},
      // A shape constant of huge values: Reshape must refuse it before allocating.
      {{"onnx_reshape_huge_shape.onnx",
        S::kGraph,
        {"node '/Reshape' (Reshape) input shape: expected a shape of at most 2^62 elements, "
         "found [-1,1099511627776,1099511627776]"}},
       tiny_with([](ModelProto& m) {
         onnx::NodeProto& c = add_node(m, "Constant", "/Constant", {}, {"/Constant_output_0"});
         attr_tensor(c, "value",
                     at::tensor(std::vector<int64_t>{-1, int64_t{1} << 40, int64_t{1} << 40}));
         flatten_to_reshape(m, "/Constant_output_0");
       })},
      // A Constant whose tensor claims 2^80 elements and carries none.
      {{"onnx_constant_huge_dims.onnx",
        S::kReader,
        {"node '/Constant' (Constant) attribute 'value': expected a tensor of at most "
         "2147483648 bytes, found dims [1099511627776, 1099511627776] of INT64, over 2^63 bytes"}},
       tiny_with([](ModelProto& m) {
         onnx::NodeProto& c = add_node(m, "Constant", "/Constant", {}, {"/Constant_output_0"});
         TensorProto* t = attr_tensor(c, "value", at::ones({1}, at::kLong)).mutable_t();
         t->clear_raw_data();
         t->set_dims(0, int64_t{1} << 40);
         t->add_dims(int64_t{1} << 40);
       })},
      {{"onnx_self_loop.onnx",
        S::kReader,
        {"node '/relu/Relu' (Relu): expected an acyclic graph, found a cycle node '/relu/Relu' "
         "(Relu) -> node '/relu/Relu' (Relu)"}},
       tiny_with([](ModelProto& m) { node(m, "/relu/Relu").set_input(0, "/relu/Relu_output_0"); })},
      // Found reading the ops while fuzz_onnx ran, each checked with UBSan (the fuzz
      // build's CLI). Shape arithmetic that overflows int64 (UB in C++; ATen wraps at
      // run time): the result is not a known shape.
      {{"onnx_shape_arith_overflow.onnx",
        S::kGraph,
        {"node '/Reshape' (Reshape) input shape: expected a constant known when the model is "
         "read, found a value computed at run time"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "big", at::tensor(std::vector<int64_t>{1, int64_t{1} << 62}));
         add_initializer(m, "four", at::tensor(std::vector<int64_t>{1, 4}));
         add_node(m, "Mul", "/Mul", {"big", "four"}, {"/Mul_output_0"});
         flatten_to_reshape(m, "/Mul_output_0");
       })},
      // -2^63 is how known shapes mark the batch size; in a constant it must not pass
      // for one (it did: Reshape accepted it, then failed at run time).
      {{"onnx_shape_int64_min.onnx",
        S::kGraph,
        {"node '/Reshape' (Reshape) input shape: expected a constant known when the model is "
         "read, found a value computed at run time (or a constant holding -2^63)"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "shape", at::tensor(std::vector<int64_t>{INT64_MIN, 64}));
         flatten_to_reshape(m, "shape");
       })},
      // An int32 Cast truncates at run time but kept the int64 value as known: here the
      // known shape was [0, 64] and the computed one [0, 0] (64 (2^32 + 2^31 - 1) / that,
      // in int32), so Reshape passed and eval failed.
      {{"onnx_cast_int32_wraps.onnx",
        S::kGraph,
        {"node '/Reshape' (Reshape) input shape: expected a constant known when the model is "
         "read"}},
       tiny_with([](ModelProto& m) {
         const int64_t b = (int64_t{1} << 32) + (int64_t{1} << 31) - 1;
         add_initializer(m, "zero", at::tensor(std::vector<int64_t>{0}));
         add_initializer(m, "a", at::tensor(std::vector<int64_t>{64 * b}));
         add_initializer(m, "b", at::tensor(std::vector<int64_t>{b}));
         for (const char* x : {"a", "b"}) {
           attr_int(add_node(m, "Cast", std::string("/Cast_") + x, {x}, {std::string(x) + "32"}),
                    "to", TensorProto::INT32);
         }
         add_node(m, "Div", "/Div", {"a32", "b32"}, {"q32"});
         attr_int(add_node(m, "Cast", "/Cast_q", {"q32"}, {"q"}), "to", TensorProto::INT64);
         attr_int(add_node(m, "Concat", "/Concat", {"zero", "q"}, {"shape"}), "axis", 0);
         flatten_to_reshape(m, "shape");
       })},
      {{"onnx_pad_huge.onnx",
        S::kGraph,
        {"node '/pad/Pad' (Pad) pads: expected values in [-2^20, 2^20], found "
         "[0,0,4611686018427387904,0,0,0,4611686018427387904,0]"}},
       tiny_with([](ModelProto& m) {
         const int64_t h = int64_t{1} << 62;
         add_initializer(m, "pads", at::tensor(std::vector<int64_t>{0, 0, h, 0, 0, 0, h, 0}));
         insert_after_conv(m, "Pad", "/pad/Pad", {"pads"});
       })},
      // Cropping 10 rows of 8, then padding 10: infer said 8 rows, ATen refused.
      {{"onnx_pad_crop_too_much.onnx",
        S::kGraph,
        {"node '/pad/Pad' (Pad) pads: expected crops (negative pads) of at most the input's (N, "
         "4, 8, 8), found [0,0,-10,0,0,0,10,0]"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "pads", at::tensor(std::vector<int64_t>{0, 0, -10, 0, 0, 0, 10, 0}));
         insert_after_conv(m, "Pad", "/pad/Pad", {"pads"});
       })},
      // One image cropped off the batch, a zero image padded on: the batch size stays,
      // and every prediction belonged to the next image.
      {{"onnx_pad_batch_shift.onnx",
        S::kGraph,
        {"node '/pad/Pad' (Pad) pads: expected no padding of the batch dimension, found "
         "[-1,0,0,0,1,0,0,0]"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "pads", at::tensor(std::vector<int64_t>{-1, 0, 0, 0, 1, 0, 0, 0}));
         insert_after_conv(m, "Pad", "/pad/Pad", {"pads"});
       })},
      // IR 4 and later let a graph input share an initializer's name (a default the
      // caller may override); bdguard computes with the initializer, as ONNX Runtime does
      // when the input is not fed. Shadowing the image input leaves no input at all.
      {{"onnx_input_shadowed_by_initializer.onnx",
        S::kGraph,
        {"graph input 'input': expected an input fed at run time (the image), found an "
         "initializer of the same name, which makes it a constant"}},
       tiny_with([](ModelProto& m) {
         add_initializer(m, "input", test_values({1, 3, 8, 8}));
       })},
  };
  return all;
}

}  // namespace

void write_onnx_corpus(const std::string& dir) {
  fs::create_directories(dir + "/valid");
  save_onnx(tiny(), dir + "/valid/tiny.onnx");
  // Every initializer also a graph input: what IR 3 requires, and from IR 4 (this is
  // IR 7) a default the caller may override. bdguard computes with the initializers, as
  // ONNX Runtime does when they are not fed: the same model as tiny.onnx.
  ModelProto shadowed = tiny();
  const ModelProto original = tiny();
  for (const TensorProto& t : original.graph().initializer()) {
    add_input(shadowed, t.name(), {t.dims().begin(), t.dims().end()});
  }
  save_onnx(shadowed, dir + "/valid/tiny_initializers_as_inputs.onnx");
  for (const Entry& e : entries()) e.write(dir + "/" + e.c.file);
}

const std::vector<OnnxCase>& onnx_corpus_cases() {
  static const std::vector<OnnxCase> cases = [] {
    std::vector<OnnxCase> out;
    for (const Entry& e : entries()) out.push_back(e.c);
    return out;
  }();
  return cases;
}

}  // namespace bdguard::test
