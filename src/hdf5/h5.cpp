#include "h5.h"

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
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "io/read_watch.h"

namespace bdguard::h5 {
namespace {

// HDF5 prints its own error stack to stderr by default; bdguard reports errors itself.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// The innermost message on HDF5's error stack (e.g. "truncated file: eof = ..."), to
// say what HDF5 found; "" when the stack is empty.
std::string hdf5_reason() {
  std::string out;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        if (e->desc && *e->desc) *static_cast<std::string*>(data) = e->desc;
        return 0;
      },
      &out);
  H5Eclear2(H5E_DEFAULT);
  if (out.size() > 200) out.resize(200);
  return out;
}

std::string found_damaged(const char* what) {
  std::string reason = hdf5_reason();
  return reason.empty() ? std::string(what) : std::string(what) + " (HDF5: " + reason + ")";
}

std::string where_name(const std::string& where, const std::string& attr = "") {
  std::string out = where;
  if (!attr.empty()) out += (where == "/" ? "" : "") + std::string("@") + attr;
  return out;
}

Id open_object(const File& f, const std::string& where) {
  if (!exists(f, where)) fail(f.path(), where, "an HDF5 object", "nothing at that path");
  Id id(H5Oopen(f.id(), where.c_str(), H5P_DEFAULT));
  if (!id.valid()) fail(f.path(), where, "a readable HDF5 object", "an unreadable one");
  return id;
}

Id open_dataset(const File& f, const std::string& where) {
  if (!is_dataset(f, where)) fail(f.path(), where, "a dataset", "no dataset at that path");
  Id id(H5Dopen2(f.id(), where.c_str(), H5P_DEFAULT));
  if (!id.valid()) fail(f.path(), where, "a readable dataset", found_damaged("an unreadable one"));
  Id dcpl(H5Dget_create_plist(id.get()));
  if (!dcpl.valid()) fail(f.path(), where, "a readable dataset", found_damaged("a damaged one"));
  // Both name other files, which a crafted file could point at anything (a FIFO that
  // blocks forever, /dev/zero, a private key); Keras never writes either.
  if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) {
    fail(f.path(), where, "a dataset stored in the file",
         "a virtual dataset (data in other files)");
  }
  if (H5Pget_external_count(dcpl.get()) != 0) {
    fail(f.path(), where, "a dataset stored in the file",
         "external raw storage (data in other files)");
  }
  return id;
}

Kind kind_of(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return Kind::kFloat;
    case H5T_INTEGER:
      return H5Tget_sign(type) == H5T_SGN_NONE ? Kind::kUInt : Kind::kInt;
    case H5T_STRING:
      return Kind::kString;
    default:
      return Kind::kOther;
  }
}

std::vector<int64_t> dims_of(hid_t space, const std::string& file, const std::string& obj) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > 8) {
    fail(file, obj, "a simple dataspace of rank <= 8", "rank " + std::to_string(rank));
  }
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space, d.data(), nullptr);
  std::vector<int64_t> out;
  for (hsize_t x : d) {
    if (x > (hsize_t{1} << 40)) fail(file, obj, "a dimension below 2^40", std::to_string(x));
    out.push_back(static_cast<int64_t>(x));
  }
  return out;
}

int64_t element_count(const std::vector<int64_t>& dims) { return checked_bytes(dims, 1); }

