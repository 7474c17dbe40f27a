// Helpers shared by the tests: fixture paths, temporary folders, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace bdguard::test {

// ../shared/fixtures/csaw, or "" when the shared folder is absent.
std::string csaw_dir();
// Skips the current test (with a message saying why) when the fixtures are absent.
#define BDGUARD_REQUIRE_CSAW()                                                        \
  do {                                                                                \
    if (::bdguard::test::csaw_dir().empty())                                          \
      GTEST_SKIP() << "../shared/fixtures/csaw is absent: real-fixture test skipped"; \
  } while (0)

// The tiny models tests/fixtures/make_tiny_models.sh trained for this build:
// "<build>/tiny/badnet" or ".../clean" (bd_net.h5, data/*.h5, attack.json), or "" when
// Fashion-MNIST was not installed.
std::string tiny_dir(const std::string& which);

// Neural Cleanse flags short enough for a test, long enough for the tiny BadNet (and
// for its proxy triggers in repair).
inline const std::string kFastNc = " --nc-steps 30 --nc-batches-per-step 3 --nc-eval-images 300 ";
#define BDGUARD_REQUIRE_TINY()                                                             \
  do {                                                                                     \
    if (::bdguard::test::tiny_dir("badnet").empty())                                       \
      GTEST_SKIP() << "no tiny models (Fashion-MNIST absent at build time): test skipped"; \
  } while (0)

// A folder under the system's temporary area, unique per test: empty on the first
// call of a test, the same folder on later calls.
std::string temp_dir();
// A second folder of the test's own, emptied on every call: temp_dir() + "-work"
// (run_cli() empties temp_dir() on every call).
std::string work_dir();

// Skips a test when Debian's Fashion-MNIST (dataset-fashion-mnist) is not installed.
bool fashion_mnist_installed();
#define BDGUARD_REQUIRE_FASHION_MNIST()                                            \
  do {                                                                             \
    if (!::bdguard::test::fashion_mnist_installed())                               \
      GTEST_SKIP() << "/usr/share/datasets/fashion-mnist is absent: test skipped"; \
  } while (0)

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the bdguard binary with `args` (a shell-quoted argument string). With a
// `timeout_seconds`, a run still going then is killed (exit code 137): for tests of
// what must never block.
CliResult run_cli(const std::string& args, int timeout_seconds = 0);
std::string read_text(const std::string& path);

}  // namespace bdguard::test
