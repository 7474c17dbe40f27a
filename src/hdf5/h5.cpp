#include "h5.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "hdf5/internal.h"
#include "io/read_watch.h"

namespace bdguard::h5 {
namespace {

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

}  // namespace

namespace internal {

// HDF5 prints its own error stack to stderr by default; bdguard reports errors itself.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string found_damaged(const char* what) {
  std::string reason = hdf5_reason();
  return reason.empty() ? std::string(what) : std::string(what) + " (HDF5: " + reason + ")";
}

std::string where_name(const std::string& where, const std::string& attr) {
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

void check(herr_t status, const std::string& file, const std::string& obj, const char* what) {
  if (status < 0) fail<IoError>(file, obj, what, "an HDF5 error");
}

}  // namespace internal

using namespace internal;

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

}  // namespace bdguard::h5