// "(3, 3, 3, 4)": like bdguard::shape_str, which lives with the layers.
std::string shape_str_of(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

std::string attr_as_string(hid_t attr, hid_t type, hid_t space, const std::string& file,
                           const std::string& obj, size_t max_bytes, std::vector<std::string>* list,
                           size_t max_items) {
  auto dims = dims_of(space, file, obj);
  int64_t n = element_count(dims);
  if (n < 0 || static_cast<size_t>(n) > max_items) {
    fail<LimitExceeded>(file, obj, "at most " + std::to_string(max_items) + " strings",
                        std::to_string(n));
  }
  std::vector<std::string> values;
  if (H5Tis_variable_str(type) > 0) {
    Id mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type));
    std::vector<char*> ptrs(static_cast<size_t>(std::max<int64_t>(n, 1)), nullptr);
    if (H5Aread(attr, mem.get(), ptrs.data()) < 0) fail(file, obj, "a readable string", "");
    for (int64_t i = 0; i < n; ++i) {
      const char* p = ptrs[static_cast<size_t>(i)];
      values.emplace_back(p ? p : "");
    }
    H5Dvlen_reclaim(mem.get(), space, H5P_DEFAULT, ptrs.data());
  } else {
    size_t size = H5Tget_size(type);
    if (size == 0 || size > max_bytes) {
      fail<LimitExceeded>(file, obj, "a string of at most " + std::to_string(max_bytes) + " bytes",
                          std::to_string(size) + " bytes");
    }
    std::vector<char> buf(size * static_cast<size_t>(std::max<int64_t>(n, 1)), '\0');
    Id mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), size);
    H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
    if (H5Aread(attr, mem.get(), buf.data()) < 0) fail(file, obj, "a readable string", "");
    for (int64_t i = 0; i < n; ++i) {
      const char* p = buf.data() + static_cast<size_t>(i) * size;
      values.emplace_back(p, strnlen(p, size));
    }
  }
  for (const auto& v : values) {
    if (v.size() > max_bytes) {
      fail<LimitExceeded>(file, obj, "a string of at most " + std::to_string(max_bytes) + " bytes",
                          std::to_string(v.size()) + " bytes");
    }
  }
  if (list) {
    *list = std::move(values);
    return {};
  }
  if (values.size() != 1) fail(file, obj, "one string", std::to_string(values.size()) + " strings");
  return values[0];
}

// ---- Variable-length strings, read in a child process ----------------------------
// They live in HDF5's global heap, whose decoder in HDF5 1.10.8 trusts the file:
// fuzz_keras_weights found an endless loop (a heap object of size 0) and an
// out-of-bounds memcpy (an object larger than its heap) within minutes, and a string's
// length is not checked against its heap object either. So `read` runs in a forked
// child that only sends the strings back through a pipe; a crash, a hang or a runaway
// allocation there ends the child, and the parent reports one error naming the
// attribute. Keras keeps model_config (and often layer_names) in such strings.

constexpr size_t kMaxListItemBytes = 4096;  // one name in a list attribute

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

// `what` names what is read, in error messages ("a string attribute").
std::vector<std::string> read_strings_in_child(
    const std::string& file, const std::string& obj,
    const std::function<std::vector<std::string>()>& read, size_t max_total,
    const std::string& what = "a string attribute") {
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

void check(herr_t status, const std::string& file, const std::string& obj, const char* what) {
  if (status < 0) fail<IoError>(file, obj, what, "an HDF5 error");
}

}  // namespace

void note_probed_copy(const std::string& original, const std::string& copy) {
  // Checked after the copy: had the original changed since its walk (or during the
  // copy), its key would differ and the copy gets a walk of its own when opened.
  const auto from = content_key(original), to = content_key(copy);
  if (!from || !to) return;
  std::lock_guard<std::mutex> lock(g_probed_mu);
  if (g_probed.count(*from)) g_probed.insert(*to);
}

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    this->~Id();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

Id::~Id() {
  if (id_ >= 0) {
    switch (H5Iget_type(id_)) {
      case H5I_FILE:
        H5Fclose(id_);
        break;
      case H5I_GROUP:
        H5Gclose(id_);
        break;
      case H5I_DATASET:
        H5Dclose(id_);
        break;
      case H5I_ATTR:
        H5Aclose(id_);
        break;
      case H5I_DATATYPE:
        H5Tclose(id_);
        break;
      case H5I_DATASPACE:
        H5Sclose(id_);
        break;
      case H5I_GENPROP_LST:
        H5Pclose(id_);
        break;
      default:
        H5Idec_ref(id_);
    }
  }
  id_ = H5I_INVALID_HID;
}

