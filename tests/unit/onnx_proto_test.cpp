// The protobuf level of the ONNX reader (src/formats/onnx/proto.h): what read_model
// accepts and refuses, tensors in and out, attributes, writing. Models are built in C++
// (tests/onnx_builder.h); the hostile corpus is tests/hostile/onnx_corpus.h.
#include "formats/onnx/proto.h"

#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>

#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "hostile/onnx_corpus.h"
#include "onnx_builder.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using onnx_io::Attrs;
using onnx_io::Limits;
using onnx_io::read_model;

// The message of the bdguard error `f` throws ("" when it throws none), one line.
template <class E = Error, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

std::string saved(const onnx::ModelProto& m, const std::string& name = "m.onnx") {
  const std::string path = test::temp_dir() + "/" + name;
  test::save_onnx(m, path);
  return path;
}

std::vector<std::string> node_names(const onnx::ModelProto& m) {
  std::vector<std::string> names;
  for (const auto& n : m.graph().node()) names.push_back(n.name());
  return names;
}

// A valid model header (ir_version, opset) and a graph of n empty NodeProtos, written by
// hand: 2 bytes each in the file, some 150 bytes each once parsed. (Serialized messages
// concatenate into one message holding the fields of both.)
std::string empty_nodes_model(int n) {
  onnx::ModelProto header = test::onnx_model();
  header.clear_graph();
  std::string graph;
  for (int i = 0; i < n; ++i) graph += std::string("\x0a\x00", 2);  // field 1 (node), length 0
  std::string len;
  for (uint64_t v = graph.size(); v; v >>= 7) {
    len += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
  }
  return test::onnx_bytes(header) + "\x3a" + len + graph;  // field 7 (graph), length-delimited
}

// ---- read_model: what it accepts ---------------------------------------------------

TEST(OnnxRead, ValidClassifierReadsBackUnchanged) {
  const onnx::ModelProto m = test::onnx_classifier();
  const onnx::ModelProto r = read_model(saved(m));
  EXPECT_EQ(r.graph().node_size(), 5);
  EXPECT_EQ(r.graph().initializer_size(), 4);
  EXPECT_EQ(test::onnx_bytes(r), test::onnx_bytes(m));
}

TEST(OnnxRead, BuilderModelsPassTheOnnxChecker) {
  // Debian's checker runs here on models this test built itself, never on input files.
  EXPECT_NO_THROW(onnx::checker::check_model(test::onnx_classifier()));
  const std::string dir = test::temp_dir();
  test::write_onnx_corpus(dir);
  onnx::ModelProto tiny;
  std::ifstream in(dir + "/valid/tiny.onnx", std::ios::binary);
  ASSERT_TRUE(tiny.ParseFromIstream(&in));
  EXPECT_NO_THROW(onnx::checker::check_model(tiny));
  EXPECT_NO_THROW(read_model(dir + "/valid/tiny.onnx"));
}

TEST(OnnxRead, NodesComeBackInTopologicalOrder) {
  onnx::ModelProto m = test::onnx_classifier();
  auto* nodes = m.mutable_graph()->mutable_node();
  std::reverse(nodes->begin(), nodes->end());  // Gemm first, Conv last
  EXPECT_EQ(node_names(read_model(saved(m))),
            (std::vector<std::string>{"/conv1/Conv", "/relu/Relu", "/pool/GlobalAveragePool",
                                      "/Flatten", "/fc/Gemm"}));
}

TEST(OnnxRead, ReadyNodesKeepTheirFileOrder) {
  // c reads a and b; b and a are both ready at the start: b comes first in the file.
  onnx::ModelProto m = test::onnx_model();
  test::add_input(m, "x", {-1, 4});
  test::add_output(m, "c", {-1, 4});
  test::add_node(m, "Add", "c", {"a", "b"}, {"c"});
  test::add_node(m, "Relu", "b", {"x"}, {"b"});
  test::add_node(m, "Neg", "a", {"x"}, {"a"});
  EXPECT_EQ(node_names(read_model(saved(m))), (std::vector<std::string>{"b", "a", "c"}));
}

