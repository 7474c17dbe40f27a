// The data formats bdguard reads besides the lab HDF5 files, and how a path's format is
// recognised.
//
// Every reader treats its input as hostile: sizes are checked against DataLimits before
// anything is allocated, a .npy header is parsed strictly (no pickled objects), a .npz
// entry is checked (name, size, compression ratio) before it is inflated, and an image
// folder is listed and bounded before any image is decoded.
//
// A reader returns RawData: the images as stored (uint8 or float, shape (N, ...)) and the
// labels as stored (any integer or float dtype). LabDataset (dataset.h) matches them to a
// model's input and checks the labels, as it does for an HDF5 file.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

enum class DataFormat { kLabHdf5, kIdx, kNpz, kNpy, kImageFolder, kImageList };
// "hdf5", "idx", "npz", "npy", "image-folder", "image-list".
std::string data_format_name(DataFormat f);

// By content: a folder is an image folder (a flat one when it holds labels.csv); a file
// is .npz (zip signature), .npy (\x93NUMPY) or IDX (magic 0x00000803, plain or gzip);
// anything else is read as lab HDF5 (whose reader says what is wrong with it).
DataFormat detect_data_format(const std::string& path);

constexpr int64_t kDefaultMaxDataFiles = 1'000'000;
constexpr int64_t kMaxNpyHeaderBytes = 65536;
constexpr int64_t kMaxZipEntries = 1024;
// Deflate cannot compress better than about 1032:1: an entry that claims more lies
// about its size.
constexpr int64_t kMaxZipRatio = 1100;

struct DataLimits {
  int64_t max_bytes = int64_t{2} << 30;  // any one array, as stored or as float32
  int64_t max_files = kDefaultMaxDataFiles;
};

struct RawData {
  DataFormat format = DataFormat::kLabHdf5;
  at::Tensor images;                // as stored: (N, ...) uint8, float32 or float64
  at::Tensor labels;                // as stored: (N) or (N, 1)
  std::string dtype;                // of the images, as the file names it: "uint8", "float32", ...
  bool channels_last_hint = false;  // image folders: (N, H, W, C)
};

// A .npy array: the strict header, then exactly the bytes it announces.
struct NpyArray {
  std::string dtype;  // "uint8", "int64", "float32", ...
  Shape shape;
  at::Tensor data;  // of that dtype and shape
};
// `bytes` is the whole .npy content; `name` (a file, or an archive entry) is used in
// messages.
NpyArray parse_npy(const std::string& name, const std::string& bytes, const DataLimits& limits);
NpyArray read_npy_file(const std::string& path, const DataLimits& limits);
// A .npz archive's images and labels: arrays `x` and `y`, else `data` and `label`
// (other arrays are left unread). `names` lists every array in it.
struct NpzData {
  NpyArray images, labels;
  std::string images_name, labels_name;
  std::vector<std::string> names;
};
NpzData read_npz(const std::string& path, const DataLimits& limits);

// `labels` names the labels file for .npy images (and IDX); "" for the other formats.
// For image folders, `image_shape` is the model's input (C, H, W) when known (each
// image is decoded to C channels; with `resize`, resized to H x W); empty: the first
// image's channels (1 for gray, else 3) and size.
struct ReadOptions {
  std::string labels;
  Shape image_shape;
  bool resize = false;
  DataLimits limits;
};
// The labels file of `path` among --data-labels entries: "IMAGES=LABELS" naming that
// path, else the one plain "LABELS" entry ("" when none applies).
std::string labels_file_for(const std::string& path, const std::vector<std::string>& specs);
RawData read_raw_data(const std::string& path, const ReadOptions& options);

// Image folders: DIR/<class>/<image> or DIR/labels.csv with DIR/<image>.
RawData read_image_folder(const std::string& dir, const ReadOptions& options);

// A data path's SHA-256 (hex): the file's, or for a folder the SHA-256 of its listing,
// one "relative/path<TAB>sha256" line per file (sorted), so that a changed, added or
// removed image changes it. data_bytes: the file's size, or the sum over the folder.
std::string sha256_data(const std::string& path);
int64_t data_bytes(const std::string& path);

}  // namespace bdguard
