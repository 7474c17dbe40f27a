// The zoo maker: N models of varied, seeded recipes (architecture, attack, trigger,
// position, target, poison rate), labelled, for measuring detectors and defenses.
//
// A zoo is a folder Z:
//   Z/zoo_plan.json          the recipes (written once by `zoo make`; a later run with
//                            other options is refused, the same options resume it)
//   Z/models/<name>.<ext>    each model (names say nothing of the recipe)
//   Z/data/valid.h5, test.h5 the clean held-out images every model shares
//   Z/data/bd_{valid,test}_<name>.h5   each BadNet's poisoned images
//   Z/records/<name>.json    each model's training record (attempts, figures, SHA-256)
//   Z/logs/<name>.log        each model's training output
//   Z/ground_truth.csv       model,backdoored,target,kind,arch,poison_rate
//   Z/zoo.json               every recipe, figure and SHA-256 (written when all are done)
//
// Each model is trained by `bdguard attack` in a child process (the command comes from
// the tool: the library knows nothing of the command line). A BadNet whose attack did
// not take (ASR below min_asr) or whose clean accuracy is more than max_drop points below
// its clean twins' (the zoo's clean models of the same architecture) is retrained with
// the next seed, up to max_attempts; every attempt is recorded.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace bdguard {

constexpr const char* kZooPlanJson = "zoo_plan.json";
constexpr const char* kZooJson = "zoo.json";
constexpr const char* kZooGroundTruthCsv = "ground_truth.csv";

struct ZooOptions {
  std::string out;
  int64_t models = 40;
  uint64_t seed = 0;
  std::vector<std::string> kinds = {"clean", "badnets", "blended", "sig", "wanet", "all-to-all"};
  std::vector<std::string> archs = {"fmnist", "resbn", "vgg"};
  double clean_fraction = 0.35;
  std::vector<double> poison_rates = {0.01, 0.03, 0.05, 0.1};
  std::string format = "keras";  // keras or onnx
  int64_t max_train = 20000;
  int64_t epochs = 3;
  std::string data;  // the Fashion-MNIST folder
  double min_asr = 85;
  double max_drop = 5;
  int max_attempts = 3;
};

// Every zoo kind, in the order of the docs.
const std::vector<std::string>& zoo_kinds();

struct ZooRecipe {
  int64_t index = 0;
  std::string name;    // "model_007"
  std::string kind;    // clean, badnets, blended, sig, wanet, all-to-all
  std::string method;  // the `bdguard attack` method
  std::string arch;
  std::string mapping;  // all-to-one or all-to-all
  int64_t target = 0;   // all-to-one BadNets (unused otherwise)
  double poison_rate = 0;
  uint64_t seed = 0;  // the first attempt's; attempt k uses seed + k
  // The attack's own flags (trigger, position, alpha, ...), as `bdguard attack` takes them.
  std::vector<std::string> flags;
  bool backdoored() const { return kind != "clean"; }
};

// The recipes of a zoo: round(models * clean_fraction) clean models, the rest spread
// evenly over the other kinds; architectures in turn within each kind; targets, poison
// rates, triggers and positions drawn from `seed`; then shuffled, so a model's name and
// index say nothing of its kind. Throws InvalidArgument on an unknown kind or empty list.
std::vector<ZooRecipe> plan_zoo(const ZooOptions& o);

// The `bdguard attack` arguments (after the program) that train recipe `r` with `seed`
// into `out_dir` on `threads` threads.
std::vector<std::string> zoo_attack_args(const ZooOptions& o, const ZooRecipe& r, uint64_t seed,
                                         const std::string& out_dir, int threads);

nlohmann::json to_json(const ZooOptions& o);
nlohmann::json to_json(const ZooRecipe& r);

