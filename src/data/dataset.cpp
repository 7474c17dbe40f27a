#include "bdguard/dataset.h"

#include <ATen/ATen.h>

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "hdf5/h5.h"

namespace bdguard {
namespace {

// "2.5", "-1", "NaN", "+Inf": a label value as a reader would write it.
std::string number_str(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out << v;
  return out.str();
}

// The layout of `dims` ((N, C, H, W), (N, H, W, C), or (N, H, W) for one channel) that
// matches the model's input (C, H, W); `want` forces one.
Layout match_layout(const std::string& path, const Shape& dims, const Shape& input_shape,
                    Layout want) {
  if (dims.size() != 4 && !(dims.size() == 3 && input_shape[0] == 1)) {
    fail<ShapeMismatch>(path, "data",
                        "rank 4 (N, C, H, W) or (N, H, W, C)" +
                            std::string(input_shape[0] == 1 ? ", or rank 3 (N, H, W)" : ""),
                        "rank " + std::to_string(dims.size()) + " " + shape_str(dims));
  }
  if (dims[0] < 1) fail<ShapeMismatch>(path, "data", "at least one image", shape_str(dims));
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  const Shape nchw{C, H, W}, nhwc{H, W, C};
  Shape per_image(dims.begin() + 1, dims.end());
  if (per_image.size() == 2 && C == 1) per_image = {1, per_image[0], per_image[1]};
  if (want == Layout::kAuto) {
    if (per_image == nchw) return Layout::kNCHW;
    if (per_image == nhwc) return Layout::kNHWC;
    fail<ShapeMismatch>(path, "data",
                        "(N, " + std::to_string(C) + ", " + std::to_string(H) + ", " +
                            std::to_string(W) + ") or (N, " + std::to_string(H) + ", " +
                            std::to_string(W) + ", " + std::to_string(C) +
                            ") for the model's input",
                        shape_str(dims));
  }
  const Shape& expect = want == Layout::kNCHW ? nchw : nhwc;
  if (per_image != expect) {
    fail<ShapeMismatch>(path, "data", "(N" + shape_str(expect).substr(0) + ") per --layout",
                        shape_str(dims));
  }
  return want;
}

// Labels as whole numbers in [0, num_classes) (num_classes <= 0: any non-negative).
std::vector<int64_t> checked_labels(const std::string& path, const std::vector<double>& raw,
                                    int64_t num_classes) {
  std::vector<int64_t> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    double v = raw[i];
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 ||
        (num_classes > 0 && v >= static_cast<double>(num_classes))) {
      std::string range = num_classes > 0 ? "[0, " + std::to_string(num_classes) + ")"
                                          : "a non-negative whole number";
      fail(path, "label[" + std::to_string(i) + "]", "a class in " + range, number_str(v));
    }
    out[i] = static_cast<int64_t>(v);
  }
  return out;
}

}  // namespace

Layout parse_layout(const std::string& s) {
  if (s == "auto") return Layout::kAuto;
  if (s == "nchw") return Layout::kNCHW;
  if (s == "nhwc") return Layout::kNHWC;
  throw InvalidArgument(describe("--layout", "", "auto, nchw or nhwc", "'" + s + "'"));
}

