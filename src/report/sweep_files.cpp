#include "bdguard/sweep_files.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "bdguard/fileio.h"
#include "bdguard/model_io.h"

namespace bdguard {

std::string format_drop(double drop) {
  char buf[32];
  if (drop == std::floor(drop) && std::fabs(drop) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", drop);
  } else {
    std::snprintf(buf, sizeof buf, "%g", drop);
  }
  return buf;
}

std::string drop_file_name(double drop, const std::string& extension) {
  return "model_X=" + format_drop(drop) + extension;
}

std::string finetuned_path(const std::string& path) {
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "_finetuned" + p.extension().string())).string();
}

std::vector<SavedModel> save_drop_models(const Model& m, const SweepResult& r,
                                         const std::vector<double>& drops, const std::string& dir) {
  std::vector<SavedModel> out;
  for (double d : drops) {
    SavedModel s;
    s.drop = d;
    s.step = first_step_with_drop(r, d);
    s.reached = s.step >= 0;
    s.file = drop_file_name(d, model_extension(m));
    if (s.reached) {
      s.path = dir + "/" + s.file;
      save_model(pruned_copy(m, r, s.step), s.path);
      s.sha256 = sha256_file(s.path);
    }
    out.push_back(s);
  }
  return out;
}

static std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

std::string sweep_csv(const SweepResult& r) {
  const bool test = r.n_test > 0;
  std::string out = "step,channel,fraction_pruned,valid_accuracy,valid_asr";
  out += test ? ",test_accuracy,test_asr\n" : "\n";
  for (const auto& s : r.steps) {
    out += std::to_string(s.step) + "," + (s.channel < 0 ? "" : std::to_string(s.channel)) + "," +
           num(s.fraction_pruned) + "," + num(s.valid_accuracy) + "," + num(s.valid_asr);
    if (test) out += "," + num(s.test_accuracy.value_or(0)) + "," + num(s.test_asr.value_or(0));
    out += "\n";
  }
  return out;
}

std::vector<FinePrunedModel> fine_prune_saved(
    const Model& m, const SweepResult& r, const std::vector<SavedModel>& saved,
    const FinetuneData& data, const FinetuneOptions& options,
    const std::function<TrainProgressFn(double drop)>& progress_for) {
  std::vector<FinePrunedModel> out;
  for (const auto& s : saved) {
    if (!s.reached) continue;
    Model pruned = pruned_copy(m, r, s.step);
    FinetuneOptions o = options;
    if (progress_for) o.progress = progress_for(s.drop);
    FinetuneResult ft = finetune(pruned, data, o);
    FinePrunedModel f;
    f.drop = s.drop;
    f.path = finetuned_path(s.path);  // beside model_X=<X>.<ext>
    save_model(pruned, f.path);
    f.sha256 = sha256_file(f.path);
    f.holdout_accuracy_before = ft.before.holdout_accuracy;
    f.holdout_accuracy_after = ft.after.holdout_accuracy;
    f.asr_before = ft.before.asr;
    f.asr_after = ft.after.asr;
    f.test_accuracy = ft.after.test_accuracy.value_or(0);
    f.test_asr = ft.after.test_asr.value_or(0);
    f.best_epoch = ft.best_epoch;
    f.diverged_epoch = ft.diverged_epoch;
    f.epochs = static_cast<int>(ft.epochs.size());
    f.seconds = ft.seconds;
    if (data.test && !r.test_predictions.empty()) {
      f.goodnet =
          goodnet_row(f.path, m.num_classes(), data.test->labels(), data.poisoned_test->labels(),
                      r.test_predictions[0], r.poisoned_test_predictions[0], ft.test_predictions,
                      ft.poisoned_test_predictions);
    }
    out.push_back(f);
  }
  return out;
}

