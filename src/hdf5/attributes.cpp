// String attributes: read (variable-length ones in a reader process) and written.
#include <algorithm>
#include <cstring>

#include "bdguard/error.h"
#include "h5.h"
#include "hdf5/internal.h"
#include "io/read_watch.h"

namespace bdguard::h5 {

using namespace internal;

namespace {

constexpr size_t kMaxListItemBytes = 4096;  // one name in a list attribute

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

// An attribute opened with its type and dataspace; `what` names what the caller wants
// when there is no such attribute.
struct Attr {
  std::string obj;  // "where@name"
  Id attr, type, space;
};

Attr open_attr(const File& f, const std::string& where, const std::string& name, const char* what) {
  Attr a;
  a.obj = where_name(where, name);
  if (!has_attr(f, where, name)) fail(f.path(), a.obj, what, "no such attribute");
  a.attr = Id(H5Aopen_by_name(f.id(), where.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  a.type = Id(H5Aget_type(a.attr.get()));
  a.space = Id(H5Aget_space(a.attr.get()));
  if (!a.attr.valid() || !a.type.valid() || !a.space.valid()) {
    fail(f.path(), a.obj, "a readable attribute", "a damaged one");
  }
  return a;
}

}  // namespace

std::string read_string_attr(const File& f, const std::string& where, const std::string& name,
                             size_t max_bytes) {
  detail::ReadScope watch(f.path());
  const Attr a = open_attr(f, where, name, "a string attribute");
  if (H5Tget_class(a.type.get()) != H5T_STRING) {
    fail(f.path(), a.obj, "a string attribute", "a non-string attribute");
  }
  auto read = [&] {
    return std::vector<std::string>{attr_as_string(a.attr.get(), a.type.get(), a.space.get(),
                                                   f.path(), a.obj, max_bytes, nullptr, 1)};
  };
  if (H5Tis_variable_str(a.type.get()) <= 0) return read()[0];
  return read_strings_in_child(f.path(), a.obj, read, max_bytes + 64)[0];
}

std::vector<std::string> read_string_list_attr(const File& f, const std::string& where,
                                               const std::string& name, size_t max_items) {
  detail::ReadScope watch(f.path());
  const Attr a = open_attr(f, where, name, "a string-list attribute");
  if (H5Tget_class(a.type.get()) != H5T_STRING) {
    if (element_count(dims_of(a.space.get(), f.path(), a.obj)) == 0) return {};
    fail(f.path(), a.obj, "a list of strings", "a non-string attribute");
  }
  auto read = [&] {
    std::vector<std::string> out;
    attr_as_string(a.attr.get(), a.type.get(), a.space.get(), f.path(), a.obj, kMaxListItemBytes,
                   &out, max_items);
    return out;
  };
  if (H5Tis_variable_str(a.type.get()) <= 0) return read();
  return read_strings_in_child(f.path(), a.obj, read, max_items * (kMaxListItemBytes + 8) + 64);
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

}  // namespace bdguard::h5