TEST(OnnxRead, GraphInputMayRepeatAnInitializerAsInIr3) {
  onnx::ModelProto m = test::onnx_classifier();
  test::add_input(m, "fc.bias", {5});
  EXPECT_EQ(read_model(saved(m)).graph().input_size(), 2);
}

TEST(OnnxRead, EmptyNamesAreOmittedOptionalInputsAndOutputs) {
  onnx::ModelProto m = test::onnx_classifier();
  m.mutable_graph()->mutable_node(1)->add_input("");   // Relu(x, "")
  m.mutable_graph()->mutable_node(1)->add_output("");  // a second output left out
  EXPECT_NO_THROW(read_model(saved(m)));
}

TEST(OnnxRead, ValueInfoIsIgnored) {
  onnx::ModelProto m = test::onnx_classifier();
  auto* v = m.mutable_graph()->add_value_info();
  v->set_name("nowhere");
  v->mutable_type()->mutable_sequence_type();
  EXPECT_NO_THROW(read_model(saved(m)));
}

// ---- read_model: what it refuses before parsing -------------------------------------

TEST(OnnxRead, FifoIsRefusedWithoutOpeningIt) {
  const std::string path = test::temp_dir() + "/pipe.onnx";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  // Opening a FIFO for reading would block this test forever.
  const std::string msg = error_of<IoError>([&] { read_model(path); });
  EXPECT_NE(msg.find(path + ": expected a regular file, found a FIFO"), std::string::npos) << msg;
}

TEST(OnnxRead, MissingFileIsAnIoErrorNamingIt) {
  const std::string path = test::temp_dir() + "/none.onnx";
  const std::string msg = error_of<IoError>([&] { read_model(path); });
  EXPECT_NE(msg.find(path + ": expected a readable file"), std::string::npos) << msg;
}

TEST(OnnxRead, FileOverMaxModelBytesIsRefusedFromItsSize) {
  const std::string path = saved(test::onnx_classifier());
  Limits limits;
  limits.max_model_bytes = 100;
  const std::string msg = error_of<LimitExceeded>([&] { read_model(path, limits); });
  EXPECT_NE(msg.find(path +
                     ": expected a model file of at most 100 bytes "
                     "(Limits::max_model_bytes), found " +
                     std::to_string(fs::file_size(path)) + " bytes"),
            std::string::npos)
      << msg;
}

TEST(OnnxRead, ManySmallElementsAreRefusedBeforeParsing) {
  // 500000 empty nodes: a 1 MB file that would parse into some 75 MB.
  const std::string path = test::temp_dir() + "/bomb.onnx";
  test::save_bytes(path, empty_nodes_model(500000));
  Limits limits;
  limits.max_parsed_bytes = 16 << 20;
  const std::string msg = error_of<LimitExceeded>([&] { read_model(path, limits); });
  EXPECT_NE(
      msg.find(path + ": expected a model that parses into at most 16777216 bytes of memory "
                      "(Limits::max_parsed_bytes), found one whose protobuf elements need more"),
      std::string::npos)
      << msg;
  // Under the default limit the same file parses, and is refused for what it is.
  const std::string found = error_of<LimitExceeded>([&] { read_model(path); });
  EXPECT_NE(found.find("graph: expected at most 100000 nodes, found 500000"), std::string::npos)
      << found;
}

TEST(OnnxRead, PackedVarintsCountAtEightBytesEach) {
  // 2^20 one-byte varints in int64_data: 1 MiB of file, 8 MiB once parsed.
  onnx::ModelProto m = test::onnx_classifier();
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name("ids");
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(1 << 20);
  for (int i = 0; i < (1 << 20); ++i) t->add_int64_data(1);
  const std::string path = saved(m);
  Limits limits;
  limits.max_parsed_bytes = 6 << 20;
  EXPECT_NE(error_of<LimitExceeded>([&] { read_model(path, limits); }).find("max_parsed_bytes"),
            std::string::npos);
  limits.max_parsed_bytes = 12 << 20;
  EXPECT_EQ(read_model(path, limits).graph().initializer(4).int64_data_size(), 1 << 20);
}

