// What the Python module's files share: the Model as Python holds it, NumPy arrays as
// tensors, JSON documents as Python objects, progress callbacks.
//
// Every function here that takes a Python object needs the GIL; the library calls
// between them run without it (pybind11::gil_scoped_release).
#pragma once

#include <ATen/Tensor.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/detect.h"
#include "bdguard/evaluate.h"
#include "bdguard/fileio.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard::python {

namespace py = pybind11;

// A loaded model, with what `bdguard.load` was given: the load options as the CLI's
// model flags record them ("arch", "input_scale", "mean", "std"), the data layout,
// and, for a model given as bytes, the temporary file it was read from (a Keras
// model is saved as a patched copy of it), shared by the models derived from it.
struct PyModel {
  Model model;
  std::string name;  // the path, or "<bytes>"
  nlohmann::json settings = nlohmann::json::object();
  Layout layout = Layout::kAuto;
  std::shared_ptr<TempFileGuard> source_file;

  // A defended or pruned copy: the same settings and source, another graph.
  PyModel derived(Model m) const;
};

// ---- Arrays ----------------------------------------------------------------------

// `obj` as a NumPy array: a torch tensor through .detach().cpu().numpy(), anything
// else through numpy.asarray (no copy for an array).
py::array as_array(const py::handle& obj);

// Images for `m` as an (N, C, H, W) tensor: uint8 or float32 arrays are viewed in
// place (an NHWC array as a channels-last view), other float dtypes converted to
// float32. The layout is the one whose shape matches the model's input, as the CLI
// decides it for data files (`layout` forces one). `name` names the argument in
// errors. The array must outlive the tensor.
at::Tensor image_tensor(const py::array& a, const PyModel& m, const std::string& name);
// The same as float32 (uint8 converted: a copy).
at::Tensor float_images(const py::array& a, const PyModel& m, const std::string& name);
// Labels (N) as int64: whole numbers in [0, num_classes).
at::Tensor label_tensor(const py::handle& obj, int64_t n, int64_t num_classes,
                        const std::string& name);
// Images and labels; `labels` may be one int (every image has that label: a poisoned
// set's target).
TensorData tensor_data(const py::handle& images, const py::handle& labels, const PyModel& m,
                       const std::string& name);
// An (images, labels) pair given as a tuple.
TensorData pair_data(const py::handle& pair, const PyModel& m, const std::string& name);

// A copy of `t` as a NumPy array.
py::array to_numpy(const at::Tensor& t);

// ---- JSON ------------------------------------------------------------------------

py::object to_python(const nlohmann::json& j);
// None, bool, int, float, str, lists, tuples, dicts with str keys, NumPy scalars.
nlohmann::json to_json_value(const py::handle& obj, const std::string& name);
nlohmann::json kwargs_json(const py::kwargs& kw);

// ---- Progress --------------------------------------------------------------------

// Calls `callback(stage, done, total)` (with the GIL) from the library's progress
// reports; silent when `callback` is None. `stage()` names the current stage.
class Progress {
 public:
  explicit Progress(py::object callback, std::string stage = "");
  ProgressFn fn();
  std::function<void(const std::string&)> stage_fn();
  TrainProgressFn train_fn();

 private:
  struct State {
    py::object callback;
    std::string stage;
  };
  std::shared_ptr<State> state_;
};

// Neural Cleanse's options from keyword arguments named as detect.json's settings
// ("max_steps", "labels", "pixel_range", ...); `prefix` names them in errors.
NeuralCleanseOptions nc_options_from(const nlohmann::json& kw, const Model& m,
                                     const std::string& prefix);
// "array (500, 28, 28, 1) uint8": an array as the settings of a result name it.
std::string array_text(const py::array& a);

// ---- Module parts ----------------------------------------------------------------

void bind_errors(py::module_& m);
void bind_model(py::module_& m);
void bind_detect(py::module_& m);
void bind_defend(py::module_& m);
void bind_scan(py::module_& m);

// Runs `f` without the GIL.
template <class F>
auto without_gil(F&& f) {
  py::gil_scoped_release release;
  return f();
}

}  // namespace bdguard::python
