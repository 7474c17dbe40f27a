// The HDF5 calls that a crafted file can crash or hang, run in a forked child process
// (see internal.h): variable-length strings, and a first walk of the file's structure.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "bdguard/error.h"
#include "h5.h"
#include "hdf5/internal.h"
#include "io/read_watch.h"

namespace bdguard::h5 {

using namespace internal;

namespace {

// ---- Variable-length strings, read in a child process ----------------------------
// They live in HDF5's global heap, whose decoder in HDF5 1.10.8 trusts the file:
// fuzz_keras_weights found an endless loop (a heap object of size 0) and an
// out-of-bounds memcpy (an object larger than its heap) within minutes, and a string's
// length is not checked against its heap object either. So `read` runs in a forked
// child that only sends the strings back through a pipe; a crash, a hang or a runaway
// allocation there ends the child, and the parent reports one error naming the
// attribute. Keras keeps model_config (and often layer_names) in such strings.

enum class Outcome : char { kOk, kFormat, kLimit, kOther };

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

bool get_u64(const std::string& in, size_t& pos, uint64_t& v) {
  if (in.size() - pos < 8) return false;
  std::memcpy(&v, in.data() + pos, 8);
  pos += 8;
  return true;
}

[[noreturn]] void child_main(int fd, const std::function<std::vector<std::string>()>& read) {
  // Nothing from the child reaches the user's terminal; the parent reports.
  int null = ::open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDERR_FILENO);
  std::string out;
  Outcome outcome = Outcome::kOk;
  std::vector<std::string> values;
  try {
    values = read();
  } catch (const LimitExceeded& e) {
    outcome = Outcome::kLimit, values = {e.what()};
  } catch (const FormatError& e) {
    outcome = Outcome::kFormat, values = {e.what()};
  } catch (const std::exception& e) {
    outcome = Outcome::kOther, values = {e.what()};
  }
  out.push_back(static_cast<char>(outcome));
  put_u64(out, values.size());
  for (const auto& v : values) {
    put_u64(out, v.size());
    out += v;
  }
  for (size_t done = 0; done < out.size();) {
    ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n <= 0) _exit(2);
    done += static_cast<size_t>(n);
  }
  _exit(0);  // no destructors, atexit handlers or stdio flushes of the parent's state
}

}  // namespace

namespace internal {

// `what` names what is read, in error messages ("a string attribute").
std::vector<std::string> read_strings_in_child(
    const std::string& file, const std::string& obj,
    const std::function<std::vector<std::string>()>& read, size_t max_total,
    const std::string& what) {
  int fds[2];
  if (pipe(fds) != 0) fail<IoError>(file, obj, "a pipe to a reader process", std::strerror(errno));
  std::fflush(nullptr);
  const pid_t parent = getpid();
  const int64_t limit_s = detail::read_limit_ns() / 1000000000 + 1;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    fail<IoError>(file, obj, "a reader process", std::strerror(errno));
  }
  if (pid == 0) {
    // The child never outlives its parent (killed by a fuzzer's timeout, say) nor its
    // deadline: an HDF5 loop in an orphaned reader would spin forever.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(3);
    signal(SIGALRM, SIG_DFL);
    alarm(static_cast<unsigned>(std::min<int64_t>(limit_s, 1 << 20)));
    close(fds[0]);
    child_main(fds[1], read);
  }
  close(fds[1]);
  detail::ReadPause pause;  // this wait has its own deadline
  const int64_t limit_ns = detail::read_limit_ns();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(limit_ns);
  std::string in;
  bool timed_out = false, too_big = false;
  char buf[1 << 16];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    pollfd p{fds[0], POLLIN, 0};
    int r = left > 0 ? poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30))) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > max_total) {
      too_big = true;
      break;
    }
  }
  close(fds[0]);
  if (timed_out || too_big) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string seconds = std::to_string(limit_ns / 1000000000);
  if (timed_out) {
    fail(file, obj, what + " the HDF5 library reads within " + seconds + " s",
         "one it was still reading after " + seconds +
             " s (a crafted file can make HDF5 loop forever)");
  }
  if (too_big) {
    fail<LimitExceeded>(file, obj, "at most " + std::to_string(max_total) + " bytes of strings",
                        "more");
  }
  if (WIFSIGNALED(status)) {
    fail(file, obj, what + " the HDF5 library can read",
         "one that crashed it (signal " + std::to_string(WTERMSIG(status)) +
             "; HDF5 1.10 has bugs on crafted files)");
  }
  size_t pos = 1;
  uint64_t count = 0;
  std::vector<std::string> values;
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !in.empty() && get_u64(in, pos, count);
  for (uint64_t i = 0; ok && i < count; ++i) {
    uint64_t len = 0;
    ok = get_u64(in, pos, len) && len <= in.size() - pos;
    if (ok) values.emplace_back(in.data() + pos, len), pos += len;
  }
  const auto outcome = ok ? static_cast<Outcome>(in[0]) : Outcome::kOther;
  if (!ok || pos != in.size() || (outcome != Outcome::kOk && values.size() != 1)) {
    fail(file, obj, what + " the HDF5 library can read",
         "one its reader process failed on (" +
             (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                : "status " + std::to_string(status)) +
             ")");
  }
  switch (outcome) {
    case Outcome::kOk:
      return values;
    case Outcome::kLimit:
      throw LimitExceeded(values[0]);
    case Outcome::kFormat:
      throw FormatError(values[0]);
    default:
      fail(file, obj, "a readable string attribute", values[0]);
  }
}

}  // namespace internal

