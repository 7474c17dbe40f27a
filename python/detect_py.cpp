// bdguard.detect (Neural Cleanse, bdguard detect --json) and bdguard.strip (STRIP,
// bdguard strip eval --json).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <map>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/strip_files.h"
#include "bindings.h"

namespace bdguard::python {
namespace {

using Setter = std::function<void(NeuralCleanseOptions&, const nlohmann::json&)>;

// An integer option of at least `min`.
template <class T>
Setter count(T NeuralCleanseOptions::*field, int64_t min) {
  return [field, min](NeuralCleanseOptions& o, const nlohmann::json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < min) {
      throw InvalidArgument("an integer >= " + std::to_string(min));
    }
    o.*field = static_cast<T>(v.get<int64_t>());
  };
}

Setter number(double NeuralCleanseOptions::*field) {
  return [field](NeuralCleanseOptions& o, const nlohmann::json& v) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) throw InvalidArgument("a number");
    o.*field = v.get<double>();
  };
}

// Neural Cleanse's options under the names detect.json's settings give them.
const std::map<std::string, Setter>& nc_setters() {
  static const std::map<std::string, Setter> table = {
      {"labels",
       [](NeuralCleanseOptions& o, const nlohmann::json& v) {
         o.labels.clear();
         if (v.is_string() && v.get<std::string>() == "all") return;
         if (!v.is_array()) throw InvalidArgument("\"all\" or a list of labels");
         for (const auto& l : v) {
           if (!l.is_number_integer()) throw InvalidArgument("\"all\" or a list of labels");
           o.labels.push_back(l.get<int64_t>());
         }
       }},
      {"seed",
       [](NeuralCleanseOptions& o, const nlohmann::json& v) {
         if (!v.is_number_integer() || v.get<int64_t>() < 0) {
           throw InvalidArgument("a non-negative integer");
         }
         o.seed = v.get<uint64_t>();
       }},
      {"batch", count(&NeuralCleanseOptions::batch, 1)},
      {"batches_per_step", count(&NeuralCleanseOptions::batches_per_step, 1)},
      {"max_steps", count(&NeuralCleanseOptions::max_steps, 1)},
      {"lr", number(&NeuralCleanseOptions::lr)},
      {"betas",
       [](NeuralCleanseOptions& o, const nlohmann::json& v) {
         if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number()) {
           throw InvalidArgument("two numbers");
         }
         o.beta1 = v[0].get<double>();
         o.beta2 = v[1].get<double>();
       }},
      {"init_cost", number(&NeuralCleanseOptions::init_cost)},
      {"attack_success_threshold", number(&NeuralCleanseOptions::attack_success)},
      {"patience", count(&NeuralCleanseOptions::patience, 1)},
      {"cost_multiplier_up", number(&NeuralCleanseOptions::cost_multiplier)},
      {"early_stop",
       [](NeuralCleanseOptions& o, const nlohmann::json& v) {
         if (!v.is_boolean()) throw InvalidArgument("True or False");
         o.early_stop = v.get<bool>();
       }},
      {"early_stop_threshold", number(&NeuralCleanseOptions::early_stop_threshold)},
      {"early_stop_patience", count(&NeuralCleanseOptions::early_stop_patience, 1)},
      {"label_batch", count(&NeuralCleanseOptions::label_batch, 1)},
      {"full_below", count(&NeuralCleanseOptions::full_below, 0)},
      {"screen_steps", count(&NeuralCleanseOptions::screen_steps, 1)},
      {"screen_batches", count(&NeuralCleanseOptions::screen_batches, 1)},
      {"screen_lr", number(&NeuralCleanseOptions::screen_lr)},
      {"refine", count(&NeuralCleanseOptions::refine, 0)},
      {"reference", count(&NeuralCleanseOptions::reference, 1)},
      {"eval_images", count(&NeuralCleanseOptions::eval_images, 1)},
      {"anomaly_threshold", number(&NeuralCleanseOptions::anomaly_threshold)},
      {"pixel_range",
       [](NeuralCleanseOptions& o, const nlohmann::json& v) {
         if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number() ||
             !(v[0].get<double>() < v[1].get<double>())) {
           throw InvalidArgument("(LO, HI) with LO < HI");
         }
         o.pixel_min = v[0].get<double>();
         o.pixel_max = v[1].get<double>();
       }},
  };
  return table;
}

