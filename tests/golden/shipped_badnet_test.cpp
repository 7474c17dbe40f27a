// The BadNet shipped in models/ (compiled into the library): its data files regenerate
// byte for byte from Debian's Fashion-MNIST, and it meets the numbers its record states.
#include <gtest/gtest.h>

#include <filesystem>

#include "bdguard/badnets.h"
#include "bdguard/evaluate.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "test_util.h"

namespace bdguard {
namespace {

bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
}

TEST(ShippedBadNet, DataFilesRegenerateByteForByte) {
  if (!have_fashion_mnist()) GTEST_SKIP() << kFashionMnistDir << " is absent";
  ASSERT_FALSE(shipped_badnet_record().empty()) << "models/fmnist_badnet.json was not compiled in";
  const auto record = nlohmann::json::parse(shipped_badnet_record());
  AttackOptions a = attack_options_from_json(record.at("options"), "record");
  a.data = kFashionMnistDir;
  const std::string dir = test::temp_dir();
  write_attack_data(attack_data_for(a), dir);
  for (const char* f : {"valid.h5", "test.h5", "bd_valid.h5", "bd_test.h5"}) {
    EXPECT_EQ(sha256_file(dir + "/" + f), record.at("data_sha256").at(f).get<std::string>()) << f;
  }
}

TEST(ShippedBadNet, MeetsItsRecordedAccuracyAndAttackSuccessRate) {
  if (!have_fashion_mnist()) GTEST_SKIP() << kFashionMnistDir << " is absent";
  ASSERT_FALSE(shipped_badnet_h5().empty()) << "models/fmnist_badnet.h5 was not compiled in";
  const auto record = nlohmann::json::parse(shipped_badnet_record());
  AttackOptions a = attack_options_from_json(record.at("options"), "record");
  a.data = kFashionMnistDir;
  const std::string path = test::temp_dir() + "/bd_net.h5";
  write_file_atomic(path, std::string(shipped_badnet_h5()));
  EXPECT_EQ(sha256_file(path), record.at("bd_net_sha256").get<std::string>());

  Model m = load_model(path);
  AttackData d = attack_data_for(a);
  const double accuracy = match_rate(predict(m, d.test), d.test.label_vector());
  const double asr = match_rate(predict(m, d.bd_test), d.bd_test.label_vector());
  // The bar for the defaults, and the record (same data, same model: exact).
  EXPECT_GE(accuracy, 88.0);
  EXPECT_GE(asr, 99.0);
  EXPECT_NEAR(accuracy, record.at("clean_accuracy").get<double>(), 1e-9);
  EXPECT_NEAR(asr, record.at("attack_success_rate").get<double>(), 1e-9);
}

}  // namespace
}  // namespace bdguard
