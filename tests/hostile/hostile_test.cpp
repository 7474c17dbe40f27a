// bdguard on hostile inputs: every malformed file of the corpus that make_corpus writes
// (tests/hostile/make_corpus.cpp, the ONNX part in onnx_corpus.h) is refused the same
// way: exit code 1, exactly one `error:` line on stderr that names the file and says
// what was expected and what was found, nothing on stdout, and no file created or
// changed beside the inputs. FIFOs and devices given as any input are refused at once.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bdguard/fileio.h"
#include "hostile/onnx_corpus.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

const std::string kCorpus = BDGUARD_HOSTILE_CORPUS;

// How each kind of input is given to bdguard: {f} is the corpus file, {v} the folder
// of valid files the corpus is derived from, {o} an output folder that must not be
// created.
constexpr const char* kInspect = "inspect --model {f}";
constexpr const char* kArchFrom = "inspect --model {v}/tiny_weights.h5 --arch-from {f}";
constexpr const char* kEval = "eval --model {v}/tiny.h5 --clean {f}";
constexpr const char* kPredict = "predict --model {v}/tiny.h5 {f}";
// A model given to the commands that go on to read data and run it.
constexpr const char* kEvalModel = "eval --model {f} --clean {v}/data.h5";
constexpr const char* kPruneModel =
    "prune --model {f} --clean {v}/data.h5 --poisoned {v}/data.h5 --out {o}";

struct Case {
  std::string name;                    // test name
  std::string file;                    // the corpus file, which the error line must name
  std::string command;                 // bdguard arguments
  std::vector<std::string> fragments;  // text the error line must contain
  const char* read_timeout = nullptr;  // $BDGUARD_READ_TIMEOUT for this run
};

// "onnx_nan_weight.onnx" -> "OnnxNanWeight"
std::string camel_case(const std::string& file) {
  std::string out;
  bool upper = true;
  for (char c : file.substr(0, file.rfind('.'))) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      upper = true;
    } else {
      out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
  }
  return out;
}

