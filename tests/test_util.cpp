#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bdguard::test {

std::string csaw_dir() {
  std::string dir = std::string(BDGUARD_SHARED_DIR) + "/fixtures/csaw";
  return std::filesystem::exists(dir + "/lab3_bd_weights.h5") ? dir : "";
}

// The current test's scratch path (not created).
static std::filesystem::path scratch_path() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "misc";
  return std::filesystem::temp_directory_path() /
         ("bdguard-test-" + std::to_string(getpid()) + "-" + name);
}

std::string temp_dir() {
  auto dir = scratch_path();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CliResult run_cli(const std::string& args) {
  // Beside the test's temp_dir(), which must survive: it may hold the command's inputs.
  std::string dir = scratch_path().string() + "-cli";
  std::filesystem::create_directories(dir);
  std::string out = dir + "/stdout", err = dir + "/stderr";
  std::string cmd =
      std::string(BDGUARD_CLI) + " " + args + " >" + out + " 2>" + err + " </dev/null";
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace bdguard::test