namespace {

// ---- The file's structure, walked in a child process first ------------------------
// HDF5 1.10.8 also trusts the file's B-trees, local heaps and object headers:
// fuzz_data found a NULL memcpy in its local-heap reader (H5Lexists on a crafted
// symbol table). Before a file is read, a forked child opens it and walks every link,
// object header, attribute header and dataset header (what bdguard's readers touch); a
// crash or hang there becomes one error and the parent never touches the file's
// metadata the way that broke the child. Raw data is not read by the walk.

constexpr int64_t kMaxProbedLinks = 100000;

herr_t probe_attribute(hid_t loc, const char* name, const H5A_info_t*, void*) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  if (sp >= 0) H5Sget_simple_extent_npoints(sp), H5Sclose(sp);
  if (t >= 0) H5Tget_class(t), H5Tget_size(t), H5Tis_variable_str(t), H5Tclose(t);
  H5Aclose(a);
  return 0;
}

herr_t probe_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  auto& count = *static_cast<int64_t*>(data);
  if (++count > kMaxProbedLinks) return 1;  // stop: the readers refuse such files anyway
  if (info->type != H5L_TYPE_HARD || H5Lexists(group, name, H5P_DEFAULT) <= 0) return 0;
  hid_t o = H5Oopen(group, name, H5P_DEFAULT);
  if (o < 0) return 0;
  H5O_info_t oi;
  if (H5Oget_info2(o, &oi, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) >= 0) {
    hsize_t idx = 0;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, probe_attribute, nullptr);
    if (oi.type == H5O_TYPE_DATASET) {
      hid_t t = H5Dget_type(o), sp = H5Dget_space(o), dcpl = H5Dget_create_plist(o);
      if (sp >= 0) H5Sget_simple_extent_npoints(sp), H5Sclose(sp);
      if (t >= 0) H5Tget_class(t), H5Tget_size(t), H5Tclose(t);
      if (dcpl >= 0)
        H5Pget_layout(dcpl), H5Pget_nfilters(dcpl), H5Pget_external_count(dcpl), H5Pclose(dcpl);
      H5Dget_storage_size(o);
    }
  }
  H5Oclose(o);
  return 0;
}

void probe_walk_in_child(const std::string& path) {
  read_strings_in_child(
      path, "",
      [&path]() -> std::vector<std::string> {
        hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) return {};  // the parent reports it
        hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
        if (root >= 0) {
          hsize_t idx = 0;
          H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, probe_attribute, nullptr);
          int64_t count = 0;
          H5Lvisit(root, H5_INDEX_NAME, H5_ITER_NATIVE, probe_link, &count);
          H5Gclose(root);
        }
        return {};
      },
      /*max_total=*/64, "a file structure");
}

// What identifies a file's content for the structure walk: device, inode, size and
// modification time.
using ContentKey = std::tuple<dev_t, ino_t, off_t, time_t, long>;

std::optional<ContentKey> content_key(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return ContentKey{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
}

std::mutex g_probed_mu;
std::set<ContentKey> g_probed;  // contents whose structure walk passed

}  // namespace

namespace internal {

void probe_structure_in_child(const std::string& path) {
  // Once per file and content: LabDataset reopens its file for every batch, and each
  // fork write-protects the parent's memory (a page fault per page written after it).
  const auto key = content_key(path);
  if (!key) return;  // H5Fopen reports it
  {
    std::lock_guard<std::mutex> lock(g_probed_mu);
    if (g_probed.count(*key)) return;
  }
  probe_walk_in_child(path);
  std::lock_guard<std::mutex> lock(g_probed_mu);
  g_probed.insert(*key);
}

}  // namespace internal

void note_probed_copy(const std::string& original, const std::string& copy) {
  // Checked after the copy: had the original changed since its walk (or during the
  // copy), its key would differ and the copy gets a walk of its own when opened.
  const auto from = content_key(original), to = content_key(copy);
  if (!from || !to) return;
  std::lock_guard<std::mutex> lock(g_probed_mu);
  if (g_probed.count(*from)) g_probed.insert(*to);
}

}  // namespace bdguard::h5