// "pixel_range" as StripOptions' pixel_min and pixel_max.
void pixel_range(const nlohmann::json& v, double& lo, double& hi) {
  NeuralCleanseOptions o;
  nc_setters().at("pixel_range")(o, v);
  lo = o.pixel_min;
  hi = o.pixel_max;
}

}  // namespace

std::string array_text(const py::array& a) {
  std::string out = "array (";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) out += (d ? ", " : "") + std::to_string(a.shape(d));
  return out + ") " + py::str(a.dtype()).cast<std::string>();
}

NeuralCleanseOptions nc_options_from(const nlohmann::json& kw, const Model& m,
                                     const std::string& prefix) {
  NeuralCleanseOptions o;
  for (const auto& [key, value] : kw.items()) {
    const auto it = nc_setters().find(key);
    if (it == nc_setters().end()) {
      std::string names;
      for (const auto& [k, s] : nc_setters()) names += (names.empty() ? "" : ", ") + k;
      fail<InvalidArgument>(prefix + key, "", "an option of Neural Cleanse (" + names + ")",
                            "no such option");
    }
    try {
      it->second(o, value);
    } catch (const InvalidArgument& e) {
      fail<InvalidArgument>(prefix + key, "", e.what(), value.dump());
    }
  }
  for (int64_t l : o.labels) {
    if (l < 0 || l >= m.num_classes()) {
      fail<InvalidArgument>(prefix + "labels", "",
                            "labels in [0, " + std::to_string(m.num_classes()) + ")",
                            std::to_string(l));
    }
  }
  return o;
}