LabDataset::LabDataset(const std::string& path, const Shape& input_shape,
                       const DataOptions& options)
    : path_(path), input_shape_(input_shape), max_tensor_bytes_(options.max_tensor_bytes) {
  if (input_shape.size() != 3) {
    fail<ShapeMismatch>(path, "data", "a model taking images (C, H, W)",
                        "a model input of shape " + shape_str(input_shape));
  }
  format_ = detect_data_format(path);
  if (format_ != DataFormat::kLabHdf5) {
    init_from_raw(options);
    return;
  }
  h5::File f = h5::File::open(path);
  h5::DatasetInfo data = h5::dataset_info(f, "/data");
  h5::DatasetInfo label = h5::dataset_info(f, "/label");
  const bool float_ok =
      data.kind == h5::Kind::kFloat &&
      (data.element_size == 2 || data.element_size == 4 || data.element_size == 8);
  const bool uint8_ok = data.kind == h5::Kind::kUInt && data.element_size == 1;
  if (!float_ok && !uint8_ok)
    fail(path, "data", "float16/32/64 or uint8 pixels", data.dtype_name());
  layout_ = match_layout(path, data.dims, input_shape, options.layout);
  n_ = data.dims[0];
  Shape label_expect{n_};
  if (!(label.dims == label_expect || label.dims == Shape{n_, 1})) {
    fail<ShapeMismatch>(path, "label", "(" + std::to_string(n_) + ",) to match data",
                        shape_str(label.dims));
  }
  if (label.kind != h5::Kind::kFloat && label.kind != h5::Kind::kInt &&
      label.kind != h5::Kind::kUInt) {
    fail(path, "label", "integer or float labels", label.dtype_name());
  }
  // Labels are read whole (8 bytes each), data in batches, both through HDF5 chunks
  // that are allocated whole: refuse any of them over the limit before allocating.
  const int64_t label_bytes = h5::checked_bytes({n_}, 8);
  if (label_bytes < 0 || label_bytes > max_tensor_bytes_) {
    fail<LimitExceeded>(path, "label", "at most " + std::to_string(max_tensor_bytes_) + " bytes",
                        std::to_string(n_) + " labels = " + std::to_string(label_bytes) + " bytes");
  }
  for (const auto& [name, chunk_bytes] :
       {std::pair{"label", label.chunk_bytes}, std::pair{"data", data.chunk_bytes}}) {
    if (chunk_bytes > max_tensor_bytes_) {
      fail<LimitExceeded>(path, name,
                          "chunks of at most " + std::to_string(max_tensor_bytes_) + " bytes",
                          std::to_string(chunk_bytes) + "-byte chunks");
    }
  }
  std::vector<double> raw(static_cast<size_t>(n_));
  h5::read_rows(f, "/label", 0, n_, H5T_NATIVE_DOUBLE, raw.data());
  labels_ = checked_labels(path, raw, options.num_classes);
}

LabDataset LabDataset::in_memory(const std::string& name, const at::Tensor& images,
                                 const at::Tensor& labels) {
  if (images.dim() != 4 || labels.dim() != 1 || labels.size(0) != images.size(0)) {
    fail<ShapeMismatch>(name, "data", "images (N, C, H, W) and N labels",
                        shape_str(Shape(images.sizes().begin(), images.sizes().end())));
  }
  LabDataset d;
  d.path_ = name;
  d.input_shape_ = Shape(images.sizes().begin() + 1, images.sizes().end());
  d.n_ = images.size(0);
  d.max_tensor_bytes_ = INT64_MAX;
  d.images_ = images.to(at::kFloat).contiguous();
  at::Tensor l = labels.to(at::kLong).contiguous();
  d.labels_.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
  return d;
}

