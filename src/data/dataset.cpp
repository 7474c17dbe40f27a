#include "bdguard/dataset.h"

#include <ATen/ATen.h>

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

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
  require_regular_file(path);
  h5::File f = h5::File::open(path);
  h5::DatasetInfo data = h5::dataset_info(f, "/data");
  h5::DatasetInfo label = h5::dataset_info(f, "/label");
  const bool float_ok =
      data.kind == h5::Kind::kFloat &&
      (data.element_size == 2 || data.element_size == 4 || data.element_size == 8);
  const bool uint8_ok = data.kind == h5::Kind::kUInt && data.element_size == 1;
  if (!float_ok && !uint8_ok)
    fail(path, "data", "float16/32/64 or uint8 pixels", data.dtype_name());
  if (data.dims.size() != 4 && !(data.dims.size() == 3 && input_shape[0] == 1)) {
    fail<ShapeMismatch>(path, "data",
                        "rank 4 (N, C, H, W) or (N, H, W, C)" +
                            std::string(input_shape[0] == 1 ? ", or rank 3 (N, H, W)" : ""),
                        "rank " + std::to_string(data.dims.size()) + " " + shape_str(data.dims));
  }
  if (data.dims[0] < 1) {
    fail<ShapeMismatch>(path, "data", "at least one image", shape_str(data.dims));
  }
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  const Shape nchw{C, H, W}, nhwc{H, W, C};
  Shape per_image(data.dims.begin() + (data.dims.empty() ? 0 : 1), data.dims.end());
  if (per_image.size() == 2 && C == 1) per_image = {1, per_image[0], per_image[1]};
  Layout want = options.layout;
  if (want == Layout::kAuto) {
    if (per_image == nchw) {
      layout_ = Layout::kNCHW;
    } else if (per_image == nhwc) {
      layout_ = Layout::kNHWC;
    } else {
      fail<ShapeMismatch>(path, "data",
                          "(N, " + std::to_string(C) + ", " + std::to_string(H) + ", " +
                              std::to_string(W) + ") or (N, " + std::to_string(H) + ", " +
                              std::to_string(W) + ", " + std::to_string(C) +
                              ") for the model's input",
                          shape_str(data.dims));
    }
  } else {
    layout_ = want;
    const Shape& expect = want == Layout::kNCHW ? nchw : nhwc;
    if (per_image != expect) {
      fail<ShapeMismatch>(path, "data", "(N" + shape_str(expect).substr(0) + ") per --layout",
                          shape_str(data.dims));
    }
  }
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
  labels_.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    double v = raw[i];
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 ||
        (options.num_classes > 0 && v >= static_cast<double>(options.num_classes))) {
      std::string range = options.num_classes > 0
                              ? "[0, " + std::to_string(options.num_classes) + ")"
                              : "a non-negative whole number";
      fail(path, "label[" + std::to_string(i) + "]", "a class in " + range, number_str(v));
    }
    labels_[i] = static_cast<int64_t>(v);
  }
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
