// Input data: the CSAW-HackML lab's HDF5 data files, the other data formats of
// data_formats.h (image folders, .npz, .npy, IDX: recognised by content, read whole into
// memory and checked the same way), and image files.
//
// A lab data file holds `data` (N, C, H, W) channels-first or (N, H, W, C)
// channels-last, float or uint8 pixels, and `label` (N), whole numbers stored as
// float or integer. Files are read in row chunks: memory grows with the batch, not
// with N. Everything is checked against the model's input before use.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bdguard/data_formats.h"
#include "bdguard/model.h"

namespace bdguard {

enum class Layout { kAuto, kNCHW, kNHWC };
Layout parse_layout(const std::string& s);  // "auto", "nchw", "nhwc"

struct DataOptions {
  Layout layout = Layout::kAuto;
  // Labels must lie in [0, num_classes) when num_classes > 0.
  int64_t num_classes = -1;
  int64_t max_tensor_bytes = int64_t{2} << 30;
  // The labels of .npy (and IDX) images: "LABELS" (for every such input) or
  // "IMAGES=LABELS" (for that input), as --labels gives them.
  std::vector<std::string> labels;
  // Image folders: resize images of another size to the model's input (else refused).
  bool resize = false;
  int64_t max_files = kDefaultMaxDataFiles;  // image folders: at most this many images
};

struct Batch {
  at::Tensor images;  // (n, C, H, W) float32, raw pixel values
  at::Tensor labels;  // (n) int64
};

class LabDataset {
 public:
  // `input_shape` is the model's input without the batch: (C, H, W). The file's
  // layout is the one that matches it (options.layout forces one).
  LabDataset(const std::string& path, const Shape& input_shape, const DataOptions& options = {});
  // Images already in memory ((N, C, H, W), any float or uint8 dtype; labels (N)),
  // named `name` in messages: for code that runs on a part of a file (defend.h).
  static LabDataset in_memory(const std::string& name, const at::Tensor& images,
                              const at::Tensor& labels);
  int64_t size() const { return n_; }
  const std::string& path() const { return path_; }
  Layout layout() const { return layout_; }
  DataFormat format() const { return format_; }
  const std::vector<int64_t>& labels() const { return labels_; }
  // Rows [start, start + count).
  // NHWC files give channels-last views (N, C, H, W strided NHWC), not copies.
  Batch read(int64_t start, int64_t count) const;
  // Every row (for data sets a command keeps in memory by design).
  Batch read_all() const { return read(0, n_); }

 private:
  std::string path_;
  Shape input_shape_;
  Layout layout_ = Layout::kNCHW;
  int64_t n_ = 0;
  int64_t max_tensor_bytes_ = 0;
  std::vector<int64_t> labels_;
  at::Tensor images_;  // in memory (float32 NCHW); undefined for a file
  DataFormat format_ = DataFormat::kLabHdf5;
  LabDataset() = default;
  void init_from_raw(const DataOptions& options);
};

// Writes a lab-format file: `data` (N, C, H, W) float32 and `label` (N) int64.
void write_lab_dataset(const std::string& path, const at::Tensor& images_nchw,
                       const at::Tensor& labels);

// Decodes a PNG/JPEG/BMP/... file to a (1, C, H, W) float32 tensor of raw 0..255
// values: RGB for C = 3, grayscale for C = 1. Its size must match `input_shape`
// (C, H, W).
at::Tensor load_image(const std::string& path, const Shape& input_shape);
// Writes a (C, H, W) float32 0..255 tensor as PNG (used by the demo and reports).
void write_png(const std::string& path, const at::Tensor& chw);

}  // namespace bdguard

namespace bdguard {

// What `bdguard data inspect` prints: what bdguard sees in a data path, without a model.
struct DataSummary {
  DataFormat format = DataFormat::kLabHdf5;
  int64_t size = 0;
  Shape shape;         // of the images array as stored, (N, ...)
  std::string layout;  // "NCHW", "NHWC" or "NHW" (rank 3: one channel)
  std::string dtype;   // of the pixels as stored
  double min = 0, max = 0;
  std::vector<std::pair<int64_t, int64_t>> histogram;  // (label, count), by label
};
// `layout` kAuto: guessed from the shape (the axis of 1 or 3 channels; NCHW when both
// or neither could be). HDF5 files are read in batches, the other formats whole.
DataSummary inspect_data(const std::string& path, const DataOptions& options);
// `bdguard data take`: images [skip, skip + count) of `path` (count < 0: to the end; fewer
// where the data ends first), read as every command reads them (layout as inspect_data
// finds it), written to `out` as a lab HDF5 file (float32 NCHW, raw pixel values, int64
// labels). Returns how many were written.
int64_t take_data(const std::string& path, const DataOptions& options, int64_t skip, int64_t count,
                  const std::string& out);

}  // namespace bdguard
