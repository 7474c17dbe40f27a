// bdguard repair: every candidate defense, measured on held-out clean data with the
// proxy of the attack, and the rule that picks one (bdguard/repair.h).
#include "bdguard/repair.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bdguard/error.h"
#include "bdguard/finetune.h"
#include "bdguard/train.h"

namespace bdguard {

std::vector<std::string> repair_auto_methods() {
  std::vector<std::string> out;
  for (const auto& m : defense_methods()) {
    if (m != "anp" && m != "nad" && m != "i-bau" && m != "sau") out.push_back(m);
  }
  return out;
}

bool repair_qualifies(double base_accuracy, const RepairCandidate& c, double max_drop) {
  return c.ok && base_accuracy - c.clean_accuracy <= max_drop;
}

int pick_repair(double base_accuracy, const std::vector<RepairCandidate>& candidates,
                double max_drop) {
  int best = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const RepairCandidate& c = candidates[i];
    if (!repair_qualifies(base_accuracy, c, max_drop)) continue;
    if (best < 0) {
      best = static_cast<int>(i);
      continue;
    }
    const RepairCandidate& b = candidates[static_cast<size_t>(best)];
    if (c.proxy_asr < b.proxy_asr ||
        (c.proxy_asr == b.proxy_asr && c.clean_accuracy > b.clean_accuracy)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

RepairResult repair(const Model& m, const TensorData& clean, const RepairOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  m.require_classifier();
  if (clean.size() < 2) {
    fail<InvalidArgument>("", "repair: clean data",
                          "at least 2 images (a part to train on and a part held out)",
                          std::to_string(clean.size()));
  }
  if (!(o.max_drop >= 0 && o.max_drop <= 100)) {
    fail<InvalidArgument>("", "repair: max drop", "0 to 100 points", std::to_string(o.max_drop));
  }
  const std::vector<std::string> methods = o.methods.empty() ? repair_auto_methods() : o.methods;
  std::map<std::string, nlohmann::json> params;
  for (const auto& method : methods) {
    if (!is_defense_method(method)) {
      fail<InvalidArgument>("", "repair method", "one of defend's methods", "'" + method + "'");
    }
    // Every candidate holds out the same images, the part repair measures on.
    params[method] = defense_params(
        method, o.params.count(method) ? o.params.at(method) : nlohmann::json::object());
    if (params[method].at("holdout").get<double>() != kFinetuneHoldout) {
      fail<InvalidArgument>("", "repair: " + method + " holdout",
                            std::to_string(kFinetuneHoldout) + " (the part repair measures on)",
                            params[method].at("holdout").dump());
    }
  }
  const int64_t batch = o.defense.eval_batch;
  const ValidationSplit split = split_validation(clean, kFinetuneHoldout, o.defense.seed);
  RepairResult r;
  r.n_train = split.train.size();
  r.n_holdout = split.holdout.size();
  if (o.on_start) o.on_start("Neural Cleanse (the proxy's triggers)");
  r.neural_cleanse = neural_cleanse(m, split.train, o.neural_cleanse);
  const std::vector<const LabelTrigger*> triggers = proxy_triggers(r.neural_cleanse);
  for (const LabelTrigger* t : triggers) r.proxy_labels.push_back(t->label);
  r.base_accuracy = accuracy(m, split.holdout, batch);
  r.base_proxy_asr = proxy_asr(m, triggers, split.holdout, batch);

  DefenseData data;
  data.clean = clean;
  data.neural_cleanse = &r.neural_cleanse;
  std::vector<Model> models;
  for (const auto& method : methods) {
    if (o.on_start) o.on_start(method);
    RepairCandidate c;
    c.method = method;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      DefenseOptions d = o.defense;
      // The user's options only: a setting not given is the method's to choose.
      d.params = o.params.count(method) ? o.params.at(method) : nlohmann::json::object();
      DefenseResult dr = defend(method, m, data, d);
      c.ok = true;
      // defend() held out the same images (same seed and fraction, checked above).
      c.clean_accuracy = dr.after.clean_accuracy.value();
      c.proxy_asr = proxy_asr(dr.model, triggers, split.holdout, batch);
      c.figures = dr.figures;
      models.push_back(std::move(dr.model));
    } catch (const std::bad_alloc&) {
      c.error = "out of memory";
      models.emplace_back();
    } catch (const Error& e) {
      c.error = e.what();
      models.emplace_back();
    }
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.candidates.push_back(std::move(c));
  }
  r.picked = pick_repair(r.base_accuracy, r.candidates, o.max_drop);
  if (r.picked >= 0) r.model = std::move(models[static_cast<size_t>(r.picked)]);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

RepairPick repair_from_compare(const CompareResult& c, double max_drop) {
  RepairPick p;
  p.max_drop = max_drop;
  if (!c.baseline_proxy_asr || !c.baseline_valid.clean_accuracy) return p;
  p.base_accuracy = *c.baseline_valid.clean_accuracy;
  p.base_proxy_asr = *c.baseline_proxy_asr;
  if (c.proxy.is_object()) p.labels = c.proxy.value("labels", std::vector<int64_t>{});
  const std::vector<std::string> methods = repair_auto_methods();
  std::vector<std::string> models;
  for (const CompareRow& row : c.rows) {
    if (std::find(methods.begin(), methods.end(), row.method) == methods.end()) continue;
    RepairCandidate k;
    k.method = row.method;
    k.seconds = row.seconds;
    k.ok = row.ok && row.valid.clean_accuracy && row.proxy_asr;
    if (k.ok) {
      k.clean_accuracy = *row.valid.clean_accuracy;
      k.proxy_asr = *row.proxy_asr;
    } else {
      k.error = row.ok ? "no held-out accuracy or proxy ASR" : row.error;
    }
    p.candidates.push_back(std::move(k));
    models.push_back(row.model);
  }
  p.picked = pick_repair(p.base_accuracy, p.candidates, max_drop);
  if (p.picked >= 0) p.model = models[static_cast<size_t>(p.picked)];
  return p;
}

std::string repair_reason(const RepairPick& p) {
  char buf[512];
  int within = 0;
  for (const auto& k : p.candidates) {
    within += repair_qualifies(p.base_accuracy, k, p.max_drop);
  }
  if (p.candidates.empty()) return "no defense repair chooses from was compared";
  if (p.picked < 0) {
    std::snprintf(buf, sizeof buf,
                  "none picked: no defense kept the held-out clean accuracy within %.1f points "
                  "of the BadNet's %.2f %%",
                  p.max_drop, p.base_accuracy);
    return buf;
  }
  const RepairCandidate& k = p.candidates[static_cast<size_t>(p.picked)];
  std::snprintf(buf, sizeof buf,
                "%s: the lowest proxy ASR (%.2f %%, the BadNet's %.2f %%) of the %d defenses "
                "within %.1f points of the BadNet's held-out clean accuracy (%.2f %%; %s: "
                "%.2f %%)",
                k.method.c_str(), k.proxy_asr, p.base_proxy_asr, within, p.max_drop,
                p.base_accuracy, k.method.c_str(), k.clean_accuracy);
  return buf;
}

nlohmann::json to_json(const RepairPick& p) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& k : p.candidates) candidates.push_back(to_json(k));
  const bool picked = p.picked >= 0;
  return {{"method", picked ? nlohmann::json(p.candidates[static_cast<size_t>(p.picked)].method)
                            : nlohmann::json()},
          {"reason", repair_reason(p)},
          {"base_clean_accuracy", p.base_accuracy},
          {"base_proxy_asr", p.base_proxy_asr},
          {"proxy_labels", p.labels},
          {"max_drop", p.max_drop},
          {"candidates", candidates},
          {"output", p.output.empty() ? nlohmann::json() : nlohmann::json(p.output)},
          {"sha256", p.sha256.empty() ? nlohmann::json() : nlohmann::json(p.sha256)}};
}

nlohmann::json to_json(const RepairCandidate& c) {
  nlohmann::json j = {{"method", c.method}, {"ok", c.ok}, {"seconds", c.seconds}};
  j["clean_accuracy"] = c.ok ? nlohmann::json(c.clean_accuracy) : nlohmann::json();
  j["proxy_asr"] = c.ok ? nlohmann::json(c.proxy_asr) : nlohmann::json();
  j["error"] = c.ok ? nlohmann::json() : nlohmann::json(c.error);
  j["figures"] = c.figures;
  return j;
}

}  // namespace bdguard