// The ONNX corpus (onnx_corpus.h) through `bdguard inspect`, and a few of its files
// through eval and prune as well. The folder case is not a file: the CLI refuses it as
// a usage error (OnnxCorpus.FolderIsAUsageError).
std::vector<Case> onnx_cases() {
  const std::set<std::string> also_run = {"onnx_truncated.onnx", "onnx_external_data.onnx",
                                          "onnx_nan_weight.onnx", "onnx_unsupported_op.onnx",
                                          "onnx_reshape_static_batch.onnx"};
  std::vector<Case> out;
  for (const test::OnnxCase& c : test::onnx_corpus_cases()) {
    if (c.file == "onnx_directory.onnx") continue;
    out.push_back({camel_case(c.file), c.file, kInspect, c.fragments});
    if (also_run.count(c.file)) {
      out.push_back({camel_case(c.file) + "Eval", c.file, kEvalModel, c.fragments});
      out.push_back({camel_case(c.file) + "Prune", c.file, kPruneModel, c.fragments});
    }
  }
  return out;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = [] {
    std::vector<Case> keras = {
        // Files that are not what they claim to be.
        {"ModelTruncated",
         "model_truncated.h5",
         kInspect,
         {"expected a readable HDF5 file", "truncated file"}},
        {"ModelTruncatedInSuperblock",
         "model_truncated_superblock.h5",
         kInspect,
         {"expected a readable HDF5 file", "found a damaged or truncated one"}},
        {"ModelRandomBytes",
         "model_random.h5",
         kInspect,
         {"expected a Keras .h5 (HDF5) or ONNX model file", "found no HDF5 signature"}},
        {"ModelRandomBytesAfterSignature",
         "model_random_after_signature.h5",
         kInspect,
         {"expected a readable HDF5 file", "superblock"}},
        // HDF5 1.10 itself fails on these (bugs in its global heap decoder): the strings
        // are read in a child process, whose hang or crash becomes an error.
        {"Hdf5HeapLoop",
         "model_hdf5_heap_loop.h5",
         kInspect,
         {"/@model_config", "expected a string attribute the HDF5 library reads within 3 s",
          "found one it was still reading after 3 s"},
         "3"},
        {"Hdf5HeapOverflow",
         "model_hdf5_heap_overflow.h5",
         kInspect,
         {"/@model_config", "expected a string attribute the HDF5 library can read", "found one"}},
        {"ModelEmpty",
         "model_empty.h5",
         kInspect,
         {"expected a Keras .h5 (HDF5) or ONNX model", "found an empty file"}},
        {"ModelIsJsonText",
         "model_text.h5",
         kInspect,
         {"found no HDF5 signature and no ONNX protobuf"}},
        // model_config: classes and graph.
        {"LambdaLayer",
         "model_lambda.h5",
         kInspect,
         {"layer 'pool'", "found a Lambda layer", "never executes code"}},
        {"LambdaLayerInSequential",
         "model_sequential_lambda.h5",
         kInspect,
         {"layer 'pool'", "found a Lambda layer"}},
        {"UnknownLayerClass",
         "model_unknown_class.h5",
         kInspect,
         {"layer 'pool'", "expected one of", "found class 'MyCustomLayer'"}},
        {"Cycle",
         "model_cycle.h5",
         kInspect,
         {"layer 'conv'", "expected an acyclic graph", "found a cycle"}},
        {"DanglingInbound",
         "model_dangling_inbound.h5",
         kInspect,
         {"layer 'pool' inbound_nodes", "expected the name of a layer",
          "found 'conv_that_is_not_there'"}},
        {"DuplicateLayerNames",
         "model_duplicate_names.h5",
         kInspect,
         {"expected unique layer names", "found 'conv' twice"}},
        {"UnknownOutputLayer",
         "model_bad_output_layer.h5",
         kInspect,
         {"output_layers", "found 'softmax_out'"}},
        {"LayerNameWithPath",
         "model_layer_name_path.h5",
         kInspect,
         {"layers[2].name", "expected a name without '/'", "found '../../etc'"}},
        {"Keras3Nodes",
         "model_keras3_nodes.h5",
         kInspect,
         {"layer 'pool' inbound_nodes", "found a Keras 3 node"}},
        {"TopLevelArray",
         "model_top_level_array.h5",
         kInspect,
         {"model_config: top level", "found another document"}},
        // model_config: JSON itself.
        {"ConfigNotJson",
         "model_config_not_json.h5",
         kInspect,
         {"model_config", "expected valid JSON", "parse error"}},
        {"ConfigWithNul", "model_config_nul.h5", kInspect, {"expected valid JSON"}},
        {"ConfigNestedTooDeep",
         "model_deep_json.h5",
         kInspect,
         {"expected JSON nested at most 64 deep", "found deeper nesting"}},
        {"ConfigTooLarge",
         "model_huge_json.h5",
         kInspect,
         {"/@model_config", "expected a string of at most 16777216 bytes", "found 17826822 bytes"}},
        {"ConfigNotAString",
         "weights_model_config_int.h5",
         kInspect,
         {"/@model_config", "expected a string attribute", "found a non-string attribute"}},
        // model_config: sizes.
        {"InputZeroDim",
         "model_input_zero_dim.h5",
         kInspect,
         {"layer 'input' batch_input_shape", "expected dimensions in [1, 1048576]",
          "found [null,0,8,3]"}},
        {"InputNegativeDim",
         "model_input_negative_dim.h5",
         kInspect,
         {"batch_input_shape", "found [null,8,-8,3]"}},
        {"InputDimsOverflow",
         "model_input_overflow_dims.h5",
         kInspect,
         {"batch_input_shape", "expected at most 2^28 elements per image",
          "found [null,1048576,1048576,3]"}},
        {"InputDimUint64",
         "model_input_uint64_dim.h5",
         kInspect,
         {"batch_input_shape", "found [null,18446744073709551615,8,3]"}},
        {"InputDimFraction",
         "model_input_float_dim.h5",
         kInspect,
         {"batch_input_shape", "found [null,8.5,8,3]"}},
        {"FiltersZero",
         "model_filters_zero.h5",
         kInspect,
         {"layer 'conv' (Conv2D) filters", "expected a value in [1, 65536]", "found 0"}},
        {"FiltersNegative",
         "model_filters_negative.h5",
         kInspect,
         {"layer 'conv' (Conv2D) filters", "found -4"}},
        {"FiltersHuge",
         "model_filters_huge.h5",
         kInspect,
         {"layer 'conv' (Conv2D) filters", "found 1099511627776"}},
        {"FiltersUint64",
         "model_filters_uint64.h5",
         kInspect,
         {"layer 'conv' (Conv2D) filters", "expected an integer", "found 18446744073709551615"}},
        {"UnitsZero",
         "model_units_zero.h5",
         kInspect,
         {"layer 'dense' (Dense) units", "expected a value in [1, 16777216]", "found 0"}},
        {"UnitsHuge",
         "model_units_huge.h5",
         kInspect,
         {"layer 'dense' (Dense) units", "found 4611686018427387904"}},
        {"UnitsString",
         "model_units_string.h5",
         kInspect,
         {"layer 'dense' (Dense) units", "expected an integer", "found \"5\""}},
        {"KernelSizeZero",
         "model_kernel_zero.h5",
         kInspect,
         {"layer 'conv' (Conv2D) kernel_size", "expected values in [1, 4096]", "found [0,3]"}},
        {"KernelSizeNegative",
         "model_kernel_negative.h5",
         kInspect,
         {"kernel_size", "found [3,-3]"}},
        {"KernelLargerThanInput",
         "model_kernel_larger_than_input.h5",
         kInspect,
         {"layer 'conv' (Conv2D)", "expected an input of at least 9 pixels", "found 8"}},
        {"StridesZero",
         "model_strides_zero.h5",
         kInspect,
         {"layer 'conv' (Conv2D) strides", "found [0,0]"}},
        {"PoolSizeHuge",
         "model_pool_huge_padding_same.h5",
         kInspect,
         {"layer 'pool' (MaxPooling2D) pool_size", "found [100000,100000]"}},
        // Weights.
        {"WeightShapeMismatch",
         "weights_shape_mismatch.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected (3, 3, 3, 4) for Conv2D 'conv' kernel",
          "found (3, 3, 3, 5)"}},
        {"MissingLayerGroup",
         "weights_missing_layer.h5",
         kInspect,
         {"/model_weights/dense", "expected the weights of layer 'dense' (Dense)",
          "found no such layer in the file"}},
        {"LayerGroupIsADataset",
         "weights_layer_is_dataset.h5",
         kInspect,
         {"/model_weights/dense", "found no such layer in the file"}},
        {"MissingWeightDataset",
         "weights_missing_dataset.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected a dataset", "found no dataset"}},
        {"MissingLayerNames",
         "weights_missing_layer_names.h5",
         kInspect,
         {"/model_weights@layer_names", "found no such attribute"}},
        {"Int32Weights",
         "weights_int32.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected float16, float32 or float64",
          "found int32"}},
        {"StringWeights",
         "weights_string.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "found string"}},
        {"NanWeight",
         "weights_nan.h5",
         kInspect,
         {"/model_weights/dense/dense/kernel:0", "expected finite weights in layer 'dense' (Dense)",
          "found NaN at element 17"}},
        {"InfWeight",
         "weights_inf.h5",
         kInspect,
         {"/model_weights/conv/conv/bias:0", "expected finite weights in layer 'conv' (Conv2D)",
          "found -Inf at element 2"}},
        {"WeightOfRank9",
         "weights_rank9.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected a simple dataspace of rank <= 8",
          "found rank 9"}},
        {"TooManyWeightNames",
         "weights_too_many_names.h5",
         kInspect,
         {"/model_weights/conv@weight_names", "expected at most 64 strings", "found 72"}},
        {"WeightNameEscapesGroup",
         "weights_name_escapes.h5",
         kInspect,
         {"/model_weights/conv@weight_names", "expected relative weight names",
          "found '../../dense/dense/kernel:0'"}},
        {"HugeAttribute",
         "weights_huge_attribute.h5",
         kInspect,
         {"/model_weights/conv@weight_names", "expected a string of at most 4096 bytes",
          "found 1048576 bytes"}},
        {"HugeUnwrittenWeight",
         "weights_huge_dense.h5",
         kInspect,
         {"/model_weights/dense/dense/kernel:0", "expected at most 2147483648 bytes",
          "found (1048576, 1048576) = 4398046511104 bytes"}},
        {"WeightOverMaxTensorBytes",
         "valid/tiny.h5",
         std::string(kInspect) + " --max-tensor-bytes 100",
         {"/model_weights/conv/conv/kernel:0", "expected at most 100 bytes",
          "found (3, 3, 3, 4) = 432 bytes"}},
        // HDF5 features that reach outside the file.
        {"ExternalLink",
         "weights_external_link.h5",
         kInspect,
         {"/model_weights/conv", "expected a hard link", "found an external link"}},
        {"SoftLink",
         "weights_soft_link.h5",
         kInspect,
         {"/model_weights/conv/conv", "expected a hard link", "found a soft link"}},
        {"ExternalRawStorage",
         "weights_external_storage.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected a dataset stored in the file",
          "found external raw storage"}},
        {"VirtualDataset",
         "weights_virtual_dataset.h5",
         kInspect,
         {"/model_weights/conv/conv/kernel:0", "expected a dataset stored in the file",
          "found a virtual dataset"}},
        // Weights-only files and --arch-from.
        {"WeightsOnlyWithoutArch",
         "valid/tiny_weights.h5",
         kInspect,
         {"/@model_config", "--arch", "found a weights-only file"}},
        {"WeightsOnlyWithWrongArch",
         "valid/tiny_weights.h5",
         std::string(kInspect) + " --arch deepid",
         {"/conv_1", "expected the weights of layer 'conv_1' (Conv2D)", "found no such layer"}},
        {"ArchFromDeepJson", "arch_deep.json", kArchFrom, {"expected JSON nested at most 64 deep"}},
        {"ArchFromHugeJson",
         "arch_huge.json",
         kArchFrom,
         {"expected at most 16 MiB of JSON", "found 17826822 bytes"}},
        {"ArchFromRandomBytes",
         "arch_random.json",
         kArchFrom,
         {"expected valid JSON", "parse error"}},
        {"ArchFromWeightsOnlyFile",
         "arch_weights_only.h5",
         kArchFrom,
         {"/@model_config", "expected a full Keras model", "found a weights-only file"}},
        // Data files.
        {"DataTruncated",
         "data_truncated.h5",
         kEval,
         {"expected a readable HDF5 file", "truncated"}},
        // HDF5 1.10 copies from a NULL pointer in its local-heap reader on this file (found
        // by fuzz_data); the structure walk in a child process turns that into an error.
        {"Hdf5LocalHeapCrash",
         "data_hdf5_local_heap_crash.h5",
         kEval,
         // (a signal; in the ASan build, ASan's report and exit code 1)
         {"expected a file structure the HDF5 library can read", "found one"}},
        {"DataRandomBytes", "data_random.h5", kEval, {"found no HDF5 signature"}},
        {"DataRank2", "data_rank2.h5", kEval, {"data", "expected rank 4", "found rank 2 (4, 192)"}},
        {"DataScalar", "data_scalar.h5", kEval, {"data", "found rank 0"}},
        {"DataZeroImages",
         "data_zero_images.h5",
         kEval,
         {"data", "expected at least one image", "found (0, 3, 8, 8)"}},
        {"DataZeroHeight",
         "data_zero_height.h5",
         kEval,
         {"data", "expected (N, 3, 8, 8) or (N, 8, 8, 3)", "found (4, 3, 0, 8)"}},
        {"DataWrongImageSize", "data_wrong_image_size.h5", kEval, {"data", "found (4, 3, 9, 8)"}},
        {"DataInt64Pixels",
         "data_int64_pixels.h5",
         kEval,
         {"data", "expected float16/32/64 or uint8 pixels", "found int64"}},
        {"DataStringPixels", "data_string_pixels.h5", kEval, {"data", "found string"}},
        {"DataNanPixel",
         "data_nan_pixel.h5",
         kEval,
         {"data rows 0..3", "expected finite pixel values", "found NaN or Inf"}},
        {"LabelOutOfRange",
         "data_label_out_of_range.h5",
         kEval,
         {"label[2]", "expected a class in [0, 5)", "found 5"}},
        {"LabelNegative",
         "data_label_negative.h5",
         kEval,
         {"label[1]", "expected a class in [0, 5)", "found -1"}},
        {"LabelFraction", "data_label_fraction.h5", kEval, {"label[2]", "found 2.5"}},
        {"LabelNan", "data_label_nan.h5", kEval, {"label[3]", "found NaN"}},
        {"LabelString",
         "data_label_string.h5",
         kEval,
         {"label", "expected integer or float labels", "found string"}},
        {"LabelCountMismatch",
         "data_label_count_mismatch.h5",
         kEval,
         {"label", "expected (4,) to match data", "found (3,)"}},
        {"NoLabelDataset", "data_no_label.h5", kEval, {"/label", "found no dataset"}},
        {"NoDataDataset", "data_no_data.h5", kEval, {"/data", "found no dataset"}},
        {"HugeUnwrittenDataSet",
         "data_huge_count.h5",
         kEval,
         {"label", "expected at most 2147483648 bytes", "found 549755813888 labels"}},
        {"DataChunkOverMaxTensorBytes",
         "data_huge_chunk.h5",
         std::string(kEval) + " --max-tensor-bytes 1000000",
         {"data", "expected chunks of at most 1000000 bytes", "found 50331648-byte chunks"}},
        {"DataBatchOverMaxTensorBytes",
         "valid/data.h5",
         std::string(kEval) + " --max-tensor-bytes 1000",
         {"data", "expected a batch of at most 1000 bytes", "found 3072 bytes"}},
        {"DataExternalRawStorage",
         "data_external_storage.h5",
         kEval,
         {"/data", "found external raw storage"}},
        // Images.
        {"ImageTruncated", "img_truncated.png", kPredict, {"expected a decodable image"}},
        {"ImageHugeHeader",
         "img_huge_header.png",
         kPredict,
         {"PNG header", "expected an image of 1x1 to 16384x16384 pixels", "found 100000x100000"}},
        {"ImageZeroWidth", "img_zero_width.png", kPredict, {"PNG header", "found 0x8"}},
        {"ImageWrongSize",
         "img_wrong_size.png",
         kPredict,
         {"image size", "expected 8x8 (the model's input)", "found 10x10"}},
        {"ImageRandomBytes",
         "img_random.png",
         kPredict,
         {"expected a PNG, JPEG, BMP, GIF, TGA or PNM image"}},
        {"ImageEmpty", "img_empty.png", kPredict, {"expected a PNG, JPEG"}},
        // Size limits on whole model files, before any parser sees them.
        {"KerasModelOverMaxModelBytes",
         "valid/tiny.h5",
         std::string(kInspect) + " --max-model-bytes 1000",
         {"expected a model file of at most 1000 bytes (--max-model-bytes)", "found 1"}},
        {"OnnxModelOverMaxModelBytes",
         "valid/tiny.onnx",
         std::string(kInspect) + " --max-model-bytes 1000",
         {"expected a model file of at most 1000 bytes (--max-model-bytes)", "found 2"}},
        {"OnnxWeightOverMaxTensorBytes",
         "valid/tiny.onnx",
         std::string(kInspect) + " --max-tensor-bytes 100",
         {"initializer 'conv.weight': expected a tensor of at most 100 bytes",
          "found dims [4, 3, 3, 3] of FLOAT, 432 bytes"}},
    };
    std::vector<Case> onnx = onnx_cases();
    keras.insert(keras.end(), onnx.begin(), onnx.end());
    return keras;
  }();
  return all;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// Every file under the corpus with its size and content hash.