void LabDataset::init_from_raw(const DataOptions& options) {
  ReadOptions ro;
  ro.labels = labels_file_for(path_, options.labels);
  ro.image_shape = input_shape_;
  ro.resize = options.resize;
  ro.limits.max_bytes = max_tensor_bytes_;
  ro.limits.max_files = options.max_files;
  RawData raw = read_raw_data(path_, ro);
  const at::ScalarType t = raw.images.scalar_type();
  if (t != at::kByte && t != at::kHalf && t != at::kFloat && t != at::kDouble) {
    fail(path_, "data", "float16/32/64 or uint8 pixels", raw.dtype);
  }
  const Shape dims(raw.images.sizes().begin(), raw.images.sizes().end());
  layout_ = raw.channels_last_hint ? Layout::kNHWC
                                   : match_layout(path_, dims, input_shape_, options.layout);
  n_ = dims[0];
  const Shape label_dims(raw.labels.sizes().begin(), raw.labels.sizes().end());
  if (!(label_dims == Shape{n_} || label_dims == Shape{n_, 1})) {
    fail<ShapeMismatch>(path_, "label", "(" + std::to_string(n_) + ",) to match data",
                        shape_str(label_dims));
  }
  const int64_t C = input_shape_[0], H = input_shape_[1], W = input_shape_[2];
  const int64_t bytes = h5::checked_bytes({n_, C, H, W}, 4);
  if (bytes < 0 || bytes > max_tensor_bytes_) {
    fail<LimitExceeded>(path_, "data",
                        "at most " + std::to_string(max_tensor_bytes_) + " bytes as float32",
                        std::to_string(bytes) + " bytes");
  }
  // Kept as the file holds it, like an HDF5 file's batches: NHWC data as a channels-last
  // view (N, C, H, W) of float32 rows.
  at::Tensor x = raw.images.to(at::kFloat).contiguous();
  x = layout_ == Layout::kNHWC ? x.reshape({n_, H, W, C}).permute({0, 3, 1, 2})
                               : x.reshape({n_, C, H, W});
  if (!at::isfinite(x).all().item<bool>()) fail(path_, "data", "finite pixel values", "NaN or Inf");
  images_ = x;
  at::Tensor l = raw.labels.reshape({n_}).to(at::kDouble).contiguous();
  labels_ =
      checked_labels(path_, std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + n_),
                     options.num_classes);
}

Batch LabDataset::read(int64_t start, int64_t count) const {
  if (start < 0 || count < 0 || start + count > n_) {
    fail<InvalidArgument>(path_, "data", "rows within [0, " + std::to_string(n_) + ")",
                          std::to_string(start) + "+" + std::to_string(count));
  }
  if (images_.defined()) {
    at::Tensor y = at::empty({count}, at::kLong);
    std::copy(labels_.begin() + start, labels_.begin() + start + count, y.data_ptr<int64_t>());
    return {images_.narrow(0, start, count), y};
  }
  const int64_t C = input_shape_[0], H = input_shape_[1], W = input_shape_[2];
  const int64_t bytes = h5::checked_bytes({count, H, W, C}, 4);
  if (bytes < 0 || bytes > max_tensor_bytes_) {
    fail<LimitExceeded>(path_, "data",
                        "a batch of at most " + std::to_string(max_tensor_bytes_) + " bytes",
                        std::to_string(bytes) + " bytes");
  }
  h5::File f = h5::File::open(path_);
  at::Tensor x = layout_ == Layout::kNCHW ? at::empty({count, C, H, W}, at::kFloat)
                                          : at::empty({count, H, W, C}, at::kFloat);
  h5::read_rows(f, "/data", start, count, H5T_NATIVE_FLOAT, x.data_ptr<float>());
  // NHWC rows are already the channels-last layout the convolutions run in: a view
  // (N, C, H, W) of them is used as it is, without a copy.
  if (layout_ == Layout::kNHWC) x = x.permute({0, 3, 1, 2});
  if (!at::isfinite(x).all().item<bool>()) {
    fail(path_, "data rows " + std::to_string(start) + ".." + std::to_string(start + count - 1),
         "finite pixel values", "NaN or Inf");
  }
  at::Tensor y = at::empty({count}, at::kLong);
  std::copy(labels_.begin() + start, labels_.begin() + start + count, y.data_ptr<int64_t>());
  return {x, y};
}

void write_lab_dataset(const std::string& path, const at::Tensor& images_nchw,
                       const at::Tensor& labels) {
  at::Tensor x = images_nchw.to(at::kFloat).contiguous();
  at::Tensor y = labels.to(at::kLong).contiguous();
  std::string tmpl = path + ".tmp-XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0) fail<IoError>(path, "", "a writable folder", std::strerror(errno));
  close(fd);
  TempFileGuard guard(tmpl);
  {
    h5::File f = h5::File::create(tmpl);
    h5::write_float_dataset(f, "/data", Shape(x.sizes().begin(), x.sizes().end()),
                            x.data_ptr<float>());
    h5::write_int64_dataset(f, "/label", {y.numel()}, y.data_ptr<int64_t>());
    f.flush();
  }
  guard.commit(path);
}

}  // namespace bdguard
