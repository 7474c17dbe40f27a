// bdguard.defend (bdguard defend --json, and the defended Model), bdguard.compare
// (bdguard compare --json) and bdguard.prune (bdguard prune --json).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <pybind11/stl.h>

#include <chrono>
#include <limits>
#include <optional>

#include "bdguard/compare_files.h"
#include "bdguard/defend.h"
#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "bdguard/sweep_files.h"
#include "bindings.h"

namespace bdguard::python {
namespace {

std::string path_text(const py::object& p) {
  if (p.is_none()) return "";
  if (py::hasattr(p, "__fspath__")) return p.attr("__fspath__")().cast<std::string>();
  return p.cast<std::string>();
}

// The methods to run: "all", "a,b,c" or a list of names.
std::vector<std::string> method_list(const py::object& methods) {
  std::vector<std::string> names;
  if (py::isinstance<py::str>(methods)) {
    const std::string text = methods.cast<std::string>();
    if (text == "all" || text.empty()) return defense_methods();
    for (size_t start = 0; start <= text.size();) {
      const size_t comma = std::min(text.find(',', start), text.size());
      names.push_back(text.substr(start, comma - start));
      start = comma + 1;
    }
  } else {
    names = methods.cast<std::vector<std::string>>();
  }
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (!is_defense_method(n)) defense_defaults(n);  // throws, listing the methods
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

// Each option goes to every method that has it (it must fit one at least); `per_method`
// ({method: {key: value}}) sets one method's. Checked, but passed on as given: a setting
// not given is the method's to choose (defend.h: TunedSetting).
std::map<std::string, nlohmann::json> methods_params(const std::vector<std::string>& methods,
                                                     const nlohmann::json& options,
                                                     const nlohmann::json& per_method) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& m : methods) out[m] = nlohmann::json::object();
  for (const auto& [key, value] : options.items()) {
    bool used = false;
    for (const auto& m : methods) {
      if (!defense_defaults(m).contains(key)) continue;
      out[m][key] = value;
      used = true;
    }
    if (!used) {
      std::string names;
      for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m;
      fail<InvalidArgument>("", key, "an option of " + names,
                            "no such option (see bdguard.defense_defaults(method))");
    }
  }
  for (const auto& [method, values] : per_method.items()) {
    if (out.count(method) == 0) {
      fail<InvalidArgument>("params", method, "a method that runs", "'" + method + "'");
    }
    out[method].update(values);
  }
  for (const auto& m : methods) defense_params(m, out[m]);
  return out;
}

// What `bdguard defend --json` prints (tools/bdguard/defend_cli.cpp, defense_json).
nlohmann::json defense_doc(const DefenseResult& r, const nlohmann::json& output,
                           const nlohmann::json& sha256) {
  const nlohmann::json after = to_json(r.after);
  nlohmann::json doc = {{"method", r.method},
                        {"source", defense_source(r.method)},
                        {"clean_accuracy", after["clean_accuracy"]},
                        {"asr", after["asr"]},
                        {"before", to_json(r.before)},
                        {"seconds", r.seconds},
                        {"output", output},
                        {"sha256", sha256},
                        {"n_train", r.n_train},
                        {"n_holdout", r.n_holdout},
                        {"n_poisoned", r.n_poisoned},
                        {"params", r.params}};
  for (const auto& [k, v] : r.figures.items()) {
    if (!doc.contains(k)) doc[k] = v;
  }
  return doc;
}

py::tuple defend(const PyModel& pm, const std::string& method, const py::object& x,
                 const py::object& y, const py::object& poisoned, uint64_t seed,
                 const py::object& detect_dir, const py::dict& nc, const py::object& out,
                 int64_t batch, const py::object& progress, const py::kwargs& kw) {
  const nlohmann::json params = methods_params({method}, kwargs_json(kw), {}).at(method);
  if (x.is_none() && defense_needs_clean(method)) {
    fail<InvalidArgument>("", "x", "clean validation data (" + method + " trains on it)", "none");
  }
  const std::string detect = path_text(detect_dir);
  if (!detect.empty() && method != "nc-unlearn") {
    fail<InvalidArgument>("", "detect", "only with nc-unlearn", method);
  }
  const std::string output = path_text(out);
  if (!output.empty()) check_output_path(pm.model, output);
  DefenseData data;
  py::array keep;
  if (!x.is_none()) {
    keep = as_array(x);
    data.clean = tensor_data(keep, y, pm, "x");
    data.clean.images = data.clean.images.to(at::kFloat);
  }
  if (!poisoned.is_none()) {
    data.poisoned = pair_data(poisoned, pm, "poisoned");
    data.poisoned->images = data.poisoned->images.to(at::kFloat);
  }
  DefenseOptions opt;
  opt.seed = seed;
  opt.eval_batch = batch;
  opt.params = params;
  opt.neural_cleanse = nc_options_from(to_json_value(nc, "nc"), pm.model, "nc.");
  Progress p(progress, method);
  opt.progress = p.fn();
  opt.stage = p.stage_fn();
  opt.train_progress = p.train_fn();
  opt.neural_cleanse.stage = opt.stage;
  opt.neural_cleanse.progress = opt.progress;
  auto [result, doc] = without_gil([&] {
    NeuralCleanseResult given;
    if (!detect.empty()) {
      given = read_detect_dir(detect, pm.model.input_shape(), pm.model.num_classes());
      data.neural_cleanse = &given;
    }
    DefenseResult r = defend(method, pm.model, data, opt);
    nlohmann::json d;
    if (output.empty()) {
      d = defense_doc(r, nullptr, nullptr);
    } else {
      save_model(r.model, output);
      d = defense_doc(r, output, sha256_file(output));
    }
    return std::pair{std::move(r), std::move(d)};
  });
  doc["model"] = pm.name;
  return py::make_tuple(pm.derived(std::move(result.model)), to_python(doc));
}

py::object compare(const PyModel& pm, const py::object& valid, const py::object& poisoned_valid,
                   const py::object& test, const py::object& poisoned_test,
                   const py::object& methods_obj, uint64_t seed, const py::object& detect_dir,
                   const py::dict& nc, const py::dict& per_method, const py::object& out,
                   bool force, int64_t batch, bool proxy, const py::object& progress,
                   const py::kwargs& kw) {
  const std::vector<std::string> methods = method_list(methods_obj);
  CompareOptions co;
  co.methods = methods;
  co.proxy = proxy;
  co.params = methods_params(methods, kwargs_json(kw), to_json_value(per_method, "params"));
  CompareData data;
  auto floats = [](TensorData d) {
    d.images = d.images.to(at::kFloat);
    return d;
  };
  data.valid = floats(pair_data(valid, pm, "valid"));
  data.poisoned_valid = floats(pair_data(poisoned_valid, pm, "poisoned_valid"));
  data.test = floats(pair_data(test, pm, "test"));
  data.poisoned_test = floats(pair_data(poisoned_test, pm, "poisoned_test"));
  const std::string detect = path_text(detect_dir), dir = path_text(out);
  co.out_dir = dir;
  co.defense.seed = seed;
  co.defense.eval_batch = batch;
  co.defense.neural_cleanse = nc_options_from(to_json_value(nc, "nc"), pm.model, "nc.");
  Progress p(progress, "compare");
  co.defense.progress = p.fn();
  co.defense.stage = p.stage_fn();
  co.defense.train_progress = p.train_fn();
  co.defense.neural_cleanse.stage = co.defense.stage;
  co.defense.neural_cleanse.progress = co.defense.progress;
  co.on_start = p.stage_fn();
  nlohmann::json settings = pm.settings;
  settings.update({{"model", pm.name},
                   {"valid", "arrays"},
                   {"poisoned_valid", "arrays"},
                   {"test", "arrays"},
                   {"poisoned_test", "arrays"},
                   {"methods", methods},
                   {"seed", seed},
                   {"threads", at::get_num_threads()},
                   {"detect", detect.empty() ? nlohmann::json() : nlohmann::json(detect)},
                   {"proxy", proxy}});
  const nlohmann::json doc = without_gil([&] {
    NeuralCleanseResult given;
    if (!detect.empty()) {
      given = read_detect_dir(detect, pm.model.input_shape(), pm.model.num_classes());
      data.neural_cleanse = &given;
    }
    if (!dir.empty()) prepare_output_dir(dir, force);
    CompareResult r = compare_defenses(pm.model, data, co);
    if (!dir.empty()) write_compare_files(r, pm.name, settings, dir, ReportOptions{});
    nlohmann::json d = to_json(r);
    d["settings"] = settings;
    return d;
  });
  return to_python(doc);
}

py::object prune(const PyModel& pm, const py::object& clean, const py::object& poisoned,
                 const py::object& test, const py::object& poisoned_test, const py::object& layer,
                 const std::vector<double>& drops, const py::object& stop_drop,
                 const py::object& out, bool force, bool plain, int64_t batch,
                 const py::object& progress) {
  if (test.is_none() != poisoned_test.is_none()) {
    fail<InvalidArgument>("", "test", "test and poisoned_test together", "one of them");
  }
  auto in_memory = [&](const py::object& pair, const std::string& name) {
    TensorData d = pair_data(pair, pm, name);
    return LabDataset::in_memory(name, d.images, d.labels);
  };
  const LabDataset c = in_memory(clean, "clean"), bd = in_memory(poisoned, "poisoned");
  std::optional<LabDataset> t, bt;
  if (!test.is_none()) {
    t = in_memory(test, "test");
    bt = in_memory(poisoned_test, "poisoned_test");
  }
  const std::string dir = path_text(out);
  SweepOptions so;
  so.layer = layer.is_none() ? "" : layer.cast<std::string>();
  so.stop_drop =
      stop_drop.is_none() ? std::numeric_limits<double>::infinity() : stop_drop.cast<double>();
  so.batch = batch;
  Progress p(progress, "pruning");
  so.progress = p.fn();
  nlohmann::json settings = {
      {"model", pm.name},
      {"format", format_name(pm.model.format)},
      {"drops", drops},
      {"stop_drop", stop_drop.is_none() ? nlohmann::json() : nlohmann::json(so.stop_drop)},
      {"method", plain ? "plain" : "fast"},
      {"clean", "array"},
      {"poisoned", "array"},
      {"test", t ? nlohmann::json("array") : nlohmann::json()},
      {"poisoned_test", t ? nlohmann::json("array") : nlohmann::json()}};
  settings.update(pm.settings);
  const nlohmann::json doc = without_gil([&] {
    const ChannelUnit target = resolve_prune_target(pm.model, so.layer);
    so.layer = pm.model.node(static_cast<size_t>(target.node)).name;
    if (!dir.empty()) prepare_output_dir(dir, force);
    const SweepData data{&c, &bd, t ? &*t : nullptr, bt ? &*bt : nullptr};
    const SweepResult r =
        plain ? run_sweep_plain(pm.model, data, so) : run_sweep(pm.model, data, so);
    std::vector<SavedModel> saved;
    std::vector<GoodNetRow> rows;
    if (!dir.empty()) {
      saved = save_drop_models(pm.model, r, drops, dir);
      for (const auto& s : saved) {
        if (!s.reached || !t) continue;
        const auto k = static_cast<size_t>(s.step);
        rows.push_back(goodnet_row(s.path, pm.model.num_classes(), t->labels(), bt->labels(),
                                   r.test_predictions[0], r.poisoned_test_predictions[0],
                                   r.test_predictions[k], r.poisoned_test_predictions[k]));
      }
    }
    nlohmann::json s = settings;
    s["layer"] = r.layer;
    nlohmann::json d = sweep_json(r, saved, rows, s);
    d["timings"]["threads"] = at::get_num_threads();
    if (!dir.empty()) {
      write_file_atomic(dir + "/sweep.csv", sweep_csv(r));
      write_file_atomic(dir + "/sweep.json", d.dump(2) + "\n");
    }
    return d;
  });
  return to_python(doc);
}

}  // namespace