TEST(OnnxRead, NestingUpToProtobufsRecursionLimitParses) {
  // model 0 > graph 1 > input 2 > TypeProto 3 > (Sequence, TypeProto) x k > Tensor:
  // the Tensor message lies 4 + 2k deep; protobuf's parser takes up to 100.
  const auto nested = [](int k) {
    onnx::ModelProto m = test::onnx_classifier();
    onnx::TypeProto* t = m.mutable_graph()->mutable_input(0)->mutable_type();
    t->Clear();
    for (int i = 0; i < k; ++i) t = t->mutable_sequence_type()->mutable_elem_type();
    t->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    return saved(m, "nested" + std::to_string(k) + ".onnx");
  };
  // 100 deep: parsed, then refused for what it is.
  EXPECT_NE(error_of<UnsupportedLayer>([&] {
              read_model(nested(48));
            }).find("found TypeProto.sequence_type"),
            std::string::npos);
  // 102 deep: refused by the walk before protobuf's parser sees it.
  EXPECT_NE(error_of<FormatError>([&] {
              read_model(nested(49));
            }).find("expected protobuf messages nested at most 100 deep"),
            std::string::npos);
}

// ---- read_model: what it refuses after parsing --------------------------------------

TEST(OnnxRead, SelfLoopIsACycle) {
  onnx::ModelProto m = test::onnx_classifier();
  m.mutable_graph()->mutable_node(1)->set_input(0, "/relu/Relu_output_0");
  const std::string msg = error_of<FormatError>([&] { read_model(saved(m)); });
  EXPECT_NE(msg.find("node '/relu/Relu' (Relu): expected an acyclic graph, found a cycle node "
                     "'/relu/Relu' (Relu) -> node '/relu/Relu' (Relu)"),
            std::string::npos)
      << msg;
}

TEST(OnnxRead, CycleBehindTheFirstWaitingNodeIsNamed) {
  // Gemm waits on the cycle Relu <-> GlobalAveragePool but is not on it.
  onnx::ModelProto m = test::onnx_classifier();
  m.mutable_graph()->mutable_node(1)->set_input(0, "/pool/GlobalAveragePool_output_0");
  const std::string msg = error_of<FormatError>([&] { read_model(saved(m)); });
  EXPECT_NE(msg.find("expected an acyclic graph, found a cycle"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Conv"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Flatten"), std::string::npos) << msg;
}

TEST(OnnxRead, TensorAttributeWithoutItsTensorIsRefused) {
  onnx::ModelProto m = test::onnx_classifier();
  test::attr_tensor(*m.mutable_graph()->mutable_node(0), "value", at::ones({1})).clear_t();
  EXPECT_NE(error_of<FormatError>([&] { read_model(saved(m)); })
                .find("node '/conv1/Conv' (Conv) attribute 'value': expected a tensor in field "
                      "'t', found none"),
            std::string::npos);
}

TEST(OnnxRead, NamesInMessagesCannotForgeLines) {
  onnx::ModelProto m = test::onnx_classifier();
  m.mutable_graph()->mutable_node(1)->set_input(0, "x\nerror: forged");
  const std::string msg = error_of<FormatError>([&] { read_model(saved(m)); });
  EXPECT_NE(msg.find("input 'x\\x0aerror: forged'"), std::string::npos) << msg;
}