namespace {

py::object detect(const PyModel& pm, const py::object& x, const py::object& y,
                  const py::object& out, bool force, const py::object& progress,
                  const py::kwargs& kw) {
  NeuralCleanseOptions o = nc_options_from(kwargs_json(kw), pm.model, "");
  py::array a = as_array(x);
  TensorData data;
  data.images = float_images(a, pm, "x");
  data.labels = y.is_none() ? at::zeros({data.images.size(0)}, at::kLong)
                            : label_tensor(y, data.images.size(0), pm.model.num_classes(), "y");
  Progress p(progress, "Neural Cleanse");
  o.progress = p.fn();
  o.stage = p.stage_fn();
  const std::string dir = out.is_none() ? "" : std::string(py::str(out));
  nlohmann::json settings = to_json(o);
  settings["model"] = pm.name;
  settings["clean"] = array_text(a);
  settings.update(pm.settings);
  settings["labels_flag"] = o.labels.empty() ? nlohmann::json("all") : nlohmann::json(o.labels);
  const nlohmann::json doc = without_gil([&] {
    if (!dir.empty()) prepare_output_dir(dir, force);
    NeuralCleanseResult r = neural_cleanse(pm.model, data, o);
    settings["threads"] = at::get_num_threads();
    std::vector<std::string> triggers;
    if (!dir.empty()) {
      triggers = write_triggers(r, trigger_labels(r), dir);
      write_detect_plots(r, dir, ReportOptions{});
    }
    nlohmann::json d = detect_json(r, settings, triggers);
    if (!dir.empty()) write_file_atomic(dir + "/detect.json", d.dump(2) + "\n");
    return d;
  });
  return to_python(doc);
}

// Images only (a pair's first item), as float32.
at::Tensor strip_images(const py::object& obj, py::array& keep, const PyModel& pm,
                        const std::string& name) {
  py::object images = obj;
  if (py::isinstance<py::tuple>(obj)) images = obj.cast<py::tuple>()[0];
  keep = as_array(images);
  return float_images(keep, pm, name);
}

py::object strip(const PyModel& pm, const py::object& clean, const py::object& test,
                 const py::object& poisoned_test, int overlays, double alpha, double frr,
                 uint64_t seed, const py::object& range, int64_t batch, const py::object& out,
                 bool force, const py::object& progress) {
  StripOptions o;
  o.overlays = overlays;
  o.alpha = alpha;
  o.frr = frr;
  o.seed = seed;
  o.batch = batch;
  if (overlays < 1) fail<InvalidArgument>("overlays", "", "at least 1", std::to_string(overlays));
  if (!(alpha > 0)) fail<InvalidArgument>("alpha", "", "a positive number", std::to_string(alpha));
  if (!(frr >= 0 && frr <= 0.999)) {
    fail<InvalidArgument>("frr", "", "a rate in [0, 0.999]", std::to_string(frr));
  }
  if (!range.is_none()) pixel_range(to_json_value(range, "pixel_range"), o.pixel_min, o.pixel_max);
  py::array ca, ta, pa;
  TensorData pool;
  pool.images = strip_images(clean, ca, pm, "clean");
  pool.labels = at::zeros({pool.images.size(0)}, at::kLong);
  const at::Tensor t = strip_images(test, ta, pm, "test");
  const at::Tensor bd = strip_images(poisoned_test, pa, pm, "poisoned_test");
  const std::string dir = out.is_none() ? "" : std::string(py::str(out));
  nlohmann::json settings = to_json(o);
  settings["model"] = pm.name;
  settings["clean"] = array_text(ca);
  settings.update(pm.settings);
  settings["test"] = array_text(ta);
  settings["poisoned_test"] = array_text(pa);
  Progress pv(progress, "validation"), pt(progress, "test"), pp(progress, "poisoned");
  const ProgressFn fv = pv.fn(), ft = pt.fn(), fp = pp.fn();
  const nlohmann::json doc = without_gil([&] {
    const auto start = std::chrono::steady_clock::now();
    if (!dir.empty()) prepare_output_dir(dir, force);
    Strip s(pm.model, pool, o);
    s.calibrate(fv);
    StripReport r;
    r.threshold = s.threshold();
    r.n_valid = static_cast<int64_t>(s.pool_scores().size());
    r.valid_frr = flagged_rate(s, s.pool_scores());
    r.test_scores = s.scores(t, kStripTestStream, ft);
    r.poisoned_scores = s.scores(bd, kStripPoisonedStream, fp);
    r.n_test = t.size(0);
    r.n_poisoned = bd.size(0);
    r.frr = flagged_rate(s, r.test_scores);
    r.detection_rate = flagged_rate(s, r.poisoned_scores);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json d = to_json(r);
    d["method"] = "strip";
    d["settings"] = settings;
    if (!dir.empty()) {
      write_strip_plots(r, dir, ReportOptions{});
      write_file_atomic(dir + "/strip.json", d.dump(2) + "\n");
    }
    return d;
  });
  return to_python(doc);
}

}  // namespace

void bind_detect(py::module_& m) {
  m.def("detect", &detect, py::arg("model"), py::arg("x"), py::arg("y") = py::none(), py::kw_only(),
        py::arg("out") = py::none(), py::arg("force") = false, py::arg("progress") = py::none(),
        "Neural Cleanse on clean images x: the dict of bdguard detect --json. Options by "
        "detect.json's settings names (max_steps, labels, seed, pixel_range, ...); out: a "
        "folder for detect.json, triggers/ and plots/");
  m.def("strip", &strip, py::arg("model"), py::arg("clean"), py::arg("test"),
        py::arg("poisoned_test"), py::kw_only(), py::arg("overlays") = StripOptions{}.overlays,
        py::arg("alpha") = StripOptions{}.alpha, py::arg("frr") = StripOptions{}.frr,
        py::arg("seed") = 0, py::arg("pixel_range") = py::none(),
        py::arg("batch") = StripOptions{}.batch, py::arg("out") = py::none(),
        py::arg("force") = false, py::arg("progress") = py::none(),
        "STRIP: threshold from clean validation images, rates on clean and poisoned test "
        "images: the dict of bdguard strip eval --json");
}

}  // namespace bdguard::python
