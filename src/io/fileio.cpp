#include "bdguard/fileio.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "bdguard/error.h"
#include "io/read_watch.h"

namespace bdguard {
namespace {

// Temporary files alive right now. A fixed table of C strings, because the signal
// handler may only touch async-signal-safe state; this is the one process-wide
// table the library keeps, and it exists for that handler alone.
constexpr int kMaxLive = 64;
constexpr size_t kMaxPath = 4096;
char g_live[kMaxLive][kMaxPath];
std::atomic<bool> g_used[kMaxLive];
std::mutex g_mutex;

int register_live(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxLive; ++i) {
    if (!g_used[i].load()) {
      std::memcpy(g_live[i], path.c_str(), path.size() + 1);
      g_used[i].store(true);
      return i;
    }
  }
  return -1;
}

void unregister_live(int slot) {
  if (slot >= 0) g_used[slot].store(false);
}

void remove_live_files() {
  for (int i = 0; i < kMaxLive; ++i) {
    if (g_used[i].load()) unlink(g_live[i]);
  }
}

extern "C" void on_fatal_signal(int sig) {
  remove_live_files();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// The read watchdog (start_read_watchdog): when the outermost ReadScope began (steady
// clock, ns; 0 when none is open), and the error line to print if it never ends,
// written before the start time is published.
std::atomic<int64_t> g_read_since{0};
std::atomic<int> g_read_depth{0};
std::atomic<int64_t> g_read_limit_ns{0};  // 0: watchdog not running
char g_read_error[kMaxPath + 512];

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

namespace detail {

ReadScope::ReadScope(const std::string& path) {
  if (g_read_depth.fetch_add(1) != 0) return;
  const int64_t limit = g_read_limit_ns.load();
  if (limit == 0) return;
  const std::string seconds = std::to_string(limit / 1000000000);
  const std::string line =
      "error: " +
      describe(path, "", "a file the HDF5 library reads within " + seconds + " s",
               "one it was still reading after " + seconds +
                   " s (a crafted file can make HDF5 loop forever)") +
      "\n";
  std::snprintf(g_read_error, sizeof g_read_error, "%s", line.c_str());
  g_read_since.store(steady_ns());
}

ReadScope::~ReadScope() {
  if (g_read_depth.fetch_sub(1) == 1) g_read_since.store(0);
}

ReadPause::ReadPause() { paused_ = g_read_since.exchange(0) != 0; }

ReadPause::~ReadPause() {
  if (paused_) g_read_since.store(steady_ns());
}

int64_t read_limit_ns() {
  const int64_t limit = g_read_limit_ns.load();
  return limit != 0 ? limit : static_cast<int64_t>(kDefaultReadTimeoutSeconds * 1e9);
}

}  // namespace detail

TempFileGuard::TempFileGuard(std::string tmp_path) : tmp_(std::move(tmp_path)) {
  slot_ = register_live(tmp_);
}

TempFileGuard::~TempFileGuard() {
  if (!done_) std::remove(tmp_.c_str());
  unregister_live(slot_);
}

// The mode a newly created file gets (0666 less the umask); mkstemp creates 0600.
static mode_t new_file_mode() {
  static const mode_t mode = [] {
    mode_t mask = umask(0);
    umask(mask);
    return static_cast<mode_t>(0666 & ~mask);
  }();
  return mode;
}

void TempFileGuard::commit(const std::string& final_path) {
  int fd = ::open(tmp_.c_str(), O_RDONLY);
  if (fd >= 0) {
    fchmod(fd, new_file_mode());
    fsync(fd);
    close(fd);
  }
  if (std::rename(tmp_.c_str(), final_path.c_str()) != 0) {
    fail<IoError>(final_path, "", "a rename of the finished file into place", std::strerror(errno));
  }
  done_ = true;
}

std::string AtomicOutput::make_temp(const std::string& final_path) {
  std::string tmpl = final_path + ".tmp-XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0) fail<IoError>(final_path, "", "a writable folder", std::strerror(errno));
  close(fd);
  return tmpl;
}

AtomicOutput::AtomicOutput(std::string final_path)
    : final_(std::move(final_path)), guard_(make_temp(final_)) {}

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail<IoError>(path, "", "a readable file", std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISFIFO(st.st_mode)   ? "a FIFO"
                     : S_ISDIR(st.st_mode)  ? "a folder"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "another kind of file";
  fail<IoError>(path, "", "a regular file", kind);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  std::string tmpl = path + ".tmp-XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0) fail<IoError>(path, "", "a writable folder", std::strerror(errno));
  TempFileGuard guard(tmpl);
  size_t left = content.size();
  const char* p = content.data();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n <= 0) {
      close(fd);
      fail<IoError>(path, "", "a complete write", std::strerror(errno));
    }
    p += n, left -= static_cast<size_t>(n);
  }
  close(fd);
  guard.commit(path);
}

void prepare_output_dir(const std::string& dir, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) fail<InvalidArgument>(dir, "", "an output folder", "a file");
    if (overwrite) return;
    size_t entries = 0;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      ++entries;
    }
    if (ec) fail<IoError>(dir, "", "a readable output folder", ec.message());
    if (entries > 0) {
      fail<InvalidArgument>(dir, "",
                            "a new or empty output folder (--force writes into a non-empty one)",
                            "a folder with " + std::to_string(entries) + " entries");
    }
    return;
  }
  if (!fs::create_directories(dir, ec) && ec) {
    fail<IoError>(dir, "", "a folder bdguard can create", ec.message());
  }
}

void start_read_watchdog(double seconds) {
  const auto limit = static_cast<int64_t>(std::max(seconds, 1.0) * 1e9);
  int64_t off = 0;
  if (!g_read_limit_ns.compare_exchange_strong(off, limit)) return;
  std::thread([limit] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const int64_t since = g_read_since.load();
      if (since != 0 && steady_ns() - since > limit) {
        // The reading thread is stuck inside HDF5 and cannot be interrupted: report
        // the file, clean up as the signal handler does, and end the process.
        ssize_t ignored = write(STDERR_FILENO, g_read_error, std::strlen(g_read_error));
        (void)ignored;
        remove_live_files();
        _exit(1);
      }
    }
  }).detach();
}

void install_cleanup_signal_handlers() {
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::array<char, 1 << 16> buf;
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() > 0) EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace bdguard
