// bdguard repair: the candidate defenses on a model, one picked from clean data alone by
// the proxy of the attack, saved in the input's format (docs/commands/repair.md).
#include <cstdio>

#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bdguard/repair.h"
#include "commands.h"
#include "common.h"
#include "defend_cli.h"
#include "detect_cli.h"

namespace bdguard::cli {
namespace {

struct RepairCliOptions {
  ModelOptions model;
  GlobalOptions global;
  NcFlags nc;  // --seed, the proxy's Neural Cleanse
  std::string clean, out, methods = "auto";
  std::vector<std::string> sets;
  double max_drop = kRepairMaxDrop;
};

std::vector<std::string> method_list(const std::string& text) {
  return text == "auto" ? repair_auto_methods() : parse_methods(text);
}

std::string labels_text(const std::vector<int64_t>& labels) {
  std::string s;
  for (int64_t l : labels) s += (s.empty() ? "" : ", ") + std::to_string(l);
  return s.empty() ? "none" : s;
}

nlohmann::json repair_json(const RepairResult& r, const RepairCliOptions& o, const std::string& sha,
                           double max_drop) {
  nlohmann::json cands = nlohmann::json::array();
  for (const auto& c : r.candidates) cands.push_back(to_json(c));
  const bool picked = r.picked >= 0;
  const RepairCandidate* p = picked ? &r.candidates[static_cast<size_t>(r.picked)] : nullptr;
  return {
      {"method", p ? nlohmann::json(p->method) : nlohmann::json()},
      {"clean_accuracy", p ? nlohmann::json(p->clean_accuracy) : nlohmann::json()},
      {"proxy_asr", p ? nlohmann::json(p->proxy_asr) : nlohmann::json()},
      {"accuracy_drop", p ? nlohmann::json(r.base_accuracy - p->clean_accuracy) : nlohmann::json()},
      {"candidates", cands},
      {"output", p ? nlohmann::json(o.out) : nlohmann::json()},
      {"sha256", p ? nlohmann::json(sha) : nlohmann::json()},
      {"seconds", r.seconds},
      {"model", o.model.model},
      {"max_drop", max_drop},
      {"before", {{"clean_accuracy", r.base_accuracy}, {"proxy_asr", r.base_proxy_asr}}},
      {"proxy",
       {{"source", "neural-cleanse"},
        {"labels", r.proxy_labels},
        {"flagged", r.neural_cleanse.flagged},
        {"neural_cleanse_seconds", r.neural_cleanse.seconds}}},
      {"n_train", r.n_train},
      {"n_holdout", r.n_holdout}};
}

void run_repair(const RepairCliOptions& o) {
  apply_threads(o.global.threads);
  RepairOptions ro;
  ro.methods = method_list(o.methods);
  MethodFlags flags;
  flags.sets = o.sets;
  ro.params = methods_params(ro.methods, flags);
  ro.max_drop = o.max_drop;
  Model m = load(o.model, o.model.model);
  m.require_classifier();
  check_output_path(m, o.out);
  const TensorData clean =
      read_tensor_data(LabDataset(o.clean, m.input_shape(), data_options(o.model, m)));
  ro.defense.seed = o.nc.seed;
  ro.defense.eval_batch = o.global.batch;
  ro.neural_cleanse = nc_options(o.nc, m);
  auto stages = nc_progress(o.global.quiet, "repair");
  ro.neural_cleanse.stage = stages.first;
  ro.neural_cleanse.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  ro.defense.train_progress = train_progress_bar("repair", o.global.quiet);
  ro.on_start = [&o](const std::string& what) {
    if (!o.global.quiet) std::fprintf(stderr, "repair: %s\n", what.c_str());
  };
  const RepairResult r = repair(m, clean, ro);
  std::string sha;
  if (r.picked >= 0) {
    save_model(r.model, o.out);
    sha = sha256_file(o.out);
  }
  if (o.global.json) {
    print_json(repair_json(r, o, sha, o.max_drop));
  } else {
    std::printf(
        "repair of %s: %lld clean images trained on, %lld held out; proxy: the reversed "
        "trigger of label %s (Neural Cleanse)\n",
        o.model.model.c_str(), static_cast<long long>(r.n_train),
        static_cast<long long>(r.n_holdout), labels_text(r.proxy_labels).c_str());
    std::printf("  %-14s %16s %10s %9s  %-22s\n", "", "held-out acc. %", "proxy ASR %", "seconds",
                "setting chosen");
    std::printf("  %-14s %16.2f %10.2f %9s\n", "(the model)", r.base_accuracy, r.base_proxy_asr,
                "");
    for (size_t i = 0; i < r.candidates.size(); ++i) {
      const RepairCandidate& c = r.candidates[i];
      if (!c.ok) {
        std::printf("  %-14s failed: %s\n", c.method.c_str(), c.error.c_str());
        continue;
      }
      std::printf("  %-14s %16.2f %10.2f %9.1f  %-22s%s\n", c.method.c_str(), c.clean_accuracy,
                  c.proxy_asr, c.seconds, tuned_text(c.figures).c_str(),
                  static_cast<int>(i) == r.picked                   ? "  <- picked"
                  : r.base_accuracy - c.clean_accuracy > o.max_drop ? "  (drop over --max-drop)"
                                                                    : "");
    }
    if (r.picked >= 0) {
      const RepairCandidate& p = r.candidates[static_cast<size_t>(r.picked)];
      const double drop = r.base_accuracy - p.clean_accuracy;
      char change[64];
      std::snprintf(change, sizeof change, drop >= 0 ? "%.2f points lost" : "%.2f points gained",
                    drop >= 0 ? drop : -drop);
      std::printf(
          "picked %s: the lowest proxy ASR (%.2f %%) within %g points of the model's held-out "
          "accuracy (%s)\nWrote %s (sha256 %s)\n",
          p.method.c_str(), p.proxy_asr, o.max_drop, change, o.out.c_str(), sha.c_str());
    }
  }
  if (r.picked < 0) {
    fail<InvalidArgument>(o.out, "repair",
                          "a candidate within --max-drop " + std::to_string(o.max_drop) +
                              " points of the model's held-out accuracy",
                          "none (see the table; nothing was written)");
  }
}

}  // namespace

void setup_repair(CLI::App& app) {
  auto opt = std::make_shared<RepairCliOptions>();
  auto* sub = app.add_subcommand(
      "repair",
      "run the candidate defenses and keep the one with the lowest proxy ASR (clean data only)");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean validation data (lab HDF5, image folder, npz)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--out", opt->out, "the repaired model (.h5 or .onnx, as the input)")->required();
  sub->add_option("--methods", opt->methods, "auto, or a list of defend's methods")
      ->capture_default_str();
  sub->add_option("--max-drop", opt->max_drop,
                  "points of held-out clean accuracy a candidate may lose")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--set", opt->sets, "a method's option: [METHOD.]KEY=VALUE (repeatable)");
  add_nc_options(*sub, opt->nc);
  sub->callback([opt] { run_repair(*opt); });
}

}  // namespace bdguard::cli
