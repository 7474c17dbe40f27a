// One RAII wrapper over the HDF5 C API: the only place that calls H5* functions.
//
// Every read checks the object's kind, dtype and size before anything is
// allocated; every failure throws a bdguard::Error naming the file and object.
// Files are untrusted, so only what Keras and h5py write is followed: hard links
// (soft, external and user-defined links are refused), datasets whose data lies in
// the file itself (external raw storage and virtual datasets, which name other
// files, are refused), and contiguous data that fits inside the file.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bdguard::h5 {

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Id(Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept;
  ~Id();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

enum class Kind { kFloat, kInt, kUInt, kString, kOther };

struct DatasetInfo {
  std::vector<int64_t> dims;
  Kind kind = Kind::kOther;
  size_t element_size = 0;
  // Bytes of one chunk of a chunked dataset (HDF5 allocates a whole chunk to read any
  // part of it); 0 for contiguous and compact datasets.
  int64_t chunk_bytes = 0;
  std::string dtype_name() const;  // "float32", "uint8", "int64", ...
  // Bytes of the whole dataset in memory at `bytes_per_element`; -1 beyond 2^62.
  int64_t bytes(int64_t bytes_per_element) const;
};

// Product of `dims` times `element_size`; -1 when a dimension is negative or the
// product exceeds 2^62 (so callers compare against limits without overflow).
int64_t checked_bytes(const std::vector<int64_t>& dims, int64_t element_size);

class File {
 public:
  File() = default;
  File(File&&) = default;
  File& operator=(File&&) = default;
  // Closes the file (timed by the read watchdog, like every read: closing reads too).
  ~File();
  // Opens an existing file read-only (or read-write for in-place patching).
  static File open(const std::string& path, bool writable = false);
  // Creates (truncates) a file.
  static File create(const std::string& path);
  const std::string& path() const { return path_; }
  hid_t id() const { return id_.get(); }
  void flush();

 private:
  std::string path_;
  Id id_;
};

// Before a read-only open, every file's structure is walked once per content (device,
// inode, size, modification time) in a forked child, so a crash or hang inside HDF5
// becomes one error. `copy`, a byte copy of `original` made just now, shares the
// walk of the original's content if the original has not changed since.
void note_probed_copy(const std::string& original, const std::string& copy);

// Object helpers. `where` is a path inside the file ("/" for the root).
bool exists(const File& f, const std::string& where);
bool is_group(const File& f, const std::string& where);
bool is_dataset(const File& f, const std::string& where);
bool has_attr(const File& f, const std::string& where, const std::string& name);
std::vector<std::string> list_children(const File& f, const std::string& where);

// A string attribute (fixed- or variable-length, scalar or one element).
std::string read_string_attr(const File& f, const std::string& where, const std::string& name,
                             size_t max_bytes);
// A list of strings; a zero-length numeric array (Keras' "no weights") reads as empty.
std::vector<std::string> read_string_list_attr(const File& f, const std::string& where,
                                               const std::string& name, size_t max_items);

DatasetInfo dataset_info(const File& f, const std::string& where);
// Reads a whole float16/32/64 dataset converted to float32 (HDF5 converts the dtype);
// refuses one whose float32 copy or whose chunks exceed `max_bytes`.
std::vector<float> read_floats(const File& f, const std::string& where, int64_t max_bytes);
// Reads rows [start, start + count) of the first dimension, converted to `mem_type`.
void read_rows(const File& f, const std::string& where, int64_t start, int64_t count,
               hid_t mem_type, void* out);
// Byte offset of a contiguous dataset's raw data in the file; -1 when it has none
// (chunked, compact or not yet allocated).
int64_t raw_data_offset(const File& f, const std::string& where);
// Overwrites a whole float dataset in place (shape must already match).
void write_floats(File& f, const std::string& where, const std::vector<float>& values);

// Writers used to create files from scratch.
void create_group(File& f, const std::string& where);
void write_string_attr(File& f, const std::string& where, const std::string& name,
                       const std::string& value, bool variable_length);
// Fixed-length, null-padded string array (as h5py writes numpy bytes arrays).
void write_string_list_attr(File& f, const std::string& where, const std::string& name,
                            const std::vector<std::string>& values);
void write_float_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const float* values);
void write_uint8_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const uint8_t* values);
void write_int64_dataset(File& f, const std::string& where, const std::vector<int64_t>& dims,
                         const int64_t* values);

}  // namespace bdguard::h5
