// Every defense on one model, side by side (see compare.h).
#include "bdguard/compare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bdguard/error.h"
#include "bdguard/evaluate.h"
#include "bdguard/fileio.h"
#include "bdguard/model_io.h"
#include "bdguard/repair.h"

namespace bdguard {

double defense_effectiveness(double acc_bd, double asr_bd, double acc, double asr) {
  const double d_asr = (asr_bd - asr) / 100, d_acc = (acc_bd - acc) / 100;
  return 100 * (std::max(0.0, d_asr) - std::max(0.0, d_acc) + 1) / 2;
}

std::optional<int64_t> single_label(const std::vector<int64_t>& labels) {
  if (labels.empty()) return std::nullopt;
  for (int64_t l : labels) {
    if (l != labels.front()) return std::nullopt;
  }
  return labels.front();
}

double natural_rate(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels,
                    int64_t target) {
  if (predicted.size() != labels.size()) {
    fail<InvalidArgument>("", "natural rate", std::to_string(labels.size()) + " predictions",
                          std::to_string(predicted.size()));
  }
  int64_t others = 0, hits = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == target) continue;
    ++others;
    hits += predicted[i] == target;
  }
  return percent(hits, others);
}

CompareResult compare_defenses(const Model& m, const CompareData& data, const CompareOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  m.require_classifier();
  std::vector<std::string> methods = o.methods.empty() ? defense_methods() : o.methods;
  for (const auto& name : methods) {
    if (!is_defense_method(name)) defense_params(name, {});  // throws, naming the methods
  }
  for (const auto& [name, p] : o.params) {
    if (std::find(methods.begin(), methods.end(), name) != methods.end()) defense_params(name, p);
  }
  CompareResult r;
  r.n_test = data.test.size();
  r.n_poisoned_test = data.poisoned_test.size();
  r.n_valid = data.valid.size();
  r.n_poisoned_valid = data.poisoned_valid ? data.poisoned_valid->size() : 0;
  const int64_t batch = o.defense.eval_batch;
  const std::vector<int64_t> test_labels = data.test.label_vector();
  r.target = single_label(data.poisoned_test.label_vector());
  // Clean accuracy and the natural rate from one pass over the clean test images.
  auto on_test = [&](const Model& model, double& acc, std::optional<double>& natural) {
    const std::vector<int64_t> pred = predict(model, data.test, batch);
    acc = match_rate(pred, test_labels);
    if (r.target) natural = natural_rate(pred, test_labels, *r.target);
  };
  on_test(m, r.baseline_accuracy, r.baseline_natural_rate);
  r.baseline_asr = accuracy(m, data.poisoned_test, batch);

  // The proxy's triggers and held-out images (compare.h).
  // Without a given Neural Cleanse result, the proxy's run (on the training part of the
  // clean data) is nc-unlearn's too, as in repair: one run, and the pick repair makes.
  std::optional<AttackProxy> proxy;
  NeuralCleanseResult own;
  const NeuralCleanseResult* nc = data.neural_cleanse;
  if (o.proxy) {
    NeuralCleanseOptions nco = o.defense.neural_cleanse;
    if (!nco.progress) nco.progress = o.defense.progress;
    if (!nc && o.on_start) o.on_start("Neural Cleanse (the proxy's triggers)");
    proxy = make_attack_proxy(m, data.valid, o.defense.seed, nc, nco, &own);
    if (!nc) nc = &own;
    r.proxy = to_json(*proxy);
    r.baseline_proxy_asr = proxy_asr(m, *proxy, batch);
  }

  DefenseData dd{data.valid, data.poisoned_valid, nc};
  if (!o.out_dir.empty()) std::filesystem::create_directories(o.out_dir + "/models");
  for (const std::string& method : methods) {
    if (o.on_start) o.on_start(method);
    CompareRow row;
    row.method = method;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      DefenseOptions opt = o.defense;
      auto it = o.params.find(method);
      opt.params = it == o.params.end() ? nlohmann::json::object() : it->second;
      DefenseResult d = defend(method, m, dd, opt);
      row.valid = d.after;
      r.baseline_valid = d.before;
      row.figures = std::move(d.figures);
      row.params = std::move(d.params);
      on_test(d.model, row.clean_accuracy, row.natural_rate);
      row.asr = accuracy(d.model, data.poisoned_test, batch);
      if (proxy) row.proxy_asr = proxy_asr(d.model, *proxy, batch);
      row.accuracy_drop = r.baseline_accuracy - row.clean_accuracy;
      row.der =
          defense_effectiveness(r.baseline_accuracy, r.baseline_asr, row.clean_accuracy, row.asr);
      row.seconds = d.seconds;
      if (!o.out_dir.empty()) {
        row.model = "models/" + method + model_extension(d.model);
        save_model(d.model, o.out_dir + "/" + row.model);
        row.sha256 = sha256_file(o.out_dir + "/" + row.model);
      }
      row.ok = true;
    } catch (const std::bad_alloc&) {
      row.error = "out of memory";
    } catch (const std::exception& e) {
      std::string msg = e.what();
      row.error = msg.substr(0, msg.find('\n'));  // LibTorch's carry a backtrace
    }
    if (!row.ok) {
      row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    r.rows.push_back(std::move(row));
  }
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const CompareRow& x = r.rows[i];
    if (!x.ok) continue;
    if (r.best < 0) {
      r.best = static_cast<int>(i);
      continue;
    }
    const CompareRow& b = r.rows[static_cast<size_t>(r.best)];
    if (x.der > b.der || (x.der == b.der && x.accuracy_drop < b.accuracy_drop)) {
      r.best = static_cast<int>(i);
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::string compare_verdict(const CompareResult& r) {
  char buf[320];
  if (r.best < 0) return "no defense ran on this model (see the table for the reasons)";
  const CompareRow& b = r.rows[static_cast<size_t>(r.best)];
  std::snprintf(
      buf, sizeof buf,
      "%s: ASR %.1f %% (BadNet: %.1f %%) at %.1f points lost (clean accuracy %.1f %%; DER "
      "%.1f %%)",
      b.method.c_str(), b.asr, r.baseline_asr, b.accuracy_drop, b.clean_accuracy, b.der);
  return buf;
}

nlohmann::json to_json(const CompareResult& r) {
  auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& x : r.rows) {
    nlohmann::json j = {{"method", x.method}, {"ok", x.ok}};
    if (x.ok) {
      j.update({{"clean_accuracy", x.clean_accuracy},
                {"asr", x.asr},
                {"accuracy_drop", x.accuracy_drop},
                {"der", x.der},
                {"natural_rate", opt(x.natural_rate)},
                {"proxy_asr", opt(x.proxy_asr)},
                {"seconds", x.seconds},
                {"model", x.model.empty() ? nlohmann::json() : nlohmann::json(x.model)},
                {"sha256", x.sha256.empty() ? nlohmann::json() : nlohmann::json(x.sha256)},
                {"valid", to_json(x.valid)},
                {"params", x.params},
                {"figures", x.figures}});
    } else {
      j.update({{"error", x.error},
                {"seconds", x.seconds},
                {"clean_accuracy", nullptr},
                {"asr", nullptr},
                {"accuracy_drop", nullptr},
                {"der", nullptr},
                {"natural_rate", nullptr},
                {"proxy_asr", nullptr},
                {"model", nullptr},
                {"sha256", nullptr}});
    }
    rows.push_back(std::move(j));
  }
  return {{"baseline",
           {{"clean_accuracy", r.baseline_accuracy},
            {"asr", r.baseline_asr},
            {"natural_rate", opt(r.baseline_natural_rate)},
            {"proxy_asr", opt(r.baseline_proxy_asr)},
            {"valid", to_json(r.baseline_valid)}}},
          {"proxy", r.proxy},
          {"target", opt(r.target)},
          {"rows", rows},
          {"best", r.best >= 0 ? nlohmann::json(r.rows[static_cast<size_t>(r.best)].method)
                               : nlohmann::json()},
          {"verdict", compare_verdict(r)},
          {"repair", r.baseline_proxy_asr ? to_json(repair_from_compare(r)) : nlohmann::json()},
          {"n_test", r.n_test},
          {"n_poisoned_test", r.n_poisoned_test},
          {"n_valid", r.n_valid},
          {"n_poisoned_valid", r.n_poisoned_valid},
          {"seconds", r.seconds}};
}

}  // namespace bdguard
