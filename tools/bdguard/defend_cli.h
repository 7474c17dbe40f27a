// The defenses' flags and output, shared by `bdguard defend`, `bdguard compare` and the
// comparison stage of `bdguard run`.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/compare.h"
#include "bdguard/defend.h"

namespace bdguard::cli {

// Flags for the methods' options: each sets one option key (--drop: "drop") of every
// method that has it, and --set [METHOD.]KEY=VALUE sets any (for all methods that have
// KEY, or for METHOD alone).
struct MethodFlags {
  std::map<std::string, std::string> values;  // option key -> flag text, as given
  std::vector<std::string> sets;              // --set entries
};

// Binds --epochs, --lr, --batch-size, --optimizer, --holdout, --drop, --layer,
// --unlearn-fraction, --clp-u, ... and --set.
void add_method_flags(CLI::App& app, MethodFlags& f);
// The options of `method` the flags set, and only those (checked: InvalidArgument for a
// flag the method does not take, or a value of the wrong type); defend() fills in the
// rest, and chooses the tuned setting where the flags leave it.
nlohmann::json method_params(const std::string& method, const MethodFlags& f);
// The same for several methods at once: a flag applies to each method that has its key,
// and must apply to one at least.
std::map<std::string, nlohmann::json> methods_params(const std::vector<std::string>& methods,
                                                     const MethodFlags& f);
// "all" or "a,b,c" as method names (InvalidArgument naming an unknown one).
std::vector<std::string> parse_methods(const std::string& text);

// bdguard defend --json: method, clean_accuracy and asr (held-out validation data),
// seconds, output, sha256, the method's figures, before, params, counts.
nlohmann::json defense_json(const DefenseResult& r, const std::string& output,
                            const std::string& sha256);
// The comparison stage of `bdguard run` and `bdguard demo`: flags and the stage.
struct RunCompareFlags {
  bool no_compare = false;
  std::string methods = "all";
  std::vector<std::string> sets;  // --compare-set [METHOD.]KEY=VALUE
};
void add_run_compare_flags(CLI::App& app, RunCompareFlags& f);
// Every method of `f` on the BadNet with the run's four data sets (valid, poisoned
// valid, test, poisoned test), reusing `nc` (the run's Neural Cleanse, may be null;
// else `nc_options` run it for nc-unlearn and the proxy ASR); the defended models go to
// OUT/models/, compare.csv and compare.json to OUT.
CompareResult run_compare_stage(const Model& m, const TensorData& valid,
                                const TensorData& poisoned_valid, const TensorData& test,
                                const TensorData& poisoned_test, const NeuralCleanseResult* nc,
                                const RunCompareFlags& f, uint64_t seed, int64_t batch,
                                const std::string& out, ProgressFn progress,
                                NeuralCleanseOptions nc_options = {});

// The setting the method chose per model, "lr 0.1" (empty: none was tuned).
std::string tuned_text(const nlohmann::json& figures);
// One line of the method's own figures ("channels pruned: 3 of 48; best epoch 12 of 15").
std::string figures_line(const DefenseResult& r);

}  // namespace bdguard::cli
