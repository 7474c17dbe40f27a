#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace bdguard::test {

std::string csaw_dir() {
  std::string dir = std::string(BDGUARD_SHARED_DIR) + "/fixtures/csaw";
  return std::filesystem::exists(dir + "/lab3_bd_weights.h5") ? dir : "";
}

std::string tiny_dir(const std::string& which) {
  std::string dir = std::string(BDGUARD_TINY_DIR) + "/" + which;
  return std::filesystem::exists(dir + "/bd_net.h5") ? dir : "";
}

namespace {

// Removes the folders temp_dir() made once the process's tests are done, unless a
// test failed or BDGUARD_TEST_KEEP is set (the files are then kept to look at: the
// plots the plot tests draw, say).
class TempCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Failed() || std::getenv("BDGUARD_TEST_KEEP")) return;
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
  std::vector<std::filesystem::path> dirs;
};

TempCleanup* const kCleanup =
    static_cast<TempCleanup*>(::testing::AddGlobalTestEnvironment(new TempCleanup));

}  // namespace

static std::string test_dir_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "misc";
  return (std::filesystem::temp_directory_path() /
          ("bdguard-test-" + std::to_string(getpid()) + "-" + name))
      .string();
}

std::string temp_dir() {
  // Created empty on the first call of each test; later calls return the same folder.
  static std::set<std::string> made;
  std::string dir = test_dir_name();
  if (made.insert(dir).second) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    kCleanup->dirs.push_back(dir);
  }
  return dir;
}

std::string work_dir() {
  const std::string dir = temp_dir() + "-work";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

bool fashion_mnist_installed() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CliResult run_cli(const std::string& args, int timeout_seconds) {
  // A folder of its own, apart from the test's files.
  std::string tmpl = (std::filesystem::temp_directory_path() / "bdguard-cli-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return {};
  const std::string& dir = tmpl;
  std::string out = dir + "/stdout", err = dir + "/stderr";
  const std::string timeout =
      timeout_seconds > 0 ? "timeout -s KILL " + std::to_string(timeout_seconds) + " " : "";
  std::string cmd = timeout + BDGUARD_CLI + " " + args + " >" + out + " 2>" + err + " </dev/null";
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace bdguard::test