TEST(OnnxRead, DamagedFilesAreReadOrRefusedWithABdguardError) {
  // 3000 copies of the classifier with random bytes changed, a quarter also cut short
  // (fixed seed): each is read and its weights converted. Any other exception fails the
  // test, and so does a line from protobuf on stderr (the CLI prints one error line).
  const std::string good = test::onnx_bytes(test::onnx_classifier());
  const std::string path = test::temp_dir() + "/damaged.onnx";
  std::mt19937 rng(7);
  int refused = 0;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3000; ++i) {
    std::string b = good;
    for (int k = 1 + rng() % 8; k > 0; --k) b[rng() % b.size()] = static_cast<char>(rng());
    if (i % 4 == 0) b.resize(rng() % b.size());
    test::save_bytes(path, b);
    try {
      const onnx::ModelProto m = read_model(path);
      for (const onnx::TensorProto& t : m.graph().initializer()) {
        onnx_io::require_finite(onnx_io::to_tensor(t, path, "t", Limits{}.max_tensor_bytes), path,
                                "t");
      }
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_GT(refused, 1000);
}

// Every malformed file of the ONNX corpus is refused with one error line that names the
// file, the object, what was expected and what was found.
TEST(OnnxCorpus, EveryMalformedFileIsRefusedWithItsMessage) {
  const std::string dir = test::temp_dir();
  test::write_onnx_corpus(dir);
  for (const test::OnnxCase& c : test::onnx_corpus_cases()) {
    SCOPED_TRACE(c.file);
    const std::string path = dir + "/" + c.file;
    const std::string msg = error_of([&] {
      read_model(path);
      ASSERT_EQ(c.stage, test::OnnxStage::kGraph) << "read_model accepted " << c.file;
      load_model(path);
    });
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    for (const std::string& f : c.fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
}

TEST(OnnxCorpus, EveryFileHasACase) {
  const std::string dir = test::temp_dir();
  test::write_onnx_corpus(dir);
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  std::set<std::string> cases;
  for (const auto& c : test::onnx_corpus_cases()) cases.insert(c.file);
  cases.insert("valid");
  EXPECT_EQ(files, cases);
}

// ---- tensors ------------------------------------------------------------------------

TEST(OnnxTensor, RawDataOfEveryDtype) {
  const std::vector<at::Tensor> values = {
      at::tensor({1.5f, -2.f, 3.25f}),
      at::tensor({1.5, -2e300, 3.25}),
      at::tensor({1.5f, -2.f, 65504.f}).to(at::kHalf),
      at::tensor({int64_t{1} << 40, int64_t{-3}, int64_t{0}}),
      at::tensor({7, -8, INT32_MAX}, at::kInt),
      at::tensor({7, -8, INT16_MIN}, at::kShort),
      at::tensor({7, -8, 127}, at::kChar),
      at::tensor({7, 8, 255}, at::kByte),
      at::tensor({1, 0, 1}).to(at::kBool),
  };
  for (const at::Tensor& v : values) {
    const at::Tensor w = v.reshape({3, 1});
    const at::Tensor r = onnx_io::to_tensor(test::onnx_tensor("t", w), "f.onnx", "t", 1 << 20);
    EXPECT_EQ(r.scalar_type(), w.scalar_type());
    EXPECT_EQ(r.sizes(), w.sizes());
    EXPECT_TRUE(r.equal(w)) << w.scalar_type();
  }
}

TEST(OnnxTensor, TypedFieldOfEveryDtype) {
  using T = onnx::TensorProto;
  const auto make = [](int32_t type) {
    T t;
    t.set_data_type(type);
    t.add_dims(3);
    return t;
  };
  const auto read = [](const T& t) { return onnx_io::to_tensor(t, "f.onnx", "t", 1 << 20); };
  T f = make(T::FLOAT);
  for (float v : {1.5f, -2.f, 3.f}) f.add_float_data(v);
  EXPECT_TRUE(read(f).equal(at::tensor({1.5f, -2.f, 3.f})));
  T d = make(T::DOUBLE);
  for (double v : {1.5, -2e300, 3.}) d.add_double_data(v);
  EXPECT_TRUE(read(d).equal(at::tensor({1.5, -2e300, 3.})));
  T l = make(T::INT64);
  for (int64_t v : {int64_t{1} << 40, int64_t{-3}, int64_t{0}}) l.add_int64_data(v);
  EXPECT_TRUE(read(l).equal(at::tensor({int64_t{1} << 40, int64_t{-3}, int64_t{0}})));
  const std::vector<std::pair<int32_t, at::ScalarType>> narrow = {
      {T::INT32, at::kInt}, {T::INT16, at::kShort}, {T::INT8, at::kChar}, {T::UINT8, at::kByte}};
  for (const auto& [type, dtype] : narrow) {
    T t = make(type);
    for (int32_t v : {7, 0, 100}) t.add_int32_data(v);
    EXPECT_TRUE(read(t).equal(at::tensor({7, 0, 100}, dtype))) << dtype;
  }
  T b = make(T::BOOL);
  for (int32_t v : {1, 0, 1}) b.add_int32_data(v);
  EXPECT_TRUE(read(b).equal(at::tensor({1, 0, 1}).to(at::kBool)));
  // FLOAT16 in int32_data: the bit patterns of 1.0, -2.0 and 65504 (the largest half).
  T h = make(T::FLOAT16);
  for (int32_t v : {0x3C00, 0xC000, 0x7BFF}) h.add_int32_data(v);
  EXPECT_TRUE(read(h).equal(at::tensor({1.f, -2.f, 65504.f}).to(at::kHalf)));
}

TEST(OnnxTensor, ScalarAndEmptyTensors) {
  onnx::TensorProto scalar = test::onnx_tensor("s", at::tensor(2.5f).reshape({}));
  const at::Tensor s = onnx_io::to_tensor(scalar, "f.onnx", "s", 1 << 20);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 2.5f);
  onnx::TensorProto empty;
  empty.set_data_type(onnx::TensorProto::FLOAT);
  empty.add_dims(0);
  empty.add_dims(3);
  EXPECT_EQ(onnx_io::to_tensor(empty, "f.onnx", "e", 1 << 20).sizes(), at::IntArrayRef({0, 3}));
}

TEST(OnnxTensor, SizeLimitIsCheckedFromDimsBeforeAllocating) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(1000);
  const std::string msg = error_of<LimitExceeded>(
      [&] { onnx_io::to_tensor(t, "f.onnx", "initializer 'w'", /*max_bytes=*/3999); });
  EXPECT_EQ(
      msg,
      "f.onnx: initializer 'w': expected a tensor of at most 3999 bytes, found dims [1000] of "
      "FLOAT, 4000 bytes");
}

TEST(OnnxTensor, Float16PatternOutOfRangeIsRefused) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::FLOAT16);
  t.add_dims(1);
  t.add_int32_data(-1);
  EXPECT_EQ(
      error_of<FormatError>([&] { onnx_io::to_tensor(t, "f.onnx", "t", 1 << 20); }),
      "f.onnx: t: expected int32_data values in [0, 65535] for FLOAT16, found -1 at element 0");
}

