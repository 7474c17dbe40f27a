// Writing HDF5 files: new files, groups and datasets, and floats into a dataset.
#include "bdguard/error.h"
#include "h5.h"
#include "hdf5/internal.h"

namespace bdguard::h5 {

using namespace internal;

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