int64_t checked_bytes(const std::vector<int64_t>& dims, int64_t element_size) {
  constexpr int64_t kMax = int64_t{1} << 62;
  if (element_size < 0) return -1;
  int64_t n = element_size;
  for (int64_t d : dims) {
    if (d < 0) return -1;
    if (d != 0 && n > kMax / d) return -1;
    n *= d;
  }
  return n;
}

int64_t DatasetInfo::bytes(int64_t bytes_per_element) const {
  return checked_bytes(dims, bytes_per_element);
}

std::string DatasetInfo::dtype_name() const {
  std::string bits = std::to_string(element_size * 8);
  switch (kind) {
    case Kind::kFloat:
      return "float" + bits;
    case Kind::kInt:
      return "int" + bits;
    case Kind::kUInt:
      return "uint" + bits;
    case Kind::kString:
      return "string";
    default:
      return "non-numeric type";
  }
}

File File::open(const std::string& path, bool writable) {
  silence_hdf5();
  detail::ReadScope watch(path);
  // Every reader of an HDF5 file comes here: a FIFO would block the fopen, a device
  // (/dev/zero) would be read without end.
  require_regular_file(path);
  FILE* probe = std::fopen(path.c_str(), "rb");
  if (!probe) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  std::fclose(probe);
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "", "an HDF5 file", "no HDF5 signature");
  if (!writable) probe_structure_in_child(path);
  File f;
  f.path_ = path;
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
  // Close every object with the file; no object of an untrusted file outlives it.
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  f.id_ = Id(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get()));
  if (!f.id_.valid()) {
    fail(path, "", "a readable HDF5 file", found_damaged("a damaged or truncated one"));
  }
  return f;
}

File File::create(const std::string& path) {
  silence_hdf5();
  File f;
  f.path_ = path;
  // No modification times in object headers: the same content gives the same bytes.
  Id fcpl(H5Pcreate(H5P_FILE_CREATE));
  H5Pset_obj_track_times(fcpl.get(), false);
  f.id_ = Id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT));
  if (!f.id_.valid()) fail<IoError>(path, "", "a writable file", "HDF5 could not create it");
  return f;
}

File::~File() {
  if (id_.valid()) {
    detail::ReadScope watch(path_);
    id_ = Id();
  }
}

void File::flush() { check(H5Fflush(id_.get(), H5F_SCOPE_GLOBAL), path_, "", "a flush"); }