TEST(OnnxTensor, SetTensorReplacesThePayloadAsRawData) {
  onnx::TensorProto t;
  t.set_name("w");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(2);
  t.add_dims(2);
  for (float v : {1.f, 2.f, 3.f, 4.f}) t.add_float_data(v);
  const at::Tensor v = at::tensor({5.f, 6.f, 7.f, 8.f}).reshape({2, 2}).t();  // not contiguous
  onnx_io::set_tensor(t, v);
  EXPECT_EQ(t.float_data_size(), 0);
  EXPECT_EQ(t.raw_data().size(), 16u);
  EXPECT_TRUE(onnx_io::to_tensor(t, "f.onnx", "w", 1 << 20).equal(v));
}

TEST(OnnxTensor, SetTensorRefusesOtherDtypeOrDims) {
  onnx::TensorProto t = test::onnx_tensor("w", at::zeros({2, 2}));
  EXPECT_EQ(error_of<InvalidArgument>([&] {
              onnx_io::set_tensor(t, at::zeros({2, 2}, at::kDouble));
            }),
            "<input>: tensor 'w': expected a value of its data_type FLOAT, found one of dtype "
            "Double");
  EXPECT_EQ(error_of<ShapeMismatch>([&] { onnx_io::set_tensor(t, at::zeros({4})); }),
            "<input>: tensor 'w': expected a value of its dims [2, 2], found one of sizes [4]");
}

TEST(OnnxTensor, RequireFiniteNamesTheFirstBadElement) {
  at::Tensor w = at::zeros({4, 5});
  w.view(-1)[17] = std::numeric_limits<float>::quiet_NaN();
  w.view(-1)[18] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(error_of<FormatError>([&] { onnx_io::require_finite(w, "f.onnx", "initializer 'w'"); }),
            "f.onnx: initializer 'w': expected finite values, found NaN at element 17");
  const at::Tensor h = at::tensor({1.f, std::numeric_limits<float>::infinity()}).to(at::kHalf);
  EXPECT_NE(error_of<FormatError>([&] {
              onnx_io::require_finite(h, "f.onnx", "h");
            }).find("found +Inf at element 1"),
            std::string::npos);
  EXPECT_NO_THROW(onnx_io::require_finite(at::ones({3}), "f.onnx", "w"));
  EXPECT_NO_THROW(onnx_io::require_finite(at::ones({3}, at::kLong), "f.onnx", "w"));
}

