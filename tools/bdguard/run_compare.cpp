// The comparison stage of `bdguard run` and `bdguard demo` (defend_cli.h): every defense
// on the BadNet, the table in the run's report.
#include <cstdio>
#include <filesystem>

#include "bdguard/compare_files.h"
#include "defend_cli.h"

namespace bdguard::cli {

void add_run_compare_flags(CLI::App& app, RunCompareFlags& f) {
  app.add_flag("--no-compare", f.no_compare, "skip the comparison of defenses");
  app.add_option("--compare-methods", f.methods, "defenses compared: all, or a,b,...")
      ->capture_default_str();
  app.add_option("--compare-set", f.sets,
                 "an option of the compared defenses: [METHOD.]KEY=VALUE (see bdguard defend "
                 "METHOD --list-options)");
}

CompareResult run_compare_stage(const Model& m, const TensorData& valid,
                                const TensorData& poisoned_valid, const TensorData& test,
                                const TensorData& poisoned_test, const NeuralCleanseResult* nc,
                                const RunCompareFlags& f, uint64_t seed, int64_t batch,
                                const std::string& out, ProgressFn progress,
                                NeuralCleanseOptions nc_options) {
  CompareData data;
  data.valid = valid;
  data.poisoned_valid = poisoned_valid;
  data.test = test;
  data.poisoned_test = poisoned_test;
  data.neural_cleanse = nc;
  MethodFlags flags;
  flags.sets = f.sets;
  CompareOptions o;
  o.methods = parse_methods(f.methods);
  o.params = methods_params(o.methods, flags);
  o.out_dir = out;
  o.defense.seed = seed;
  o.defense.eval_batch = batch;
  // Neural Cleanse for nc-unlearn and the proxy when the run's detection stage was skipped.
  o.defense.neural_cleanse = nc_options;
  o.defense.neural_cleanse.seed = seed;
  size_t done = 0;
  const size_t total = o.methods.size();
  o.on_start = [&](const std::string&) {  // each method (and the proxy's Neural Cleanse)
    if (progress && done < total)
      progress(static_cast<int64_t>(done++), static_cast<int64_t>(total));
  };
  CompareResult r = compare_defenses(m, data, o);
  if (progress) progress(static_cast<int64_t>(total), static_cast<int64_t>(total));
  nlohmann::json settings = {{"methods", o.methods}, {"seed", seed}, {"sets", f.sets}};
  write_compare_tables(r, std::filesystem::path(m.source_path).filename().string(), settings, out);
  return r;
}

}  // namespace bdguard::cli