// Z/zoo_plan.json: written when absent; when present, its options must equal `o`'s
// (InvalidArgument naming what differs). Returns the recipes.
std::vector<ZooRecipe> open_zoo(const ZooOptions& o);
struct ZooPlan {
  ZooOptions options;
  std::vector<ZooRecipe> recipes;
};
// Reads Z/zoo_plan.json (FormatError naming the bad key).
ZooPlan read_zoo_plan(const std::string& dir);

// One training attempt, as attack.json reports it.
struct ZooAttempt {
  uint64_t seed = 0;
  double clean_accuracy = 0, asr = 0, train_seconds = 0;
  bool accepted = false;
  std::string why;  // why it was not accepted
};
struct ZooRecord {
  std::string name, file, sha256;  // file relative to Z
  bool criteria_met = false;       // the kept attempt met min_asr and max_drop
  std::vector<ZooAttempt> attempts;
  int kept = -1;  // the attempt whose model is kept
};
nlohmann::json to_json(const ZooRecord& r);
// Z/records/<name>.json, when present and its model file still has its SHA-256.
std::optional<ZooRecord> read_zoo_record(const std::string& dir, const ZooRecipe& r);

// Trains recipe `index` of the zoo (skips it when its record is there): runs `train`
// (the attack's argv after the program, given the seed and output folder) for each
// attempt, reads its attack.json, keeps the first attempt that meets the criteria (or
// the one with the highest ASR once max_attempts are spent), moves its model and data
// into place and writes its record. `train` returns the child's exit status text ("" on
// success).
using ZooTrain = std::function<std::string(const std::vector<std::string>& attack_args)>;
ZooRecord train_zoo_model(const ZooPlan& plan, int64_t index, int threads, const ZooTrain& train);

// The mean clean accuracy of the finished clean models of `arch` (nullopt: none yet).
std::optional<double> clean_twin_accuracy(const ZooPlan& plan, const std::string& arch);

// The models without a record.
std::vector<int64_t> zoo_missing(const ZooPlan& plan);

// Z/ground_truth.csv and Z/zoo.json from the records; InvalidArgument naming the models
// without one. Returns zoo.json's document.
nlohmann::json finish_zoo(const ZooPlan& plan);

}  // namespace bdguard

namespace bdguard {

// Runs `program args...` (bdguard attack), its stderr passed through to ours, and
// returns "" when it succeeded, else how it ended with its last error line.
std::string run_zoo_child(const std::string& program, const std::vector<std::string>& args);

struct ZooLocalOptions {
  int jobs = 1;
  // The command of one model's task (argv[0]: the program): `bdguard zoo task Z --index I`.
  std::function<std::vector<std::string>(int64_t index)> command;
  // After each task: its index, and "" or why it failed.
  std::function<void(int64_t index, const std::string& error)> on_done;
};
// Trains every model without a record as its own process, `jobs` at a time, each with
// its output in Z/logs/<name>.log: the clean models first (the BadNets compare their
// accuracy with them), then the others. Returns the number of failed tasks.
int64_t run_zoo_local(const ZooPlan& plan, const ZooLocalOptions& o);

struct ZooSlurmOptions {
  std::string bdguard;  // the absolute path of the binary the jobs run
  std::string partition, time, mem;
  int cpus = 1;
  int64_t array_limit = 0;
};
struct ZooSlurmScripts {
  std::string clean, models, finish;  // sbatch texts ("" where no model is left)
  std::vector<int64_t> clean_indices, model_indices;
};
// The array jobs of the models without a record (clean ones first, then the others
// after them: afterany:CLEAN_JOB_ID) and the finish job (`bdguard zoo finish Z`,
// afterany:MODELS_JOB_ID); the placeholders are replaced when submitting.
ZooSlurmScripts zoo_slurm_scripts(const ZooPlan& plan, const ZooSlurmOptions& o);
constexpr const char* kZooCleanJob = "CLEAN_JOB_ID";
constexpr const char* kZooModelsJob = "MODELS_JOB_ID";

}  // namespace bdguard
