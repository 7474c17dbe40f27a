// bdguard.load and bdguard.Model: predict, evaluate, summary, save; bdguard.read_data.
#include <ATen/ATen.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bindings.h"

namespace bdguard::python {
namespace {

// `e`, the same type, with every `from` in its message replaced by `to`.
[[noreturn]] void rethrow_renamed(const std::exception_ptr& e, const std::string& from,
                                  const std::string& to) {
  auto renamed = [&](const std::exception& x) {
    std::string s = x.what();
    for (size_t at = s.find(from); !from.empty() && at != std::string::npos;
         at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
    return s;
  };
  try {
    std::rethrow_exception(e);
  } catch (const FormatError& x) {
    throw FormatError(renamed(x));
  } catch (const ShapeMismatch& x) {
    throw ShapeMismatch(renamed(x));
  } catch (const UnsupportedLayer& x) {
    throw UnsupportedLayer(renamed(x));
  } catch (const LimitExceeded& x) {
    throw LimitExceeded(renamed(x));
  } catch (const IoError& x) {
    throw IoError(renamed(x));
  } catch (const InvalidArgument& x) {
    throw InvalidArgument(renamed(x));
  } catch (const Error& x) {
    throw Error(renamed(x));
  }
}

std::vector<double> number_list(const py::handle& v, const char* name) {
  std::vector<double> out;
  if (v.is_none()) return out;
  if (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) return {v.cast<double>()};
  for (auto x : py::reinterpret_borrow<py::iterable>(v)) out.push_back(x.cast<double>());
  if (out.size() > 64) {
    fail<InvalidArgument>(name, "", "at most 64 values", std::to_string(out.size()));
  }
  return out;
}

// The bytes of a model exported to memory, in a temporary file that lives as long as
// the models read from it.
std::shared_ptr<TempFileGuard> temp_model_file(const std::string& bytes) {
  std::string path = (std::filesystem::temp_directory_path() / "bdguard-model-XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) fail<IoError>(path, "", "a writable temporary folder", std::strerror(errno));
  auto guard = std::make_shared<TempFileGuard>(path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      fail<IoError>(path, "", "the model's bytes written", why);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return guard;
}

PyModel load(const py::object& source, const py::object& arch, const py::object& arch_from,
             double input_scale, const py::object& mean, const py::object& std,
             const std::string& layout, int64_t max_tensor_bytes, int64_t max_model_bytes) {
  PyModel pm;
  LoadOptions lo;
  lo.preprocess.scale = input_scale;
  lo.preprocess.mean = number_list(mean, "mean");
  lo.preprocess.std = number_list(std, "std");
  lo.max_tensor_bytes = max_tensor_bytes;
  lo.max_model_bytes = max_model_bytes;
  pm.layout = parse_layout(layout);
  ArchSource as;
  if (!arch.is_none()) as.builtin = arch.cast<std::string>();
  if (!arch_from.is_none()) as.file = py::str(arch_from);
  if (!as.builtin.empty() && !as.file.empty()) {
    fail<InvalidArgument>("arch_from", "", "arch or arch_from, not both", "both");
  }
  pm.settings = {
      {"arch", as.builtin.empty() ? (as.file.empty() ? nlohmann::json() : nlohmann::json(as.file))
                                  : nlohmann::json(as.builtin)},
      {"input_scale", lo.preprocess.scale},
      {"mean", lo.preprocess.mean},
      {"std", lo.preprocess.std}};
  std::string path;
  if (py::isinstance<py::bytes>(source) || py::isinstance<py::bytearray>(source) ||
      py::isinstance<py::memoryview>(source) || py::hasattr(source, "getvalue")) {
    // bytes, or a BytesIO (torch.onnx.export's target)
    py::object b = py::hasattr(source, "getvalue") ? source.attr("getvalue")() : source;
    const std::string bytes = py::bytes(py::module_::import("builtins").attr("bytes")(b));
    if (static_cast<int64_t>(bytes.size()) > max_model_bytes) {
      fail<LimitExceeded>("<bytes>", "", "at most " + std::to_string(max_model_bytes) + " bytes",
                          std::to_string(bytes.size()) + " bytes");
    }
    pm.source_file = temp_model_file(bytes);
    pm.name = "<bytes>";
    path = pm.source_file->path();
  } else {
    path = py::str(source);  // str or os.PathLike
    if (py::hasattr(source, "__fspath__")) path = source.attr("__fspath__")().cast<std::string>();
    pm.name = path;
  }
  try {
    pm.model = without_gil([&] { return load_model(path, as, lo); });
  } catch (const Error&) {
    if (!pm.source_file) throw;
    rethrow_renamed(std::current_exception(), path, pm.name);
  }
  return pm;
}

py::tuple predict(const PyModel& pm, const py::object& x, int64_t batch) {
  py::array a = as_array(x);
  const at::Tensor images = image_tensor(a, pm, "x");
  at::Tensor probs = without_gil([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (int64_t s = 0; s < images.size(0); s += batch) {
      const at::Tensor chunk = images.narrow(0, s, std::min(batch, images.size(0) - s));
      parts.push_back(pm.model.probabilities(chunk.to(at::kFloat)));
    }
    return at::cat(parts).to(at::kFloat);
  });
  return py::make_tuple(to_numpy(probs.argmax(1)), to_numpy(probs));
}

// bdguard eval --json.
py::object evaluate(const PyModel& pm, const py::object& x, const py::object& y,
                    const py::object& x_poisoned, const py::object& y_poisoned, int64_t batch) {
  py::array a = as_array(x);
  const TensorData clean = tensor_data(a, y, pm, "x");
  std::optional<TensorData> bd;
  py::array pa;
  if (!x_poisoned.is_none()) {
    if (y_poisoned.is_none()) {
      fail<InvalidArgument>("y_poisoned", "", "the poisoned images' labels (or the target)",
                            "none");
    }
    pa = as_array(x_poisoned);
    bd = tensor_data(pa, y_poisoned, pm, "x_poisoned");
  }
  const nlohmann::json doc = without_gil([&] {
    nlohmann::json d = {{"clean_accuracy", accuracy(pm.model, clean, batch)},
                        {"n_clean", clean.size()}};
    if (bd) {
      d["attack_success_rate"] = accuracy(pm.model, *bd, batch);
      d["n_poisoned"] = bd->size();
    } else {
      d["attack_success_rate"] = nullptr;
      d["n_poisoned"] = 0;
    }
    return d;
  });
  return to_python(doc);
}

// bdguard inspect --json.
py::object summary(const PyModel& pm) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& r : summarize_layers(pm.model)) {
    nlohmann::json shape = nlohmann::json::array();
    for (int64_t d : r.shape) shape.push_back(d < 0 ? nlohmann::json(nullptr) : nlohmann::json(d));
    nlohmann::json entry = {
        {"name", r.name}, {"class", r.cls}, {"output_shape", shape}, {"params", r.params}};
    if (r.prunable) {
      entry["zero_channels"] = r.pruned;
      entry["zero_channels_kind"] = r.pruned_kind;
    }
    layers.push_back(entry);
  }
  return to_python({{"format", format_name(pm.model.format)}, {"layers", layers}});
}

void save(const PyModel& pm, const py::object& path_obj) {
  const std::string path = py::hasattr(path_obj, "__fspath__")
                               ? path_obj.attr("__fspath__")().cast<std::string>()
                               : path_obj.cast<std::string>();
  without_gil([&] {
    check_output_path(pm.model, path);
    save_model(pm.model, path);
    return 0;
  });
}

py::tuple read_data(const std::string& path, const PyModel& pm) {
  DataOptions d;
  d.layout = pm.layout;
  d.num_classes = pm.model.num_classes();
  TensorData t =
      without_gil([&] { return read_tensor_data(LabDataset(path, pm.model.input_shape(), d)); });
  return py::make_tuple(to_numpy(t.images), to_numpy(t.labels));
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", "A model bdguard read (Keras HDF5 or ONNX): see bdguard.load")
      .def("predict", &predict, py::arg("x"), py::arg("batch") = kDefaultBatch,
           "(labels, probabilities) of images x: NumPy uint8 or float32, NCHW or NHWC")
      .def("evaluate", &evaluate, py::arg("x"), py::arg("y"), py::arg("x_poisoned") = py::none(),
           py::arg("y_poisoned") = py::none(), py::arg("batch") = kDefaultBatch,
           "clean accuracy (and attack success rate on poisoned images): bdguard eval --json")
      .def("summary", &summary, "layers, shapes, parameters: bdguard inspect --json")
      .def("save", &save, py::arg("path"),
           "write the model in the format it was read in (.h5 or .onnx)")
      .def_property_readonly("input_shape", [](const PyModel& p) { return p.model.input_shape(); })
      .def_property_readonly("num_classes", [](const PyModel& p) { return p.model.num_classes(); })
      .def_property_readonly("format", [](const PyModel& p) { return format_name(p.model.format); })
      .def_property_readonly("extension", [](const PyModel& p) { return model_extension(p.model); })
      .def_property_readonly("source", [](const PyModel& p) { return p.name; })
      .def("__repr__", [](const PyModel& p) {
        return "<bdguard.Model " + p.name + " (" + format_name(p.model.format) + ", input " +
               shape_str(p.model.input_shape()) + ", " + std::to_string(p.model.num_classes()) +
               " classes)>";
      });
  m.def("load", &load, py::arg("source"), py::kw_only(), py::arg("arch") = py::none(),
        py::arg("arch_from") = py::none(), py::arg("input_scale") = 1.0,
        py::arg("mean") = py::none(), py::arg("std") = py::none(), py::arg("layout") = "auto",
        py::arg("max_tensor_bytes") = int64_t{2} << 30,
        py::arg("max_model_bytes") = int64_t{2} << 30,
        "Read a Keras .h5 or ONNX model from a path, bytes or a BytesIO");
  m.def("read_data", &read_data, py::arg("path"), py::arg("model"),
        "(images NCHW float32, labels int64) of a lab HDF5 data file, checked against the model");
}

}  // namespace bdguard::python
