// NumPy arrays as tensors, JSON documents as Python objects, progress callbacks.
#include <ATen/ATen.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "bdguard/error.h"
#include "bindings.h"

namespace bdguard::python {

PyModel PyModel::derived(Model m) const {
  PyModel out{std::move(m), name, settings, layout, source_file};
  return out;
}

py::array as_array(const py::handle& obj) {
  py::object o = py::reinterpret_borrow<py::object>(obj);
  // A torch tensor (without importing torch): detached and on the CPU, then its NumPy
  // view.
  if (py::hasattr(o, "detach") && py::hasattr(o, "numpy") && py::hasattr(o, "cpu")) {
    o = o.attr("detach")().attr("cpu")().attr("numpy")();
  }
  return py::module_::import("numpy").attr("asarray")(o);
}

namespace {

Shape dims_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// The array's memory as a tensor of `dtype`, without a copy when its strides are whole,
// non-negative element steps (any C, F or sliced layout); else a contiguous copy.
at::Tensor view_of(py::array a, at::ScalarType dtype) {
  const auto item = static_cast<py::ssize_t>(a.itemsize());
  bool viewable = true;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) < 0 || a.strides(d) % item != 0) viewable = false;
  }
  if (!viewable) a = py::module_::import("numpy").attr("ascontiguousarray")(a);
  std::vector<int64_t> sizes(a.shape(), a.shape() + a.ndim()), strides;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) strides.push_back(a.strides(d) / item);
  return at::from_blob(const_cast<void*>(a.data()), sizes, strides, at::TensorOptions(dtype));
}

}  // namespace

at::Tensor image_tensor(const py::array& a, const PyModel& pm, const std::string& name) {
  const Model& m = pm.model;
  const Shape input = m.input_shape();
  const Shape dims = dims_of(a);
  const std::string kind = py::str(a.dtype()).cast<std::string>();
  at::Tensor x;
  if (kind == "uint8") {
    x = view_of(a, at::kByte);
  } else if (kind == "float32") {
    x = view_of(a, at::kFloat);
  } else if (kind == "float64") {
    x = view_of(a, at::kDouble).to(at::kFloat);
  } else if (kind == "float16") {
    x = view_of(a, at::kHalf).to(at::kFloat);
  } else {
    fail<FormatError>(name, "images", "uint8 or float pixels", kind);
  }
  if (dims.empty() || dims[0] < 1) {
    fail<ShapeMismatch>(name, "images", "at least one image", shape_str(dims));
  }
  if (input.size() != 3) {  // a model on vectors: (N, F)
    Shape per(dims.begin() + 1, dims.end());
    if (per != input) {
      fail<ShapeMismatch>(name, "images", "(N, " + shape_str(input).substr(1), shape_str(dims));
    }
  } else {
    const int64_t C = input[0], H = input[1], W = input[2];
    const Shape nchw{C, H, W}, nhwc{H, W, C};
    Shape per(dims.begin() + 1, dims.end());
    if (per.size() == 2 && C == 1) {  // (N, H, W): one channel
      per = {1, per[0], per[1]};
      x = x.unsqueeze(1);
    }
    Layout layout = pm.layout;
    if (layout == Layout::kAuto) {
      if (per == nchw) {
        layout = Layout::kNCHW;
      } else if (per == nhwc) {
        layout = Layout::kNHWC;
      } else {
        fail<ShapeMismatch>(name, "images",
                            "(N, " + std::to_string(C) + ", " + std::to_string(H) + ", " +
                                std::to_string(W) + ") or (N, " + std::to_string(H) + ", " +
                                std::to_string(W) + ", " + std::to_string(C) +
                                ") for the model's input",
                            shape_str(dims));
      }
    } else if (per != (layout == Layout::kNCHW ? nchw : nhwc)) {
      fail<ShapeMismatch>(
          name, "images",
          "(N" + shape_str(layout == Layout::kNCHW ? nchw : nhwc).substr(1) + " per layout",
          shape_str(dims));
    }
    // NHWC: a channels-last view (N, C, H, W), the layout the convolutions run in.
    if (layout == Layout::kNHWC && per.size() == 3 && dims.size() == 4) {
      x = x.permute({0, 3, 1, 2});
    }
  }
  if (x.is_floating_point() && !at::isfinite(x).all().item<bool>()) {
    fail<FormatError>(name, "images", "finite pixel values", "NaN or Inf");
  }
  return x;
}

at::Tensor float_images(const py::array& a, const PyModel& m, const std::string& name) {
  return image_tensor(a, m, name).to(at::kFloat);
}

