// The table of defenses, option checking, and defend() itself (see defend.h).
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "bdguard/error.h"
#include "methods.h"

namespace bdguard {
namespace {

using defense::Context;
using defense::Runner;

struct Method {
  const char* name;
  const char* source;
  bool needs_clean;
  nlohmann::json (*schema)();
  Runner run;
  // The setting chosen per model (defend.h: TunedSetting; "" for none) and its values,
  // the method's default among them.
  const char* tune_key;
  std::vector<double> tune_values;
};

const std::vector<Method>& table() {
  static const std::vector<Method> methods = {
      {"finetune",
       "fine-tuning on clean data, as the fine-tuning step of Fine-Pruning (Liu, Dolan-Gavitt, "
       "Garg, RAID 2018); bdguard's recipe",
       true,
       defense::finetune_schema,
       defense::run_finetune,
       "lr",
       {0.01, 0.03, 0.1}},
      {"fine-pruning",
       "Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018): bdguard prune's sweep, then "
       "fine-tuning",
       true,
       defense::fine_pruning_schema,
       defense::run_fine_pruning,
       "drop",
       {2, 4, 8}},
      {"nc-unlearn",
       "Neural Cleanse's unlearning (Wang et al., IEEE S&P 2019, section VI-C); triggers "
       "from bdguard detect",
       true,
       defense::nc_unlearn_schema,
       defense::run_nc_unlearn,
       "unlearn_fraction",
       {0.1, 0.2, 0.4}},
      {"anp",
       "Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021), csdongxian/ANP_backdoor",
       true,
       defense::anp_schema,
       defense::run_anp,
       "",
       {}},
      {"clp",
       "Channel Lipschitzness-based Pruning (Zheng et al., ECCV 2022), "
       "rkteddy/channel-Lipschitzness-based-pruning",
       false,
       defense::clp_schema,
       defense::run_clp,
       "u",
       {2, 3, 4}},
      {"nad",
       "Neural Attention Distillation (Li et al., ICLR 2021), bboylyg/NAD",
       true,
       defense::nad_schema,
       defense::run_nad,
       "lr",
       {0.003, 0.01, 0.03}},
      {"i-bau",
       "Implicit Backdoor Adversarial Unlearning (Zeng et al., ICLR 2022), YiZeng623/I-BAU",
       true,
       defense::i_bau_schema,
       defense::run_i_bau,
       "lr",
       {3e-4, 1e-3, 3e-3}},
      {"sau",
       "Shared Adversarial Unlearning (Wei et al., NeurIPS 2023), BackdoorBench v2.2 "
       "defense/sau.py",
       true,
       defense::sau_schema,
       defense::run_sau,
       "bound",
       {0.1, 0.2, 0.3}},
      {"ft-sam",
       "fine-tuning with sharpness-aware minimisation (Zhu et al., ICCV 2023), BackdoorBench "
       "v2.2 defense/ft-sam.py",
       true,
       defense::ft_sam_schema,
       defense::run_ft_sam,
       "rho",
       {1, 2, 4}},
      {"fst",
       "Feature Shift Tuning (Min et al., NeurIPS 2023), "
       "AISafety-HKUST/stable_backdoor_purification fine_tune/ft.py",
       true,
       defense::fst_schema,
       defense::run_fst,
       "alpha",
       {0.05, 0.1, 0.2}},
  };
  return methods;
}

const Method& find_method(const std::string& name) {
  for (const Method& m : table()) {
    if (name == m.name) return m;
  }
  std::string all;
  for (const Method& m : table()) all += (all.empty() ? "" : ", ") + std::string(m.name);
  fail<InvalidArgument>("", "defense method", "one of " + all, "'" + name + "'");
}

std::string json_type(const nlohmann::json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  return "a " + std::string(v.type_name());
}

// `value` checked against the option's default type and range.
nlohmann::json checked(const std::string& method, const std::string& key,
                       const nlohmann::json& spec, const nlohmann::json& value) {
  const nlohmann::json& def = spec.at("default");
  const std::string object = method + " option '" + key + "'";
  const bool int_wanted = def.is_number_integer() || def.is_number_unsigned();
  bool ok = false;
  if (def.is_boolean()) ok = value.is_boolean();
  if (def.is_string()) ok = value.is_string();
  if (int_wanted) {
    ok = value.is_number_integer() || value.is_number_unsigned() ||
         (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>() &&
          std::abs(value.get<double>()) < 9e15);
  } else if (def.is_number()) {
    ok = value.is_number() && std::isfinite(value.get<double>());
  }
  if (!ok) fail<InvalidArgument>("", object, json_type(def), value.dump());
  if (def.is_number()) {
    const double v = value.get<double>();
    if ((spec.contains("min") && v < spec["min"].get<double>()) ||
        (spec.contains("max") && v > spec["max"].get<double>())) {
      fail<InvalidArgument>("", object,
                            "a value in [" + spec.value("min", nlohmann::json()).dump() + ", " +
                                spec.value("max", nlohmann::json()).dump() + "]",
                            value.dump());
    }
    if (int_wanted) return static_cast<int64_t>(v);
  }
  if (spec.contains("choices")) {
    bool found = false;
    for (const auto& c : spec["choices"]) found = found || c == value;
    if (!found) fail<InvalidArgument>("", object, "one of " + spec["choices"].dump(), value.dump());
  }
  return value;
}

}  // namespace

namespace defense {

nlohmann::json option(const nlohmann::json& value, const std::string& help) {
  return {{"default", value}, {"help", help}};
}

nlohmann::json option(const nlohmann::json& value, const std::string& help, double min,
                      double max) {
  return {{"default", value}, {"help", help}, {"min", min}, {"max", max}};
}

nlohmann::json keep_option(const std::string& value, const std::string& help) {
  nlohmann::json o = option(value, help);
  o["choices"] = {"last", "best"};
  return o;
}

int64_t get_int(const nlohmann::json& params, const char* key) {
  return params.at(key).get<int64_t>();
}

double get_double(const nlohmann::json& params, const char* key) {
  return params.at(key).get<double>();
}

}  // namespace defense

const std::vector<std::string>& defense_methods() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Method& m : table()) n.emplace_back(m.name);
    return n;
  }();
  return names;
}

