// What `attack`, `finetune` and `demo` share on the command-line side.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include <CLI/CLI.hpp>

#include "bdguard/badnets.h"
#include "bdguard/finetune.h"
#include "bdguard/sweep_files.h"
#include "common.h"

namespace bdguard::cli {

// The full command that reproduces an attack, every option spelled out (`format`:
// "keras" or "onnx", the model file's format).
std::string attack_command(const AttackOptions& a, int threads, const std::string& out,
                           const std::string& format = "keras");
// Writes OUT/bd_net.h5 (or OUT/bd_net.onnx with format "onnx"),
// OUT/data/{valid,test,bd_valid,bd_test}.h5, OUT/example_poisoned.png and
// OUT/attack.json; returns the attack.json document (its "model" names the model file).
nlohmann::json write_attack_outputs(const AttackResult& r, const AttackOptions& a,
                                    const std::string& out, const std::string& format = "keras");

// SHA-256 of DIR/{valid,test,bd_valid,bd_test}.h5, keyed by file name.
nlohmann::json data_sha256(const std::string& dir);

// Binds --epochs, --lr, --optimizer, --seed, --holdout of fine-tuning (not --batch, which
// `prune` and `run` use for evaluation). `optimizer` is parsed with parse_optimizer().
void add_finetune_options(CLI::App& app, FinetuneOptions& f, std::string& optimizer);
// `prune --finetune` and `run`: fine_prune_saved() with the fine-tuning flags (`ft`,
// `optimizer` as given to add_finetune_options), evaluation in batches of
// `global.batch`, a progress bar per model unless `global.quiet`, and a warning for each
// model whose training diverged.
std::vector<FinePrunedModel> fine_prune_with_flags(const Model& m, const SweepResult& r,
                                                   const std::vector<SavedModel>& saved,
                                                   const FinetuneData& data, FinetuneOptions ft,
                                                   const std::string& optimizer,
                                                   const GlobalOptions& global);
// One `warning:` line on stderr when fine-tuning `model` diverged (epoch > 0).
void warn_if_diverged(int diverged_epoch, const std::string& model);
// The before/after table of a fine-tuning run on stdout.
void print_finetune_summary(const FinetuneResult& r, const std::string& model,
                            const std::string& out);

}  // namespace bdguard::cli
