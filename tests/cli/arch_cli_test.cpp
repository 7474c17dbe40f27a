// bdguard attack --arch and --format onnx, run as a user would, with the model it
// writes read back by other commands.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bdguard/badnets.h"
#include "bdguard/model_io.h"
#include "bdguard/train.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

// Two training steps on 128 images.
test::CliResult tiny_attack(const std::string& out, const std::string& flags) {
  return test::run_cli("attack badnets --out " + out + " " + flags +
                       " --max-train 128 --max-steps 2 --threads 1 --quiet");
}

TEST(CliArch, ResbnKerasModelIsReadByInspectAndEval) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  auto r = tiny_attack(dir, "--arch resbn");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto inspect = test::run_cli("inspect --model " + dir + "/bd_net.h5");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("BatchNormalization"), std::string::npos);
  EXPECT_NE(inspect.out.find("GlobalAveragePooling2D"), std::string::npos);
  auto eval = test::run_cli("eval --model " + dir + "/bd_net.h5 --clean " + dir +
                            "/data/test.h5 --poisoned " + dir + "/data/bd_test.h5 --threads 1");
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
}

TEST(CliArch, OnnxFormatWritesBdNetOnnxThatPredictsAsTheRecordSays) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  auto r = tiny_attack(dir, "--arch vgg --format onnx");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir + "/bd_net.onnx"));
  EXPECT_FALSE(fs::exists(dir + "/bd_net.h5"));
  auto record = nlohmann::json::parse(test::read_text(dir + "/attack.json"));
  EXPECT_EQ(record["model"], "bd_net.onnx");
  EXPECT_NE(record["command"].get<std::string>().find("--format onnx"), std::string::npos);
  // The ONNX file's clean accuracy on test.h5 is the one the attack measured.
  Model m = load_model(dir + "/bd_net.onnx");
  const TensorData test = read_tensor_data(LabDataset(dir + "/data/test.h5", m.input_shape()));
  EXPECT_DOUBLE_EQ(accuracy(m, test), record["clean_accuracy"].get<double>());
}

TEST(CliArch, UnknownArchIsOneErrorLine) {
  auto r = test::run_cli("attack badnets --out " + test::work_dir() + "/x --arch resnet50");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("resnet50"), std::string::npos);
}

}  // namespace
}  // namespace bdguard