void bind_defend(py::module_& m) {
  m.def("defend", &defend, py::arg("model"), py::arg("method"), py::arg("x") = py::none(),
        py::arg("y") = py::none(), py::kw_only(), py::arg("poisoned") = py::none(),
        py::arg("seed") = 0, py::arg("detect") = py::none(), py::arg("nc") = py::dict(),
        py::arg("out") = py::none(), py::arg("batch") = kDefaultBatch,
        py::arg("progress") = py::none(),
        "One defense on the model with clean validation data (x, y): (defended Model, the "
        "dict of bdguard defend --json). Method options as keywords (epochs=, lr=, drop=, "
        "...: bdguard.defense_defaults(method)); poisoned=(x, y) is reported only; nc= "
        "Neural Cleanse's options for nc-unlearn and i-bau; out= saves the model");
  m.def("compare", &compare, py::arg("model"), py::arg("valid"), py::arg("poisoned_valid"),
        py::arg("test"), py::arg("poisoned_test"), py::kw_only(), py::arg("methods") = "all",
        py::arg("seed") = 0, py::arg("detect") = py::none(), py::arg("nc") = py::dict(),
        py::arg("params") = py::dict(), py::arg("out") = py::none(), py::arg("force") = false,
        py::arg("batch") = kDefaultBatch, py::arg("proxy") = true, py::arg("progress") = py::none(),
        "Every defense on the model, side by side: the dict of bdguard compare --json. Data "
        "as (x, y) pairs; options as keywords (each to every method that has it) or "
        "params={method: {key: value}}; proxy=False: no proxy ASR (nc= also sets the Neural "
        "Cleanse run of the proxy)");
  m.def("prune", &prune, py::arg("model"), py::arg("clean"), py::arg("poisoned"), py::kw_only(),
        py::arg("test") = py::none(), py::arg("poisoned_test") = py::none(),
        py::arg("layer") = py::none(), py::arg("drops") = kDefaultDrops,
        py::arg("stop_drop") = py::none(), py::arg("out") = py::none(), py::arg("force") = false,
        py::arg("plain") = false, py::arg("batch") = kDefaultBatch,
        py::arg("progress") = py::none(),
        "The pruning sweep: the dict of bdguard prune --json; out= also saves the models at "
        "each accuracy drop and sweep.csv / sweep.json");
  m.def("defense_methods", &defense_methods);
  m.def("defense_defaults",
        [](const std::string& method) { return to_python(defense_defaults(method)); });
}

}  // namespace bdguard::python