bool exists(const File& f, const std::string& where) {
  detail::ReadScope watch(f.path());
  if (where == "/") return true;
  // Check each path component: H5Lexists fails on a missing intermediate group.
  size_t pos = 0;
  while (true) {
    pos = where.find('/', pos + 1);
    std::string prefix = where.substr(0, pos);
    if (!prefix.empty() && prefix != "/") {
      if (H5Lexists(f.id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
      H5L_info_t link;
      if (H5Lget_info(f.id(), prefix.c_str(), &link, H5P_DEFAULT) < 0) return false;
      if (link.type != H5L_TYPE_HARD) {
        // Soft and external links may point anywhere (another file, a device); Keras
        // and h5py write only hard links.
        fail(f.path(), prefix, "a hard link",
             link.type == H5L_TYPE_EXTERNAL ? "an external link (to another file)"
             : link.type == H5L_TYPE_SOFT   ? "a soft link"
                                            : "a user-defined link");
      }
      if (H5Oexists_by_name(f.id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    if (pos == std::string::npos) return true;
  }
}

static H5O_type_t object_type(const File& f, const std::string& where) {
  detail::ReadScope watch(f.path());
  if (!exists(f, where)) return H5O_TYPE_UNKNOWN;
  H5O_info_t info;
  if (H5Oget_info_by_name2(f.id(), where.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
    return H5O_TYPE_UNKNOWN;
  }
  return info.type;
}

bool is_group(const File& f, const std::string& where) {
  return object_type(f, where) == H5O_TYPE_GROUP;
}

bool is_dataset(const File& f, const std::string& where) {
  return object_type(f, where) == H5O_TYPE_DATASET;
}

bool has_attr(const File& f, const std::string& where, const std::string& name) {
  detail::ReadScope watch(f.path());
  if (!exists(f, where)) return false;
  return H5Aexists_by_name(f.id(), where.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> list_children(const File& f, const std::string& where) {
  detail::ReadScope watch(f.path());
  if (!is_group(f, where)) fail(f.path(), where, "a group", "no group at that path");
  Id g(H5Gopen2(f.id(), where.c_str(), H5P_DEFAULT));
  H5G_info_t info;
  check(H5Gget_info(g.get(), &info), f.path(), where, "a readable group");
  if (info.nlinks > 100000) {
    fail<LimitExceeded>(f.path(), where, "at most 100000 members", std::to_string(info.nlinks));
  }
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0 || len > 4096) continue;
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    names.push_back(name);
  }
  return names;
}

std::string read_string_attr(const File& f, const std::string& where, const std::string& name,
                             size_t max_bytes) {
  detail::ReadScope watch(f.path());
  std::string obj = where_name(where, name);
  if (!has_attr(f, where, name)) fail(f.path(), obj, "a string attribute", "no such attribute");
  Id attr(H5Aopen_by_name(f.id(), where.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  Id type(H5Aget_type(attr.get()));
  Id space(H5Aget_space(attr.get()));
  if (!attr.valid() || !type.valid() || !space.valid()) {
    fail(f.path(), obj, "a readable attribute", "a damaged one");
  }
  if (H5Tget_class(type.get()) != H5T_STRING) {
    fail(f.path(), obj, "a string attribute", "a non-string attribute");
  }
  auto read = [&] {
    return std::vector<std::string>{
        attr_as_string(attr.get(), type.get(), space.get(), f.path(), obj, max_bytes, nullptr, 1)};
  };
  if (H5Tis_variable_str(type.get()) <= 0) return read()[0];
  return read_strings_in_child(f.path(), obj, read, max_bytes + 64)[0];
}

std::vector<std::string> read_string_list_attr(const File& f, const std::string& where,
                                               const std::string& name, size_t max_items) {
  detail::ReadScope watch(f.path());
  std::string obj = where_name(where, name);
  if (!has_attr(f, where, name))
    fail(f.path(), obj, "a string-list attribute", "no such attribute");
  Id attr(H5Aopen_by_name(f.id(), where.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  Id type(H5Aget_type(attr.get()));
  Id space(H5Aget_space(attr.get()));
  if (!attr.valid() || !type.valid() || !space.valid()) {
    fail(f.path(), obj, "a readable attribute", "a damaged one");
  }
  if (H5Tget_class(type.get()) != H5T_STRING) {
    if (element_count(dims_of(space.get(), f.path(), obj)) == 0) return {};
    fail(f.path(), obj, "a list of strings", "a non-string attribute");
  }
  auto read = [&] {
    std::vector<std::string> out;
    attr_as_string(attr.get(), type.get(), space.get(), f.path(), obj, kMaxListItemBytes, &out,
                   max_items);
    return out;
  };
  if (H5Tis_variable_str(type.get()) <= 0) return read();
  return read_strings_in_child(f.path(), obj, read, max_items * (kMaxListItemBytes + 8) + 64);
}

DatasetInfo dataset_info(const File& f, const std::string& where) {
  detail::ReadScope watch(f.path());
  Id ds = open_dataset(f, where);
  Id type(H5Dget_type(ds.get()));
  Id space(H5Dget_space(ds.get()));
  if (!type.valid() || !space.valid()) fail(f.path(), where, "a readable dataset", "a damaged one");
  DatasetInfo info;
  info.dims = dims_of(space.get(), f.path(), where);
  info.kind = kind_of(type.get());
  info.element_size = H5Tget_size(type.get());
  Id dcpl(H5Dget_create_plist(ds.get()));
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CHUNKED) {
    int rank = H5Pget_chunk(dcpl.get(), 0, nullptr);
    if (rank != static_cast<int>(info.dims.size())) {
      fail(f.path(), where, "chunks of rank " + std::to_string(info.dims.size()),
           "rank " + std::to_string(rank));
    }
    std::vector<hsize_t> chunk(static_cast<size_t>(rank));
    H5Pget_chunk(dcpl.get(), rank, chunk.data());
    std::vector<int64_t> c;
    for (hsize_t x : chunk) c.push_back(x > (hsize_t{1} << 40) ? -1 : static_cast<int64_t>(x));
    info.chunk_bytes = checked_bytes(c, static_cast<int64_t>(info.element_size));
    if (info.chunk_bytes <= 0) {
      fail(f.path(), where, "chunk dimensions of at least 1", "chunks " + shape_str_of(c));
    }
  } else if (layout == H5D_CONTIGUOUS) {
    // The data HDF5 will read must lie inside the file: a crafted dataset may claim
    // more than the file holds (a truncated file, or an address past its end).
    int64_t need = info.bytes(static_cast<int64_t>(info.element_size));
    haddr_t offset = H5Dget_offset(ds.get());
    std::error_code ec;
    const auto file_size = static_cast<hsize_t>(std::filesystem::file_size(f.path(), ec));
    if (need > 0 && offset != HADDR_UNDEF &&
        (offset > file_size || static_cast<hsize_t>(need) > file_size - offset)) {
      fail(f.path(), where,
           std::to_string(need) + " bytes of data (" + shape_str_of(info.dims) + " " +
               info.dtype_name() + ") inside the file",
           "data at byte " + std::to_string(offset) + " of a " + std::to_string(file_size) +
               "-byte file");
    }
  }
  return info;
}

std::vector<float> read_floats(const File& f, const std::string& where, int64_t max_bytes) {
  detail::ReadScope watch(f.path());
  DatasetInfo info = dataset_info(f, where);
  if (info.kind != Kind::kFloat ||
      (info.element_size != 2 && info.element_size != 4 && info.element_size != 8)) {
    fail(f.path(), where, "float16, float32 or float64", info.dtype_name());
  }
  const int64_t bytes = info.bytes(4);
  if (bytes < 0 || bytes > max_bytes) {
    fail<LimitExceeded>(f.path(), where,
                        "at most " + std::to_string(max_bytes) + " bytes (the tensor size limit)",
                        shape_str_of(info.dims) + " = " +
                            (bytes < 0 ? "more than 2^62" : std::to_string(bytes)) + " bytes");
  }
  if (info.chunk_bytes > max_bytes) {
    fail<LimitExceeded>(f.path(), where,
                        "chunks of at most " + std::to_string(max_bytes) + " bytes",
                        std::to_string(info.chunk_bytes) + "-byte chunks");
  }
  const int64_t n = element_count(info.dims);
  std::vector<float> out(static_cast<size_t>(n));
  if (n == 0) return out;
  Id ds = open_dataset(f, where);
  if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    fail(f.path(), where, "readable data", "a truncated or damaged dataset");
  }
  return out;
}

void read_rows(const File& f, const std::string& where, int64_t start, int64_t count,
               hid_t mem_type, void* out) {
  detail::ReadScope watch(f.path());
  Id ds = open_dataset(f, where);
  Id space(H5Dget_space(ds.get()));
  auto dims = dims_of(space.get(), f.path(), where);
  if (dims.empty() || start < 0 || count < 0 || start + count > dims[0]) {
    fail(f.path(), where, "rows within the dataset", "a request past its end");
  }
  if (count == 0) return;
  std::vector<hsize_t> off(dims.size(), 0), cnt(dims.begin(), dims.end());
  off[0] = static_cast<hsize_t>(start);
  cnt[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
  Id mem(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr));
  if (H5Dread(ds.get(), mem_type, mem.get(), space.get(), H5P_DEFAULT, out) < 0) {
    fail(f.path(), where,
         "readable rows " + std::to_string(start) + ".." + std::to_string(start + count - 1),
         "a truncated or damaged dataset");
  }
}

int64_t raw_data_offset(const File& f, const std::string& where) {
  detail::ReadScope watch(f.path());
  Id ds = open_dataset(f, where);
  Id dcpl(H5Dget_create_plist(ds.get()));
  if (H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS) return -1;
  if (H5Pget_nfilters(dcpl.get()) != 0) return -1;
  haddr_t off = H5Dget_offset(ds.get());
  if (off == HADDR_UNDEF) return -1;
  return static_cast<int64_t>(off);
}

void write_floats(File& f, const std::string& where, const std::vector<float>& values) {
  Id ds = open_dataset(f, where);
  DatasetInfo info = dataset_info(f, where);
  if (element_count(info.dims) != static_cast<int64_t>(values.size())) {
    fail<ShapeMismatch>(f.path(), where, std::to_string(element_count(info.dims)) + " values",
                        std::to_string(values.size()));
  }
  check(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
        f.path(), where, "a write");
}

void create_group(File& f, const std::string& where) {
  Id gcpl(H5Pcreate(H5P_GROUP_CREATE));
  H5Pset_obj_track_times(gcpl.get(), false);
  Id g(H5Gcreate2(f.id(), where.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
  if (!g.valid()) fail<IoError>(f.path(), where, "a new group", "HDF5 could not create it");
}

void write_string_attr(File& f, const std::string& where, const std::string& name,
                       const std::string& value, bool variable_length) {
  Id obj = open_object(f, where);
  Id type(H5Tcopy(H5T_C_S1));
  Id space(H5Screate(H5S_SCALAR));
  if (variable_length) {
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
    Id attr(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    const char* p = value.c_str();
    check(H5Awrite(attr.get(), type.get(), &p), f.path(), where_name(where, name), "a write");
  } else {
    H5Tset_size(type.get(), std::max<size_t>(value.size(), 1));
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    Id attr(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    std::string buf = value.empty() ? std::string(1, '\0') : value;
    check(H5Awrite(attr.get(), type.get(), buf.data()), f.path(), where_name(where, name),
          "a write");
  }
}

void write_string_list_attr(File& f, const std::string& where, const std::string& name,
                            const std::vector<std::string>& values) {
  Id obj = open_object(f, where);
  if (values.empty()) {
    // Keras writes an empty float64 array for "no weights".
    hsize_t zero = 0;
    Id space(H5Screate_simple(1, &zero, nullptr));
    Id attr(
        H5Acreate2(obj.get(), name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!attr.valid()) fail<IoError>(f.path(), where_name(where, name), "a new attribute", "");
    return;
  }
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  std::vector<char> buf(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  }
  Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), width);
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  hsize_t n = values.size();
  Id space(H5Screate_simple(1, &n, nullptr));
  Id attr(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  check(H5Awrite(attr.get(), type.get(), buf.data()), f.path(), where_name(where, name), "a write");
}

static void write_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                          hid_t file_type, hid_t mem_type, const void* values) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  Id space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr));
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl.get(), false);
  Id ds(H5Dcreate2(f.id(), where.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                   H5P_DEFAULT));
  if (!ds.valid()) fail<IoError>(f.path(), where, "a new dataset", "HDF5 could not create it");
  if (element_count(dims) > 0) {
    check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), f.path(), where,
          "a write");
  }
}

void write_float_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const float* values) {
  write_dataset(f, where, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values);
}

void write_uint8_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const uint8_t* values) {
  write_dataset(f, where, dims, H5T_STD_U8LE, H5T_NATIVE_UINT8, values);
}

void write_int64_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const int64_t* values) {
  write_dataset(f, where, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, values);
}

}  // namespace bdguard::h5
