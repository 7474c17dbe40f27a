// bdguard data inspect: what a data path holds, read as LabDataset reads it.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "bdguard/data_formats.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "hdf5/h5.h"

namespace bdguard {
namespace {

bool channels(int64_t d) { return d == 1 || d == 3; }

// The layout named or guessed for `dims`, and the model input (C, H, W) it implies.
std::string guess_layout(const std::string& path, const Shape& dims, Layout want, Shape& chw) {
  if (dims.size() == 3) {
    chw = {1, dims[1], dims[2]};
    return "NHW";
  }
  if (dims.size() != 4) {
    fail<ShapeMismatch>(path, "data", "rank 4 (N, C, H, W) or (N, H, W, C), or rank 3 (N, H, W)",
                        shape_str(dims));
  }
  const bool nhwc =
      want == Layout::kNHWC || (want == Layout::kAuto && channels(dims[3]) && !channels(dims[1]));
  chw = nhwc ? Shape{dims[3], dims[1], dims[2]} : Shape{dims[1], dims[2], dims[3]};
  return nhwc ? "NHWC" : "NCHW";
}

void histogram_of(const std::vector<int64_t>& labels, DataSummary& s) {
  std::map<int64_t, int64_t> counts;
  for (int64_t l : labels) ++counts[l];
  s.histogram.assign(counts.begin(), counts.end());
}

// The format, shape as stored, dtype and layout of `path` (into `s`), and the model
// input (C, H, W) they imply; `raw` gets the data of a format read whole.
Shape describe(const std::string& path, const DataOptions& options, DataSummary& s, RawData& raw) {
  s.format = detect_data_format(path);
  Shape chw;
  if (s.format == DataFormat::kLabHdf5) {
    {
      h5::File f = h5::File::open(path);
      h5::DatasetInfo info = h5::dataset_info(f, "/data");
      s.shape = info.dims;
      s.dtype = info.dtype_name();
    }
    s.layout = guess_layout(path, s.shape, options.layout, chw);
    return chw;
  }
  ReadOptions ro;
  ro.resize = options.resize;
  ro.limits.max_bytes = options.max_tensor_bytes;
  ro.limits.max_files = options.max_files;
  ro.labels = labels_file_for(path, options.labels);
  raw = read_raw_data(path, ro);
  s.shape = Shape(raw.images.sizes().begin(), raw.images.sizes().end());
  s.dtype = raw.dtype;
  if (raw.channels_last_hint) {
    s.layout = "NHWC";
    chw = {s.shape[3], s.shape[1], s.shape[2]};
  } else {
    s.layout = guess_layout(path, s.shape, options.layout, chw);
  }
  return chw;
}

// `path` as a command reads it, with the layout `s` names.
LabDataset open_as(const std::string& path, const DataOptions& options, const DataSummary& s,
                   const Shape& chw) {
  DataOptions d = options;
  d.layout = s.layout == "NHWC"   ? Layout::kNHWC
             : s.layout == "NCHW" ? Layout::kNCHW
                                  : Layout::kAuto;
  return LabDataset(path, chw, d);
}

}  // namespace

DataSummary inspect_data(const std::string& path, const DataOptions& options) {
  DataSummary s;
  RawData raw;
  const Shape chw = describe(path, options, s, raw);
  // The same checks as when a command reads it (finite pixels, whole-number labels).
  LabDataset ds = open_as(path, options, s, chw);
  s.size = ds.size();
  if (s.format == DataFormat::kLabHdf5) {
    constexpr int64_t kBatch = 1024;
    for (int64_t start = 0; start < ds.size(); start += kBatch) {
      at::Tensor x = ds.read(start, std::min(kBatch, ds.size() - start)).images;
      const double lo = x.min().item<double>(), hi = x.max().item<double>();
      s.min = start == 0 ? lo : std::min(s.min, lo);
      s.max = start == 0 ? hi : std::max(s.max, hi);
    }
  } else if (s.size > 0) {
    s.min = raw.images.min().item<double>();
    s.max = raw.images.max().item<double>();
  }
  histogram_of(ds.labels(), s);
  return s;
}

int64_t take_data(const std::string& path, const DataOptions& options, int64_t skip, int64_t count,
                  const std::string& out) {
  if (skip < 0) fail<InvalidArgument>(path, "--skip", "0 or more", std::to_string(skip));
  DataSummary s;
  RawData raw;
  const Shape chw = describe(path, options, s, raw);
  raw = RawData{};  // read again below, with the checks every command makes
  LabDataset ds = open_as(path, options, s, chw);
  if (skip > ds.size()) {
    fail<InvalidArgument>(path, "--skip", "at most the " + std::to_string(ds.size()) + " images",
                          std::to_string(skip));
  }
  const int64_t n = count < 0 ? ds.size() - skip : std::min(count, ds.size() - skip);
  const Batch b = ds.read(skip, n);
  write_lab_dataset(out, b.images.contiguous(), b.labels);
  return n;
}

}  // namespace bdguard