at::Tensor label_tensor(const py::handle& obj, int64_t n, int64_t num_classes,
                        const std::string& name) {
  at::Tensor y;
  // One int (Python's or NumPy's; arrays and tensors have __index__ too, and __len__).
  if (py::isinstance<py::int_>(obj) ||
      (py::hasattr(obj, "__index__") && !py::hasattr(obj, "__len__"))) {
    y = at::full({n}, obj.cast<int64_t>(), at::kLong);
  } else {
    py::array a = as_array(obj);
    const std::string kind = py::str(a.dtype()).cast<std::string>();
    a = py::module_::import("numpy").attr("ascontiguousarray")(a, "float64");
    if (a.ndim() != 1 && !(a.ndim() == 2 && a.shape(1) == 1)) {
      fail<ShapeMismatch>(name, "labels", "(" + std::to_string(n) + ",) to match the images",
                          shape_str(dims_of(a)));
    }
    if (a.shape(0) != n) {
      fail<ShapeMismatch>(name, "labels", "(" + std::to_string(n) + ",) to match the images",
                          shape_str(dims_of(a)));
    }
    const auto* v = static_cast<const double*>(a.data());
    y = at::empty({n}, at::kLong);
    auto* out = y.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int64_t>(v[i]);
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i]) || v[i] != std::floor(v[i]) || v[i] < 0 ||
          v[i] >= static_cast<double>(num_classes)) {
        char text[32];
        std::snprintf(text, sizeof text, "%.17g", v[i]);
        fail(name, "label[" + std::to_string(i) + "]",
             "a class in [0, " + std::to_string(num_classes) + ")", text);
      }
    }
    return y;
  }
  const int64_t v = y.numel() ? y[0].item<int64_t>() : 0;
  if (v < 0 || v >= num_classes) {
    fail(name, "label", "a class in [0, " + std::to_string(num_classes) + ")", std::to_string(v));
  }
  return y;
}

TensorData tensor_data(const py::handle& images, const py::handle& labels, const PyModel& m,
                       const std::string& name) {
  TensorData d;
  d.images = image_tensor(as_array(images), m, name);
  d.labels = label_tensor(labels, d.images.size(0), m.model.num_classes(), name);
  return d;
}

TensorData pair_data(const py::handle& pair, const PyModel& m, const std::string& name) {
  if (!py::isinstance<py::tuple>(pair) && !py::isinstance<py::list>(pair)) {
    fail<InvalidArgument>(name, "", "a pair (images, labels)",
                          py::str(py::type::handle_of(pair).attr("__name__")));
  }
  py::sequence s = py::reinterpret_borrow<py::sequence>(pair);
  if (s.size() != 2) {
    fail<InvalidArgument>(name, "", "a pair (images, labels)", std::to_string(s.size()) + " items");
  }
  return tensor_data(s[0], s[1], m, name);
}

py::array to_numpy(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  switch (c.scalar_type()) {
    case at::kFloat:
      return py::array_t<float>(shape, c.data_ptr<float>());
    case at::kDouble:
      return py::array_t<double>(shape, c.data_ptr<double>());
    case at::kLong:
      return py::array_t<int64_t>(shape, c.data_ptr<int64_t>());
    default:
      return py::array_t<float>(shape, c.to(at::kFloat).contiguous().data_ptr<float>());
  }
}

py::object to_python(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      py::list out;
      for (const auto& e : j) out.append(to_python(e));
      return out;
    }
    case nlohmann::json::value_t::object: {
      py::dict out;
      for (const auto& [k, v] : j.items()) out[py::str(k)] = to_python(v);
      return out;
    }
    default:
      return py::none();
  }
}

nlohmann::json to_json_value(const py::handle& obj, const std::string& name) {
  if (obj.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  if (py::isinstance<py::dict>(obj)) {
    nlohmann::json out = nlohmann::json::object();
    for (auto [k, v] : py::reinterpret_borrow<py::dict>(obj)) {
      const std::string key = py::str(k);
      out[key] = to_json_value(v, name + "." + key);
    }
    return out;
  }
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj) ||
      py::isinstance<py::array>(obj)) {
    nlohmann::json out = nlohmann::json::array();
    for (auto v : py::reinterpret_borrow<py::iterable>(obj)) out.push_back(to_json_value(v, name));
    return out;
  }
  if (py::hasattr(obj, "__index__")) return obj.cast<int64_t>();  // int, numpy.int64
  if (py::hasattr(obj, "__float__"))
    return py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
  fail<InvalidArgument>(name, "", "a number, string, bool, list or dict",
                        py::str(py::type::handle_of(obj).attr("__name__")));
}

nlohmann::json kwargs_json(const py::kwargs& kw) {
  nlohmann::json out = nlohmann::json::object();
  for (auto [k, v] : kw) {
    const std::string key = py::str(k);
    out[key] = to_json_value(v, key);
  }
  return out;
}

Progress::Progress(py::object callback, std::string stage)
    : state_(std::make_shared<State>(State{std::move(callback), std::move(stage)})) {}

ProgressFn Progress::fn() {
  if (state_->callback.is_none()) return {};
  auto s = state_;
  return [s](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    s->callback(s->stage, done, total);
  };
}

std::function<void(const std::string&)> Progress::stage_fn() {
  auto s = state_;
  return [s](const std::string& stage) {
    py::gil_scoped_acquire gil;
    s->stage = stage;
  };
}

TrainProgressFn Progress::train_fn() {
  if (state_->callback.is_none()) return {};
  auto s = state_;
  return [s](const TrainProgress& p) {
    py::gil_scoped_acquire gil;
    s->callback(s->stage + " epoch " + std::to_string(p.epoch), p.step, p.steps);
  };
}

}  // namespace bdguard::python
