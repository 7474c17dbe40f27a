// Safe output: atomic writes, no temporary file left behind (on error or SIGINT),
// output folders that are not overwritten without --force, inputs never written.
#include "bdguard/fileio.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "io/read_watch.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

size_t entries(const std::string& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(WriteFileAtomic, ReplacesTheWholeFileAndLeavesNoTemporary) {
  std::string dir = test::temp_dir();
  write_file_atomic(dir + "/out.txt", "first version, longer");
  write_file_atomic(dir + "/out.txt", "second");
  EXPECT_EQ(test::read_text(dir + "/out.txt"), "second");
  EXPECT_EQ(entries(dir), 1u);
}

TEST(WriteFileAtomic, OutputsGetTheUsualModeNotMkstemps0600) {
  const std::string dir = test::temp_dir();
  const mode_t mask = umask(022);
  write_file_atomic(dir + "/a.txt", "x");
  write_lab_dataset(dir + "/d.h5", at::zeros({1, 1, 2, 2}), at::zeros({1}, at::kLong));
  umask(mask);
  for (const char* name : {"/a.txt", "/d.h5"}) {
    EXPECT_EQ(fs::status(dir + name).permissions(), fs::perms::owner_read | fs::perms::owner_write |
                                                        fs::perms::group_read |
                                                        fs::perms::others_read)
        << name;
  }
}

TEST(WriteFileAtomic, MissingFolderThrowsIoErrorNamingThePath) {
  std::string dir = test::temp_dir();
  try {
    write_file_atomic(dir + "/no/such/folder/out.txt", "x");
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/no/such/folder/out.txt"), std::string::npos);
  }
  EXPECT_EQ(entries(dir), 0u);
}

TEST(TempFileGuard, RemovesTheFileWhenNotCommitted) {
  std::string dir = test::temp_dir();
  {
    TempFileGuard guard(dir + "/half.tmp");
    std::ofstream(guard.path()) << "half";
    EXPECT_TRUE(fs::exists(dir + "/half.tmp"));
  }
  EXPECT_EQ(entries(dir), 0u);
}

// A process killed by SIGINT or SIGTERM while it writes leaves no temporary file.
void expect_signal_removes_temporary(int sig) {
  std::string dir = test::temp_dir();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    install_cleanup_signal_handlers();
    TempFileGuard guard(dir + "/out.h5.tmp-123456");
    std::ofstream(guard.path()) << "half-written";
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(3);
    pause();  // "still writing" until the signal arrives
    _exit(4);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_TRUE(fs::exists(dir + "/out.h5.tmp-123456"));
  kill(child, sig);
  int status = 0;
  waitpid(child, &status, 0);
  close(ready[0]);
  close(ready[1]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "status " << status;
  EXPECT_EQ(entries(dir), 0u);
}

TEST(TempFileGuard, SigintRemovesTheTemporaryFile) { expect_signal_removes_temporary(SIGINT); }
TEST(TempFileGuard, SigtermRemovesTheTemporaryFile) { expect_signal_removes_temporary(SIGTERM); }

// A read that never returns (as HDF5 on some crafted files) ends the process after the
// limit with one error line naming the file, and removes live temporary files.
TEST(ReadWatchdog, EndsAStuckReadWithOneErrorLine) {
  std::string dir = test::temp_dir();
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(err[1], STDERR_FILENO);
    start_read_watchdog(/*seconds=*/1);
    TempFileGuard guard(dir + "/out.tmp-1");
    std::ofstream(guard.path()) << "half";
    detail::ReadScope scope("crafted.h5");
    sleep(30);  // "inside HDF5"
    _exit(4);
  }
  close(err[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  close(err[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  EXPECT_EQ(text,
            "error: crafted.h5: expected a file the HDF5 library reads within 1 s, found one it "
            "was still reading after 1 s (a crafted file can make HDF5 loop forever)\n");
  EXPECT_EQ(entries(dir), 0u);
}

TEST(ReadWatchdog, LeavesReadsThatFinishAlone) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    start_read_watchdog(/*seconds=*/1);
    for (int i = 0; i < 4; ++i) {
      detail::ReadScope scope("fine.h5");
      usleep(600 * 1000);  // each read within the limit, all of them beyond it
    }
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST(PrepareOutputDir, CreatesAMissingFolderWithParents) {
  std::string dir = test::temp_dir() + "/a/b";
  prepare_output_dir(dir, /*overwrite=*/false);
  EXPECT_TRUE(fs::is_directory(dir));
}

TEST(PrepareOutputDir, AcceptsAnEmptyFolder) {
  std::string dir = test::temp_dir();
  EXPECT_NO_THROW(prepare_output_dir(dir, /*overwrite=*/false));
}

TEST(PrepareOutputDir, RefusesANonEmptyFolderWithoutOverwrite) {
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/report.json") << "{}";
  try {
    prepare_output_dir(dir, /*overwrite=*/false);
    FAIL() << "no exception";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()), dir +
                                         ": expected a new or empty output folder (--force writes "
                                         "into a non-empty one), found a folder with 1 entries");
  }
  EXPECT_EQ(test::read_text(dir + "/report.json"), "{}");
}

TEST(PrepareOutputDir, OverwriteKeepsWhatIsThere) {
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/notes.txt") << "mine";
  EXPECT_NO_THROW(prepare_output_dir(dir, /*overwrite=*/true));
  EXPECT_EQ(test::read_text(dir + "/notes.txt"), "mine");
}

TEST(PrepareOutputDir, RefusesAFileEvenWithOverwrite) {
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/file") << "x";
  EXPECT_THROW(prepare_output_dir(dir + "/file", /*overwrite=*/true), InvalidArgument);
  EXPECT_EQ(test::read_text(dir + "/file"), "x");
}

// A two-layer model built in memory: input (4,) -> dense (2 units).
Model tiny_model() {
  nlohmann::json doc = nlohmann::json::parse(R"({"class_name": "Sequential", "config": {
    "name": "s", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 2,
    "batch_input_shape": [null, 4]}}]}})");
  Model m = keras_model_from_config(doc, "test");
  for (int i : m.parameter_nodes()) {
    Node& n = m.node(static_cast<size_t>(i));
    n.value = at::ones(n.value.sizes(), at::kFloat);
  }
  return m;
}

TEST(SaveModel, NeverWritesTheSourceFile) {
  std::string dir = test::temp_dir();
  save_model(tiny_model(), dir + "/source.h5");
  const std::string before = sha256_file(dir + "/source.h5");
  Model m = load_model(dir + "/source.h5");
  m.node(static_cast<size_t>(m.find("dense/kernel"))).value.fill_(0.5);
  save_model(m, dir + "/pruned.h5");
  EXPECT_EQ(sha256_file(dir + "/source.h5"), before);
  Model back = load_model(dir + "/pruned.h5");
  EXPECT_FLOAT_EQ(
      back.node(static_cast<size_t>(back.find("dense/kernel"))).value[0][0].item<float>(), 0.5f);
  EXPECT_EQ(entries(dir), 2u);  // no temporary file left
}

TEST(SaveModel, FailureLeavesNoTemporaryFile) {
  std::string dir = test::temp_dir();
  save_model(tiny_model(), dir + "/source.h5");
  Model m = load_model(dir + "/source.h5");
  fs::remove(dir + "/source.h5");  // the copy it patches is gone: the save must fail
  EXPECT_THROW(save_model(m, dir + "/out.h5"), IoError);
  EXPECT_EQ(entries(dir), 0u);
}

}  // namespace
}  // namespace bdguard