nlohmann::json to_json(const FinePrunedModel& f) {
  auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {
      {"drop", f.drop},
      {"file", std::filesystem::path(f.path).filename().string()},
      {"sha256", f.sha256},
      {"holdout_accuracy_before", f.holdout_accuracy_before},
      {"holdout_accuracy_after", f.holdout_accuracy_after},
      {"valid_asr_before", opt(f.asr_before)},
      {"valid_asr_after", opt(f.asr_after)},
      {"test_accuracy", f.test_accuracy},
      {"test_asr", f.test_asr},
      {"best_epoch", f.best_epoch},
      {"epochs", f.epochs},
      {"diverged_epoch", f.diverged_epoch ? nlohmann::json(f.diverged_epoch) : nlohmann::json()},
      {"goodnet", f.goodnet.n_clean ? to_json(f.goodnet) : nlohmann::json(nullptr)}};
}

nlohmann::json sweep_json(const SweepResult& r, const std::vector<SavedModel>& saved,
                          const std::vector<GoodNetRow>& goodnet, const nlohmann::json& settings,
                          const std::vector<FinePrunedModel>& fine_pruned) {
  using nlohmann::json;
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json steps = json::array();
  for (const auto& s : r.steps) {
    steps.push_back({{"step", s.step},
                     {"channel", s.channel < 0 ? json(nullptr) : json(s.channel)},
                     {"fraction_pruned", s.fraction_pruned},
                     {"valid_accuracy", s.valid_accuracy},
                     {"valid_asr", s.valid_asr},
                     {"test_accuracy", opt(s.test_accuracy)},
                     {"test_asr", opt(s.test_asr)}});
  }
  const SweepStep& base = r.steps.front();
  json models = json::array();
  for (const auto& m : saved) {
    json e = {{"drop", m.drop}, {"file", m.file}, {"reached", m.reached}};
    if (m.reached) {
      const SweepStep& s = r.steps[static_cast<size_t>(m.step)];
      e["step"] = m.step;
      e["channels_pruned"] = m.step;
      e["fraction_pruned"] = s.fraction_pruned;
      e["valid_accuracy"] = s.valid_accuracy;
      e["valid_drop"] = base.valid_accuracy - s.valid_accuracy;
      e["valid_asr"] = s.valid_asr;
      e["test_accuracy"] = opt(s.test_accuracy);
      e["test_asr"] = opt(s.test_asr);
      e["sha256"] = m.sha256;
    } else {
      e["file"] = nullptr;
      e["max_valid_drop"] = base.valid_accuracy - r.steps.back().valid_accuracy;
    }
    models.push_back(e);
  }
  json rows = json::array();
  for (const auto& g : goodnet) rows.push_back(to_json(g));
  return {{"layer", r.layer},
          {"target",
           {{"node", r.layer},
            {"kind", r.kind == "output" ? "conv_output_channels" : "linear_input_features"},
            {"how", r.target},
            {"zeroed", r.zeroed}}},
          {"cut_layer", r.cut_layer},
          {"channels", r.channels},
          {"settings", settings},
          {"n_clean", r.n_clean},
          {"n_poisoned", r.n_poisoned},
          {"n_test", r.n_test},
          {"n_poisoned_test", r.n_poisoned_test},
          {"baseline",
           {{"valid_accuracy", base.valid_accuracy},
            {"valid_asr", base.valid_asr},
            {"test_accuracy", opt(base.test_accuracy)},
            {"test_asr", opt(base.test_asr)}}},
          {"mean_activation", r.mean_activation},
          {"pruning_order", r.order},
          {"steps", steps},
          {"saved_models", models},
          {"goodnet", rows},
          {"finetuned",
           [&] {
             nlohmann::json a = nlohmann::json::array();
             for (const auto& f : fine_pruned) a.push_back(to_json(f));
             return a;
           }()},
          {"timings",
           {{"below_cut_s", r.timings.below_cut_s},
            {"sweep_s", r.timings.sweep_s},
            {"images_recomputed", r.timings.images_recomputed},
            {"images_skipped", r.timings.images_skipped},
            {"images_certified", r.timings.images_certified},
            {"ties_verified", r.timings.ties_verified}}}};
}

}  // namespace bdguard
