// K-Arm's score and its JSON (bdguard/k_arm.h).
#include <cmath>

#include "bdguard/k_arm.h"

namespace bdguard {

double k_arm_score(double size, double bound, double ratio, double ratio_bound) {
  double score = std::log(bound / size);
  if (!std::isnan(ratio) && ratio < ratio_bound) score -= std::log(ratio_bound / ratio);
  return score;
}

nlohmann::json to_json(const KArmOptions& o) {
  return {{"seed", o.seed},
          {"gamma", o.gamma},
          {"global_theta", o.global_theta},
          {"local_theta", o.local_theta},
          {"max_sources", o.max_sources},
          {"min_arms", o.min_arms},
          {"max_arms", o.max_arms},
          {"min_source_images", o.min_source_images},
          {"batch", o.batch},
          {"batches_per_step", o.batches_per_step},
          {"steps", o.steps},
          {"rounds", o.rounds},
          {"min_steps", o.min_steps},
          {"warmup_rounds", o.warmup_rounds},
          {"lr", o.lr},
          {"init_cost", o.init_cost},
          {"cost_multiplier", o.cost_multiplier},
          {"patience", o.patience},
          {"attack_success", o.attack_success},
          {"early_stop_patience", o.early_stop_patience},
          {"epsilon", o.epsilon},
          {"symmetric_check", o.symmetric_check},
          {"universal_bound", o.universal_bound},
          {"specific_bound", o.specific_bound},
          {"ratio_bound", o.ratio_bound}};
}

namespace {
nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}
nlohmann::json label_or_null(int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

nlohmann::json to_json(const KArmResult& r) {
  nlohmann::json arms = nlohmann::json::array();
  for (const KArmArm& a : r.arms) {
    arms.push_back({{"target", a.target},
                    {"source", label_or_null(a.source)},
                    {"screen", a.screen},
                    {"passed_screen", a.passed_screen},
                    {"steps", a.steps},
                    {"rounds", a.rounds},
                    {"l1", number_or_null(a.l1)},
                    {"size", a.size},
                    {"best_success", a.best_success},
                    {"reached", a.reached}});
  }
  return {{"method", "k-arm"},
          {"arms", arms},
          {"target", label_or_null(r.target)},
          {"source", label_or_null(r.source)},
          {"l1", r.l1},
          {"size", r.size},
          {"attack_success", r.attack_success},
          {"sym_l1", number_or_null(r.sym_l1)},
          {"ratio", number_or_null(r.ratio)},
          {"bound", r.bound},
          {"score", r.score},
          {"backdoored", r.backdoored},
          {"top_k", r.top_k},
          {"steps", r.steps},
          {"n_clean", r.n_clean},
          {"classes", r.classes},
          {"input", r.input},
          {"pixel_range", {r.pixel_min, r.pixel_max}},
          {"screen_s", r.screen_s},
          {"seconds", r.seconds}};
}

}  // namespace bdguard
