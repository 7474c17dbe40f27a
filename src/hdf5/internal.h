// The helpers h5.h's functions share (internal to src/hdf5).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "h5.h"

namespace bdguard::h5::internal {

// HDF5 prints its own error stack to stderr by default; bdguard reports errors itself.
void silence_hdf5();
// `what`, with the innermost message of HDF5's error stack when there is one.
std::string found_damaged(const char* what);
// "where@attr" (or `where`), the object an error names.
std::string where_name(const std::string& where, const std::string& attr = "");
Id open_object(const File& f, const std::string& where);
// A dataset whose data lies in the file (virtual and external storage refused).
Id open_dataset(const File& f, const std::string& where);
Kind kind_of(hid_t type);
// The dimensions of a simple dataspace of rank <= 8, each below 2^40.
std::vector<int64_t> dims_of(hid_t space, const std::string& file, const std::string& obj);
int64_t element_count(const std::vector<int64_t>& dims);
// "(3, 3, 3, 4)": like bdguard::shape_str, which lives with the layers.
std::string shape_str_of(const std::vector<int64_t>& dims);
void check(herr_t status, const std::string& file, const std::string& obj, const char* what);

// Runs `read` in a forked child that sends the strings back through a pipe: a crash, a
// hang or a runaway allocation there becomes one error naming `obj` (reader_process.cpp
// says why). `what` names what is read in error messages.
std::vector<std::string> read_strings_in_child(
    const std::string& file, const std::string& obj,
    const std::function<std::vector<std::string>()>& read, size_t max_total,
    const std::string& what = "a string attribute");
// Walks the file's links and object headers in a child process first, once per content.
void probe_structure_in_child(const std::string& path);

}  // namespace bdguard::h5::internal