std::map<std::string, std::string> snapshot() {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(kCorpus)) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), kCorpus).string();
    // Hashing the large files on every test would dominate the run; size and mtime tell.
    out[rel] = e.file_size() > (1 << 20)
                   ? std::to_string(e.file_size()) + "@" +
                         std::to_string(e.last_write_time().time_since_epoch().count())
                   : sha256_file(e.path().string());
  }
  return out;
}

// ctest lists each case by its name; print only that.
void PrintTo(const Case& c, std::ostream* os) { *os << c.file; }

class Hostile : public ::testing::TestWithParam<Case> {};

TEST_P(Hostile, RefusedWithOneErrorLineAndNothingWritten) {
  const Case& c = GetParam();
  const std::string file = kCorpus + "/" + c.file;
  ASSERT_TRUE(fs::exists(file)) << file << " is missing: make_corpus and this test disagree";
  const std::string out_dir = test::temp_dir() + "/out";
  const std::string args = replace_all(
      replace_all(replace_all(c.command, "{f}", file), "{v}", kCorpus + "/valid"), "{o}", out_dir);
  auto before = snapshot();

  if (c.read_timeout) setenv("BDGUARD_READ_TIMEOUT", c.read_timeout, 1);
  auto r = test::run_cli(args);
  unsetenv("BDGUARD_READ_TIMEOUT");

  EXPECT_EQ(r.exit_code, 1) << "bdguard " << args << "\nstderr: " << r.err;
  EXPECT_EQ(r.out, "") << "nothing may reach stdout";
  // Exactly one line, the error, naming the file first.
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line on stderr:\n" << r.err;
  EXPECT_EQ(r.err.rfind("error: " + file + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(": expected "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(", found "), std::string::npos) << r.err;
  for (const auto& f : c.fragments)
    EXPECT_NE(r.err.find(f), std::string::npos) << f << "\n" << r.err;
  // Inputs unchanged, nothing new (no output, no temporary file) beside them.
  EXPECT_EQ(snapshot(), before);
  EXPECT_FALSE(fs::exists(out_dir)) << "an output folder was created";
}

INSTANTIATE_TEST_SUITE_P(Corpus, Hostile, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// The malformed files differ from these valid ones only in what each case breaks, so
// each refusal above is due to that change.
TEST(HostileCorpus, ValidFilesAreAccepted) {
  const std::string v = kCorpus + "/valid";
  EXPECT_EQ(test::run_cli("inspect --model " + v + "/tiny.h5").exit_code, 0);
  EXPECT_EQ(test::run_cli("inspect --model " + v + "/tiny_weights.h5 --arch-from " + v +
                          "/tiny_arch.json")
                .exit_code,
            0);
  EXPECT_EQ(test::run_cli("eval --model " + v + "/tiny.h5 --clean " + v + "/data.h5").exit_code, 0);
  EXPECT_EQ(test::run_cli("predict --model " + v + "/tiny.h5 " + v + "/img.png").exit_code, 0);
  // The ONNX model takes the same data and images.
  EXPECT_EQ(test::run_cli("inspect --model " + v + "/tiny.onnx").exit_code, 0);
  EXPECT_EQ(test::run_cli("eval --model " + v + "/tiny.onnx --clean " + v + "/data.h5").exit_code,
            0);
  EXPECT_EQ(
      test::run_cli("prune --model " + v + "/tiny.onnx --clean " + v + "/data.h5 --poisoned " + v +
                    "/data.h5 --out " + test::temp_dir() + "/pruned")
          .exit_code,
      0);
  const test::CliResult p = test::run_cli("predict --model " + v + "/tiny.onnx " + v + "/img.png");
  EXPECT_EQ(p.exit_code, 0) << p.err;
  // Initializers that are also graph inputs are read as the initializers.
  const test::CliResult q =
      test::run_cli("predict --model " + v + "/tiny_initializers_as_inputs.onnx " + v + "/img.png");
  EXPECT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out, p.out);
}

// A folder is refused by the command line's own check (CLI11's ExistingFile), as a
// usage error: exit code 2, one line.
TEST(HostileCorpus, FolderAsModelIsAUsageError) {
  const std::string dir = kCorpus + "/onnx_directory.onnx";
  ASSERT_TRUE(fs::is_directory(dir));
  const test::CliResult r = test::run_cli("inspect --model " + dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "error: --model: File is actually a directory: " + dir + " (see bdguard --help)\n");
}

// ---- FIFOs and devices ---------------------------------------------------------------
// Opening a FIFO for reading blocks until a writer comes; /dev/zero never ends. Given
// as any input, each must be refused at once, before it is opened: {s} is the special
// file, {v} the valid files, {o} an output folder that must not be created.

enum class Special { kFifo, kDevZero };

struct SpecialCase {
  const char* name;
  const char* command;
};

const SpecialCase kSpecialCases[] = {
    {"Model", "inspect --model {s}"},
    {"ArchFrom", "inspect --model {v}/tiny_weights.h5 --arch-from {s}"},
    {"KerasEvalClean", "eval --model {v}/tiny.h5 --clean {s}"},
    {"OnnxEvalClean", "eval --model {v}/tiny.onnx --clean {s}"},
    {"OnnxEvalPoisoned", "eval --model {v}/tiny.onnx --clean {v}/data.h5 --poisoned {s}"},
    {"KerasPredict", "predict --model {v}/tiny.h5 {s}"},
    {"OnnxPredict", "predict --model {v}/tiny.onnx {s}"},
    {"KerasPrunePoisoned",
     "prune --model {v}/tiny.h5 --clean {v}/data.h5 --poisoned {s} --out {o}"},
    {"OnnxPrunePoisoned",
     "prune --model {v}/tiny.onnx --clean {v}/data.h5 --poisoned {s} --out {o}"},
    {"RunConfig", "run --config {s}"},
    {"OnnxDetectClean", "detect --model {v}/tiny.onnx --clean {s} --out {o}"},
    {"OnnxStripEvalClean",
     "strip eval --model {v}/tiny.onnx --clean {s} --test {v}/data.h5 --poisoned-test "
     "{v}/data.h5 --out {o}"},
    {"KerasDefendClean", "defend finetune --model {v}/tiny.h5 --clean {s} --out {o}/m.h5"},
    {"OnnxCompareValid",
     "compare --model {v}/tiny.onnx --valid {s} --poisoned-valid {v}/data.h5 --test {v}/data.h5 "
     "--poisoned-test {v}/data.h5 --out {o}"},
};

void PrintTo(const SpecialCase& c, std::ostream* os) { *os << c.command; }
void PrintTo(Special s, std::ostream* os) { *os << (s == Special::kFifo ? "FIFO" : "/dev/zero"); }

class SpecialFile : public ::testing::TestWithParam<std::tuple<Special, SpecialCase>> {};

TEST_P(SpecialFile, RefusedAtOnce) {
  const auto& [kind, c] = GetParam();
  std::string path = "/dev/zero";
  std::string found = "a character device";
  if (kind == Special::kFifo) {
    path = test::temp_dir() + "/fifo";
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    found = "a FIFO";
  }
  const std::string out_dir = test::temp_dir() + "/out";
  const std::string args = replace_all(
      replace_all(replace_all(c.command, "{s}", path), "{v}", kCorpus + "/valid"), "{o}", out_dir);
  // Killed after 60 s (exit code 137) if it blocks; a refusal takes well under a second.
  const test::CliResult r = test::run_cli(args, /*timeout_seconds=*/60);
  EXPECT_EQ(r.exit_code, 1) << "bdguard " << args << "\nstderr: " << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: " + path + ": expected a regular file, found " + found + "\n");
  EXPECT_FALSE(fs::exists(out_dir));
}

INSTANTIATE_TEST_SUITE_P(Inputs, SpecialFile,
                         ::testing::Combine(::testing::Values(Special::kFifo, Special::kDevZero),
                                            ::testing::ValuesIn(kSpecialCases)),
                         [](const ::testing::TestParamInfo<std::tuple<Special, SpecialCase>>& i) {
                           return std::string(std::get<0>(i.param) == Special::kFifo ? "Fifo"
                                                                                     : "DevZero") +
                                  std::get<1>(i.param).name;
                         });

TEST(HostileCorpus, EveryCorpusFileHasACase) {
  std::set<std::string> covered;
  for (const auto& c : cases()) covered.insert(c.file);
  int files = 0;
  for (const auto& e : fs::directory_iterator(kCorpus)) {
    if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
    ++files;
    EXPECT_TRUE(covered.count(e.path().filename().string())) << e.path() << " has no test case";
  }
  EXPECT_GE(files, 40);
  EXPECT_GE(cases().size(), 40u);
}

}  // namespace
}  // namespace bdguard
