// What `bdguard detect` writes (and `bdguard run` reuses): DIR/detect.json, the
// reversed triggers as PNG, and the plot of the mask norms.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/detect.h"
#include "bdguard/k_arm.h"
#include "bdguard/report.h"

namespace bdguard {

// The labels whose triggers are written: every flagged one and the three smallest norms.
std::vector<int64_t> trigger_labels(const NeuralCleanseResult& r);

// DIR/STEM_mask.png, STEM_pattern.png (0..255 over the pixel range lo..hi) and
// STEM_trigger.png (mask x pattern) of one reversed trigger; returns the paths relative
// to DIR.
std::vector<std::string> write_trigger_images(const LabelTrigger& t, double lo, double hi,
                                              const std::string& dir, const std::string& stem);

// DIR/triggers/label_<K>_mask.png, _pattern.png, _trigger.png for `labels`; returns the
// written paths, relative to DIR.
std::vector<std::string> write_triggers(const NeuralCleanseResult& r,
                                        const std::vector<int64_t>& labels, const std::string& dir);

// K-Arm's reversed trigger: DIR/triggers/k-arm_label_<T>[_from_<S>]_mask.png,
// _pattern.png, _trigger.png and _example.png (a clean image of the arm stamped).
std::vector<std::string> write_k_arm_trigger(const KArmResult& r, const std::string& dir);

// The mask-norm plot ("mask_norms": the norm of every label, the flagged ones marked,
// the flagging threshold median - 2 MAD drawn) and the data block it reads.
PlotSpec mask_norm_plot(const NeuralCleanseResult& r);
std::string mask_norm_data(const NeuralCleanseResult& r);

// DIR/plots/mask_norms.{png,svg} (and plots/plots.gp, which draws them).
PlotResult write_detect_plots(const NeuralCleanseResult& r, const std::string& dir,
                              const ReportOptions& options);

// detect.json: the result, `settings`, `timings`, and the trigger files.
nlohmann::json detect_json(const NeuralCleanseResult& r, const nlohmann::json& settings,
                           const std::vector<std::string>& trigger_files);

// The one line `bdguard detect` prints: "backdoored: yes (label 0: anomaly index 5.31,
// mask L1 16.0; trigger triggers/label_0_trigger.png)" or "backdoored: no (largest
// anomaly index 1.42, label 7)".
std::string detect_verdict(const NeuralCleanseResult& r, const std::string& dir);

// A Neural Cleanse result read back from a folder `bdguard detect --out DIR` wrote:
// detect.json's verdict and norms, and the flagged labels' masks and patterns from
// their PNG files (8-bit, as the original code reloads them), for a model whose input
// is `input_shape` (C, H, W) with `num_classes` classes. Untrusted: every field and
// image is checked.
NeuralCleanseResult read_detect_dir(const std::string& dir, const Shape& input_shape,
                                    int64_t num_classes);

}  // namespace bdguard
