// GoodNet: the BadNet B and a pruned net P side by side. G outputs B's label where
// the two agree and the extra label N (the number of classes; the lab's "backdoor
// detected") where they disagree. Labels of G lie in [0, N].
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

// G's labels from B's and P's predictions.
std::vector<int64_t> goodnet_labels(const std::vector<int64_t>& badnet,
                                    const std::vector<int64_t>& pruned, int64_t num_classes);
// With STRIP (strip.h) beside it: N also where STRIP flags the input.
std::vector<int64_t> with_strip(std::vector<int64_t> goodnet, const std::vector<bool>& flagged,
                                int64_t num_classes);

// Every GoodNet metric, in percent, from the prediction vectors on a clean and a
// poisoned data set (the poisoned labels are the attack target).
struct GoodNetRow {
  std::string pruned;           // name of the pruned net (its path)
  bool strip = false;           // G answers N where STRIP flags the input too
  double goodnet_accuracy = 0;  // G's label == true label, clean data
  double goodnet_asr = 0;       // G's label == attack target, poisoned data
  double detection_rate = 0;    // poisoned inputs labelled N
  double false_alarm_rate = 0;  // clean inputs labelled N
  double badnet_accuracy = 0, badnet_asr = 0;
  double pruned_accuracy = 0, pruned_asr = 0;
  int64_t n_clean = 0, n_poisoned = 0;
};

// `strip_clean` / `strip_poisoned`: STRIP's flags on the two sets (empty: no STRIP).
GoodNetRow goodnet_row(
    const std::string& pruned_name, int64_t num_classes, const std::vector<int64_t>& clean_labels,
    const std::vector<int64_t>& poisoned_labels, const std::vector<int64_t>& badnet_clean,
    const std::vector<int64_t>& badnet_poisoned, const std::vector<int64_t>& pruned_clean,
    const std::vector<int64_t>& pruned_poisoned, const std::vector<bool>& strip_clean = {},
    const std::vector<bool>& strip_poisoned = {});

nlohmann::json to_json(const GoodNetRow& row);

// Throws ShapeMismatch unless B and P have the same graph (op names, types, output
// dims), input shape and class count.
void check_goodnet_pair(const Model& badnet, const Model& pruned, const std::string& badnet_path,
                        const std::string& pruned_path);

// A repaired model as one artifact: the two model files (paths relative to the
// manifest), their SHA-256, the architecture of weights-only files, the input's
// preprocessing (scale, mean, std) and N.
struct GoodNetManifest {
  std::string badnet, pruned;  // absolute or relative to the current folder once read
  std::string badnet_sha256, pruned_sha256;
  std::string arch, arch_from;
  Preprocess preprocess;
  int64_t num_classes = 0;
  // STRIP beside the pair (`goodnet save --strip`): its clean validation file (hashed
  // like the models) and settings; the threshold is computed again from them.
  bool strip = false;
  std::string strip_valid, strip_valid_sha256;
  int strip_overlays = 64;
  double strip_alpha = 0.5, strip_frr = 0.05;
  uint64_t strip_seed = 0;
};

// Writes the manifest at `path` (paths stored relative to its folder; hashes computed now).
void write_goodnet_manifest(const GoodNetManifest& m, const std::string& path);
// Reads a manifest and checks both files' SHA-256: a changed model file is refused.
GoodNetManifest read_goodnet_manifest(const std::string& path);

}  // namespace bdguard