// ---- attributes ---------------------------------------------------------------------

TEST(OnnxAttrs, ReadsEachTypeOrTheDefault) {
  onnx::ModelProto m = test::onnx_classifier();
  onnx::NodeProto& conv = *m.mutable_graph()->mutable_node(0);
  test::attr_string(conv, "auto_pad", "NOTSET");
  test::attr_floats(conv, "scales", {0.5f, 2.f});
  test::attr_tensor(conv, "value", at::tensor({int64_t{3}}));
  const Attrs a(conv, "f.onnx");
  EXPECT_TRUE(a.has("pads"));
  EXPECT_FALSE(a.has("ceil_mode"));
  EXPECT_EQ(a.get_int("group", 7), 1);
  EXPECT_EQ(a.get_int("ceil_mode", 7), 7);
  EXPECT_EQ(a.get_ints("pads", {}), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(a.get_ints("axes", {0, 1}), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(a.get_string("auto_pad", ""), "NOTSET");
  EXPECT_EQ(a.get_floats("scales", {}), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(a.get_float("alpha", 0.25), 0.25);
  ASSERT_NE(a.get_tensor("value"), nullptr);
  EXPECT_EQ(a.get_tensor("value")->data_type(), onnx::TensorProto::INT64);
  EXPECT_EQ(a.get_tensor("weights"), nullptr);
}

TEST(OnnxAttrs, TypeMismatchNamesNodeAndAttribute) {
  const onnx::ModelProto m = test::onnx_classifier();
  const Attrs a(m.graph().node(0), "f.onnx");
  EXPECT_EQ(error_of<FormatError>([&] { a.get_int("pads", 0); }),
            "f.onnx: node '/conv1/Conv' (Conv) attribute 'pads': expected an attribute of type "
            "INT, found INTS");
}

TEST(OnnxAttrs, ListsAreLimited) {
  onnx::ModelProto m = test::onnx_classifier();
  test::attr_ints(*m.mutable_graph()->mutable_node(0), "axes", std::vector<int64_t>(65, 0));
  const Attrs a(m.graph().node(0), "f.onnx");
  EXPECT_EQ(error_of<LimitExceeded>([&] { a.get_ints("axes", {}); }),
            "f.onnx: node '/conv1/Conv' (Conv) attribute 'axes': expected at most 64 values, "
            "found 65");
  EXPECT_EQ(a.get_ints("axes", {}, /*max_size=*/65).size(), 65u);
}

TEST(OnnxAttrs, AllowOnlyRefusesAnAttributeTheCallerDoesNotImplement) {
  const onnx::ModelProto m = test::onnx_classifier();
  const Attrs a(m.graph().node(0), "f.onnx");
  EXPECT_NO_THROW(a.allow_only({"dilations", "group", "kernel_shape", "pads", "strides"}));
  EXPECT_EQ(error_of<UnsupportedLayer>([&] {
              a.allow_only({"group", "kernel_shape", "pads", "strides"});
            }),
            "f.onnx: node '/conv1/Conv' (Conv) attribute 'dilations': expected only the attributes "
            "bdguard implements for Conv (group, kernel_shape, pads, strides), found 'dilations'");
  const Attrs relu(m.graph().node(1), "f.onnx");
  EXPECT_NO_THROW(relu.allow_only({}));
}

// ---- writing ------------------------------------------------------------------------

TEST(OnnxWrite, WriteThenReadGivesTheSameBytes) {
  const std::string dir = test::temp_dir();
  const onnx::ModelProto m = test::onnx_classifier();
  onnx_io::write_model(m, dir + "/a.onnx");
  onnx_io::write_model(read_model(dir + "/a.onnx"), dir + "/b.onnx");
  const std::string a = test::read_text(dir + "/a.onnx");
  EXPECT_EQ(a, test::onnx_bytes(m));
  EXPECT_EQ(test::read_text(dir + "/b.onnx"), a);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2);
}

TEST(OnnxWrite, ReplacesAnExistingFileAtomically) {
  const std::string dir = test::temp_dir();
  test::save_bytes(dir + "/m.onnx", "old");
  onnx::ModelProto m = test::onnx_classifier();
  onnx_io::write_model(m, dir + "/m.onnx");
  EXPECT_EQ(test::read_text(dir + "/m.onnx"), test::onnx_bytes(m));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(OnnxWrite, MissingFolderIsAnIoError) {
  const std::string path = test::temp_dir() + "/no/such/m.onnx";
  EXPECT_NE(error_of<IoError>([&] {
              onnx_io::write_model(test::onnx_classifier(), path);
            }).find(path + ": expected a writable folder"),
            std::string::npos);
}

// ---- real files ---------------------------------------------------------------------

// The two PyTorch 1.13 exports of ../shared/fixtures/onnx (its README and expected.json).
TEST(OnnxFixtures, PyTorchExportsReadWithTheirOpCounts) {
  const std::string dir = std::string(BDGUARD_SHARED_DIR) + "/fixtures/onnx";
  if (!fs::exists(dir + "/expected.json")) {
    GTEST_SKIP() << dir << " is absent: real-fixture test skipped";
  }
  std::ifstream in(dir + "/expected.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  // Initializers, from the README: the ResNet's 20 folded convs have a weight and a bias
  // each, less the 3 biases shared through Identity nodes, plus fc's 2; the small CNN has
  // 2 convs x 2, 2 kept BatchNorms x 4 and fc's 2.
  const std::map<std::string, int> initializers = {{"resnet18_narrow_op13_folded.onnx", 39},
                                                   {"simple_cnn_op17_kept.onnx", 14}};
  for (const auto& [file, want] : initializers) {
    SCOPED_TRACE(file);
    const nlohmann::json& e = expected.at("models").at(file);
    const onnx::ModelProto m = read_model(dir + "/" + file);
    EXPECT_EQ(m.ir_version(), e.at("ir_version").get<int64_t>());
    EXPECT_EQ(m.opset_import(0).version(), e.at("opset").get<int64_t>());
    EXPECT_EQ(m.graph().initializer_size(), want);
    std::map<std::string, int> ops;
    for (const auto& n : m.graph().node()) ++ops[n.op_type()];
    using Counts = std::map<std::string, int>;
    EXPECT_EQ(ops, e.at("ops").get<Counts>());
    // PyTorch writes nodes in topological order: read_model keeps it.
    onnx::ModelProto original;
    std::ifstream bytes(dir + "/" + file, std::ios::binary);
    ASSERT_TRUE(original.ParseFromIstream(&bytes));
    EXPECT_EQ(test::onnx_bytes(m), test::onnx_bytes(original));
    for (const auto& t : m.graph().initializer()) {
      onnx_io::require_finite(onnx_io::to_tensor(t, file, t.name(), Limits{}.max_tensor_bytes),
                              file, t.name());
    }
  }
}

// ONNX's own node tests (Debian's libonnx-testdata): written by others, many of them
// outside what bdguard reads. read_model must never crash on one; a refusal is fine.
TEST(OnnxNodeTests, EveryModelIsReadOrRefusedWithoutCrashing) {
  const std::string dir = "/usr/share/libonnx-testdata/data/node";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " is absent (Debian's libonnx-testdata)";
  int accepted = 0, refused = 0;
  std::map<std::string, int> reasons;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string path = e.path().string() + "/model.onnx";
    if (!fs::exists(path)) continue;
    try {
      read_model(path);
      ++accepted;
    } catch (const Error& err) {
      ++refused;
      // The reason without the file and the names in it.
      const std::string msg = std::string(err.what()).substr(path.size() + 2);
      ++reasons[std::regex_replace(msg, std::regex("'[^']*'"), "'*'")];
    }
  }
  std::cout << accepted << " accepted, " << refused << " refused; reasons:\n";
  for (const auto& [reason, n] : reasons) std::cout << "  " << n << "  " << reason << "\n";
  EXPECT_GT(accepted, 0);
  EXPECT_GT(accepted + refused, 900);  // 932 in onnx 1.12
}

}  // namespace
}  // namespace bdguard
