// The defenses' flags and output (defend_cli.h).
#include "defend_cli.h"

#include <cmath>
#include <cstdio>

#include "bdguard/error.h"

namespace bdguard::cli {
namespace {

struct Flag {
  const char* name;
  const char* key;
  const char* help;
};

// Each flag sets one option of every method that has the key (defend.h's options).
const std::vector<Flag>& flag_table() {
  static const std::vector<Flag> flags = {
      {"--epochs", "epochs", "training epochs (finetune, fine-pruning, nc-unlearn, nad, ...)"},
      {"--lr", "lr", "learning rate of the method's training"},
      {"--train-batch", "batch", "images per training step"},
      {"--optimizer", "optimizer", "sgd (momentum 0.9) or adam"},
      {"--holdout", "holdout", "fraction of the clean data held out for every choice"},
      {"--drop", "drop", "fine-pruning: validation accuracy drop (points) to prune to"},
      {"--layer", "layer", "fine-pruning: the node to prune (default: bdguard prune's)"},
      {"--unlearn-fraction", "unlearn_fraction",
       "nc-unlearn: fraction of the clean images stamped with the reversed trigger"},
      {"--clp-u", "u", "clp: prune channels above mean + u x std of their layer"},
      {"--anp-eps", "eps", "anp: bound of the neurons' multiplicative noise"},
      {"--anp-iterations", "iterations", "anp: mini-batches of mask optimisation"},
      {"--anp-threshold", "threshold", "anp: prune neurons with mask <= this (-1: choose)"},
      {"--anp-max-drop", "max_drop",
       "anp: the chosen threshold loses at most this many held-out points"},
      {"--nad-teacher-epochs", "teacher_epochs", "nad: epochs of the teacher's fine-tuning"},
      {"--nad-betas", "betas", "nad: attention-loss weights of the last Conv stages (B,B,B)"},
      {"--ibau-rounds", "rounds", "i-bau: rounds of perturbation and unlearning"},
      {"--ibau-k", "k", "i-bau: fixed-point iterations of the hypergradient"},
      {"--sam-rho", "rho", "ft-sam: radius of the sharpness-aware weight perturbation"},
  };
  return flags;
}

// `text` as a value of the option's type (its default's).
nlohmann::json parse_value(const std::string& method, const std::string& key,
                           const std::string& text) {
  const nlohmann::json schema = defense_defaults(method);
  const nlohmann::json& def = schema.at(key).at("default");
  if (def.is_string()) return text;
  try {
    nlohmann::json v = nlohmann::json::parse(text);
    if (v.is_primitive() && !v.is_null()) return v;
  } catch (const nlohmann::json::exception&) {
  }
  return text;  // defense_params then names the type it expected
}

// Splits "[METHOD.]KEY=VALUE".
void split_set(const std::string& s, std::string& method, std::string& key, std::string& value) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) {
    fail<InvalidArgument>("", "--set", "[METHOD.]KEY=VALUE", "'" + s + "'");
  }
  key = s.substr(0, eq);
  value = s.substr(eq + 1);
  method.clear();
  if (const auto dot = key.find('.'); dot != std::string::npos) {
    method = key.substr(0, dot);
    key = key.substr(dot + 1);
    if (!is_defense_method(method)) defense_defaults(method);  // throws, listing the methods
  }
}

std::string flag_of(const std::string& key) {
  for (const Flag& f : flag_table()) {
    if (key == f.key) return f.name;
  }
  return "--set " + key;
}

}  // namespace

void add_method_flags(CLI::App& app, MethodFlags& f) {
  for (const Flag& flag : flag_table()) {
    app.add_option_function<std::string>(
           flag.name,
           [&f, key = std::string(flag.key)](const std::string& v) { f.values[key] = v; },
           flag.help)
        ->group("Defense options");
  }
  app.add_option("--set", f.sets,
                 "any option of the methods: [METHOD.]KEY=VALUE (see defend METHOD --list-options)")
      ->group("Defense options");
}

std::map<std::string, nlohmann::json> methods_params(const std::vector<std::string>& methods,
                                                     const MethodFlags& f) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& m : methods) out[m] = nlohmann::json::object();
  auto apply = [&](const std::string& only, const std::string& key, const std::string& text,
                   const std::string& flag) {
    bool used = false;
    for (const auto& m : methods) {
      if (!only.empty() && m != only) continue;
      if (!defense_defaults(m).contains(key)) continue;
      out[m][key] = parse_value(m, key, text);
      used = true;
    }
    if (!used) {
      std::string names;
      for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m;
      fail<InvalidArgument>("", flag, "an option of " + (only.empty() ? names : only),
                            "no such option (see bdguard defend METHOD --list-options)");
    }
  };
  for (const auto& [key, text] : f.values) apply("", key, text, flag_of(key));
  for (const auto& s : f.sets) {
    std::string method, key, value;
    split_set(s, method, key, value);
    if (!method.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
      fail<InvalidArgument>("", "--set " + s, "a method that runs", "'" + method + "'");
    }
    apply(method, key, value, "--set " + s);
  }
  // Checked here (an error names the flag's value), but passed on as given: a setting the
  // user did not set is the method's to choose (defend.h: TunedSetting).
  for (const auto& m : methods) defense_params(m, out[m]);
  return out;
}

nlohmann::json method_params(const std::string& method, const MethodFlags& f) {
  return methods_params({method}, f).at(method);
}

std::vector<std::string> parse_methods(const std::string& text) {
  if (text == "all" || text.empty()) return defense_methods();
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    if (!is_defense_method(name)) defense_defaults(name);  // throws, listing the methods
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    start = comma + 1;
  }
  return out;
}

nlohmann::json defense_json(const DefenseResult& r, const std::string& output,
                            const std::string& sha256) {
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

std::string tuned_text(const nlohmann::json& figures) {
  if (!figures.contains("tuning") || !figures["tuning"].value("tuned", false)) return "";
  const nlohmann::json& t = figures["tuning"];
  char value[32];
  std::snprintf(value, sizeof value, "%g", t["chosen"].get<double>());
  return t["setting"].get<std::string>() + " " + value;
}

std::string figures_line(const DefenseResult& r) {
  const nlohmann::json& f = r.figures;
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  if (f.contains("channels_pruned") && f.contains("channels")) {
    add("channels pruned: " + f["channels_pruned"].dump() + " of " + f["channels"].dump());
  }
  if (f.contains("threshold") && f["threshold"].is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "threshold %.3g", f["threshold"].get<double>());
    add(buf);
  }
  if (f.contains("flagged")) add("labels flagged by Neural Cleanse: " + f["flagged"].dump());
  if (f.contains("best_epoch") && f.contains("epochs_run")) {
    add("best epoch " + f["best_epoch"].dump() + " of " + f["epochs_run"].dump());
  }
  if (const std::string t = tuned_text(f); !t.empty()) {
    add(t + " chosen of " + std::to_string(f["tuning"]["trials"].size()) + " by the proxy");
  }
  if (f.contains("note")) add(f["note"].get<std::string>());
  return out.empty() ? "(no figures)" : out;
}

}  // namespace bdguard::cli