bool is_defense_method(const std::string& method) {
  for (const Method& m : table()) {
    if (method == m.name) return true;
  }
  return false;
}

nlohmann::json defense_defaults(const std::string& method) {
  nlohmann::json schema = find_method(method).schema();
  schema["holdout"] = defense::option(
      kFinetuneHoldout,
      "fraction of the clean validation data held out: every choice is made on it", 1e-4, 1 - 1e-4);
  const Method& m = find_method(method);
  if (*m.tune_key) defense::add_tune_options(schema, m.tune_key, m.tune_values);
  return schema;
}

std::string defense_source(const std::string& method) { return find_method(method).source; }

TunedSetting defense_tuned_setting(const std::string& method) {
  const Method& m = find_method(method);
  return {m.tune_key, m.tune_values};
}

bool defense_needs_clean(const std::string& method) { return find_method(method).needs_clean; }

nlohmann::json defense_params(const std::string& method, const nlohmann::json& params) {
  const nlohmann::json schema = defense_defaults(method);
  if (!params.is_object())
    fail<InvalidArgument>("", method + " options", "an object", params.dump());
  for (const auto& [key, value] : params.items()) {
    if (!schema.contains(key)) {
      std::string keys;
      for (const auto& [k, v] : schema.items()) keys += (keys.empty() ? "" : ", ") + k;
      fail<InvalidArgument>("", method + " option '" + key + "'", "one of " + keys,
                            "no such option");
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, spec] : schema.items()) {
    out[key] = params.contains(key) ? checked(method, key, spec, params[key]) : spec["default"];
  }
  return out;
}

nlohmann::json to_json(const DefenseMetrics& m) {
  auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
  };
  return {{"clean_accuracy", opt(m.clean_accuracy)}, {"asr", opt(m.asr)}};
}

DefenseResult defend(const std::string& method, const Model& m, const DefenseData& data,
                     const DefenseOptions& options) {
  const Method& info = find_method(method);
  const auto start = std::chrono::steady_clock::now();
  m.require_classifier();
  DefenseResult r;
  r.method = method;
  r.params = defense_params(method, options.params);
  const bool no_data = data.clean.size() == 0 && !info.needs_clean;
  if (data.clean.size() < 2 && !no_data) {
    fail<InvalidArgument>("", method + ": clean validation data",
                          "at least 2 images (a part to train on and a part held out)",
                          std::to_string(data.clean.size()));
  }
  const ValidationSplit split =
      no_data ? ValidationSplit{}
              : split_validation(data.clean, r.params.at("holdout").get<double>(), options.seed);
  r.n_train = split.train.size();
  r.n_holdout = split.holdout.size();
  r.n_poisoned = data.poisoned ? data.poisoned->size() : 0;
  auto measure = [&](const Model& model) {
    DefenseMetrics x;
    if (!no_data) x.clean_accuracy = accuracy(model, split.holdout, options.eval_batch);
    if (data.poisoned) x.asr = accuracy(model, *data.poisoned, options.eval_batch);
    return x;
  };
  r.before = measure(m);
  const Context c{m, data, options, r.params, split};
  r.model = m.clone();
  if (*info.tune_key) {
    defense::run_tuned(c, r, info.run, info.tune_key, info.tune_values, options.params);
  } else {
    info.run(c, r);
  }
  r.after = measure(r.model);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace bdguard
