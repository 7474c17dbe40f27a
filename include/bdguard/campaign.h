// Campaigns: one defense over a whole model zoo, on one machine or a Slurm cluster.
//
// A campaign is a folder C:
//   C/manifest.json       the models (index, path, name, sha256, ground truth) and the
//                         settings every task uses (written once, by `campaign init`)
//   C/tasks/I/            task I's outputs (for detect: what `bdguard detect --out` writes)
//   C/results/I.json      task I's summary, written atomically when it ends (ok or failed)
//   C/logs/I.log          task I's stdout and stderr under the local executor
//   C/slurm/              task.sbatch, merge.sbatch, jobs.json, logs/ (Slurm)
//   C/results.csv, C/results.json, C/report.html, C/plots/   the merge
//
// A task is one process per model. Its result carries a key, the SHA-256 of (the
// model's SHA-256, the settings): a task whose result is ok with the key it would
// write is done and is not redone, so a requeued or repeated task is harmless. A model
// whose file no longer has the manifest's SHA-256 is an error of that task only.
//
// The library knows nothing of the command line: the method a task runs (`detect`,
// `compare`) is a function the tool passes in, and the local executor starts the
// processes the tool describes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/detect.h"
#include "bdguard/report.h"

namespace bdguard {

constexpr int kManifestVersion = 1;
constexpr const char* kManifestJson = "manifest.json";
constexpr const char* kResultsCsv = "results.csv";
constexpr const char* kResultsJson = "results.json";

// Exit code of a task process that recorded a failure in results/I.json (a bad or
// hostile model, a hash mismatch): distinct from 1 (the task could not even record),
// 2 (bad usage) and a signal (a crash).
constexpr int kTaskFailedExit = 4;

// Now, in UTC, as every campaign file stamps its times ("2024-05-01T12:00:00Z"): the
// manifest's created, a result's started and finished, a Slurm job's submitted.
std::string campaign_timestamp();

// ---- The manifest ----------------------------------------------------------------

struct GroundTruth {
  bool backdoored = false;
  std::optional<int64_t> target;  // the attack's target label, when known
  bool all_to_all = false;        // target `all`: every label has its own target
  // The file's other columns, by lower-case name ("kind", "arch", "poison_rate", ...):
  // `kind` groups the metrics of `campaign merge`.
  std::map<std::string, std::string> extra;
};

struct CampaignModel {
  int64_t index = 0;
  std::string path;    // absolute
  std::string name;    // relative to the zoo folder, or the list's line
  std::string sha256;  // of the file at `campaign init`
  std::optional<GroundTruth> truth;
};

struct Manifest {
  std::string dir;  // the campaign folder (absolute); not stored in the file
  std::string tool, created, models_source;
  std::string ground_truth_file, ground_truth_sha256;  // "" without ground truth
  // Every flag the tasks use ("methods": "detect" or "compare", "clean" and
  // "clean_sha256", "threads", the model and Neural Cleanse flags, ...).
  nlohmann::json settings;
  std::vector<CampaignModel> models;
};

// The models of a zoo: a folder is searched (recursively, symbolic links to folders not
// followed) for files ending in .h5 or .onnx (any case), sorted by their path relative
// to it; any other file is a list, one model path per line, relative to the list's
// folder (blank lines and lines starting with '#' are skipped), in its order. Indices
// count from 0. Throws InvalidArgument (no model, a listed file that is missing or not
// a regular file, a file listed twice).
std::vector<CampaignModel> find_models(const std::string& dir_or_list);

// One row of a ground-truth CSV: a header naming the columns `model` and `backdoored`,
// optionally `target`, and any others (TrojAI's METADATA.csv, a zoo's `kind`, `arch`:
// kept in GroundTruth::extra), then one row per model with as many fields (the old form
// `model,backdoored,target` also takes rows without the target). backdoored: 1/0,
// true/false or yes/no; target: empty, a label >= 0 or `all` (an all-to-all attack),
// only on a backdoored row. Fields may be double-quoted. Throws FormatError naming the
// file, the line, what was expected and what was found.
struct GroundTruthRow {
  std::string model;
  GroundTruth truth;
  int line = 0;
};
std::vector<GroundTruthRow> read_ground_truth(const std::string& csv);

// Gives each model the row that names it: a row's `model` matches a model's name, its
// name without the extension, its file name, or its file name without the extension.
// A row that matches no model, or several, is an error (FormatError); models no row
// names keep no ground truth.
void attach_ground_truth(std::vector<CampaignModel>& models,
                         const std::vector<GroundTruthRow>& rows, const std::string& csv);

nlohmann::json to_json(const Manifest& m);
Manifest manifest_from_json(const nlohmann::json& doc, const std::string& dir);
// C/manifest.json, atomically.
void write_manifest(const Manifest& m);
// Reads C/manifest.json (FormatError naming it and the bad key).
Manifest read_manifest(const std::string& dir);
// The compute threads of each task: settings "threads", 1 when absent (FormatError
// naming the manifest when it is not an integer).
int task_threads(const Manifest& m);

// ---- Tasks -----------------------------------------------------------------------

// What a method returns for one model.
struct TaskOutcome {
  double score = 0;  // the detection score (NC: the largest anomaly index)
  // The method's own probability (scan's); without one, trojan_probability(score).
  std::optional<double> probability;
  int64_t suspect = -1;  // the label the score belongs to (-1: none)
  bool backdoored = false;
  std::optional<int64_t> target;     // the predicted target, when backdoored
  std::vector<std::string> outputs;  // files written, relative to C/tasks/I
  std::vector<std::string> warnings;
  nlohmann::json details;  // the method's own figures (compare: the best defense), or null
};
// Runs a method on `model` with the manifest's settings, writing into `task_dir` (which
// exists and is empty). Throws on failure.
using TaskMethod = std::function<TaskOutcome(
    const CampaignModel& model, const nlohmann::json& settings, const std::string& task_dir)>;

struct TaskResult {
  int64_t index = 0;
  std::string model, path, model_sha256, methods;
  std::string key;     // task_key(model_sha256, settings); "" when not computed
  std::string status;  // "ok" or "failed"
  std::string error;   // the one error line (failed)
  double score = 0, trojan_probability = 0.5;
  int64_t suspect = -1;
  bool backdoored = false;
  std::optional<int64_t> target;
  double seconds = 0;       // the task's wall time
  double peak_rss_mib = 0;  // the task process's peak resident memory
  std::string started, finished, host, slurm_job, attempt;
  std::vector<std::string> outputs, warnings;
  nlohmann::json details;
};

// SHA-256 (hex) of the model's SHA-256 and the settings' compact JSON.
std::string task_key(const std::string& model_sha256, const nlohmann::json& settings);
nlohmann::json to_json(const TaskResult& r);
TaskResult task_result_from_json(const nlohmann::json& doc, const std::string& file);
std::string task_result_path(const std::string& dir, int64_t index);
// C/results/I.json (nullopt when absent; FormatError when unreadable).
std::optional<TaskResult> read_task_result(const std::string& dir, int64_t index);
void write_task_result(const std::string& dir, const TaskResult& r);

// The model at `index`; InvalidArgument naming the manifest when out of range.
const CampaignModel& campaign_model(const Manifest& m, int64_t index);

// True when task `index` is done with the manifest's inputs: its result is ok, has the
// key the task would write, and the model file still has the manifest's SHA-256.
bool task_done(const Manifest& m, int64_t index);

struct TaskRun {
  TaskResult result;
  bool skipped = false;  // done already (task_done); nothing was run or written
};
// Runs task `index`: skips it when done; else checks the model's and the inputs'
// (settings "clean", "arch_from") SHA-256 against the manifest, runs `method` into
// C/tasks/I (emptied first) and writes C/results/I.json, ok or failed with the error's
// one line. Errors of the model and of the method are recorded, not thrown; `attempt`
// is stored in the result (the local executor's and the supervisor's token). Throws
// only when nothing can be recorded (the results folder cannot be written, the task is
// locked by another process).
TaskRun run_task(const Manifest& m, int64_t index, const TaskMethod& method,
                 const std::string& attempt);

// Records a failed result for task `index` (a process that died without recording one):
// unless C/results/I.json already holds `attempt`.
void record_task_failure(const Manifest& m, int64_t index, const std::string& error,
                         const std::string& attempt, double seconds);

// ---- The trojan probability ------------------------------------------------------

// The detection score of a Neural Cleanse result: the largest anomaly index of a fully
// optimised label whose mask norm is below the median (0 when there is none; infinite
// when the MAD is 0), and that label. The model is flagged when it exceeds the
// anomaly threshold (2).
struct DetectionScore {
  double score = 0;
  int64_t label = -1;
};
DetectionScore nc_detection_score(const NeuralCleanseResult& r);

// The trojan probability: a logistic of the score centred at the verdict threshold,
// p = 1 / (1 + exp(-kProbabilitySlope * (score - kProbabilityCentre))): strictly
// increasing, 0.5 exactly at the threshold (so p > 0.5 is the verdict), 0.018 for a
// score of 0, 0.88 at 3, 0.98 at 4, 1 for an infinite score.
constexpr double kProbabilityCentre = 2.0;
constexpr double kProbabilitySlope = 2.0;
double trojan_probability(double score);

// A missing or failed task's probability (TrojAI scores a missing answer so).
constexpr double kMissingProbability = 0.5;

// A scan campaign's calibration file from its settings; "" for the uncalibrated rule
// ("none", or a manifest from before the default calibration).
std::string scan_calibration_file(const nlohmann::json& settings);

// ---- Metrics (ground truth: 1 backdoored, 0 clean) ---------------------------------

// ROC AUC as the Mann-Whitney statistic: the fraction of (backdoored, clean) pairs in
// which the backdoored model has the higher probability, a tie counting one half. NaN
// when either class is absent.
double roc_auc(const std::vector<double>& p, const std::vector<int>& truth);

struct RocPoint {
  double threshold = 0, fpr = 0, tpr = 0;
};
// The ROC curve from (0, 0) to (1, 1): one point per distinct probability, from the
// highest down (tied models move both rates at once, so the trapezoid area under the
// points is roc_auc). Empty when either class is absent.
std::vector<RocPoint> roc_curve(const std::vector<double>& p, const std::vector<int>& truth);

// TrojAI's cross-entropy: the mean of -(y log p + (1 - y) log(1 - p)) with p clipped to
// [kCrossEntropyClip, 1 - kCrossEntropyClip]. NaN for no models.
constexpr double kCrossEntropyClip = 1e-12;
double cross_entropy(const std::vector<double>& p, const std::vector<int>& truth);

struct Confusion {
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  int64_t no_verdict = 0;  // failed or missing tasks
};
// `verdict`: 1 backdoored, 0 clean, -1 none.
Confusion confusion(const std::vector<int>& verdict, const std::vector<int>& truth);

// ---- The merge ---------------------------------------------------------------------

struct MergeRow {
  CampaignModel model;
  std::string status;  // "ok", "failed", "missing" (no result), "stale" (other inputs)
  std::string error;
  double score = 0, trojan_probability = kMissingProbability;
  int64_t suspect = -1;
  std::optional<bool> backdoored;  // the verdict; none unless ok
  std::optional<int64_t> target;
  std::optional<double> seconds, peak_rss_mib;
};

struct MergeResult {
  std::vector<MergeRow> rows;
  int64_t n_ok = 0, n_failed = 0, n_missing = 0;  // missing counts stale ones too
  nlohmann::json metrics;                         // null without ground truth
  std::vector<RocPoint> roc;
  std::vector<std::string> warnings;
};

// Reads every task's result against the manifest and its models' ground truth. A
// result is stale when it is for another model file or other settings.
MergeResult merge_campaign(const Manifest& m);
// The metrics of the rows that have ground truth (null when none has): ROC AUC,
// cross-entropy, Brier score, the confusion at the verdict, TPR, FPR, the target's
// accuracy; with a `kind` column in the ground truth, the same for each kind under
// `by_kind` (its backdoored models against all the clean ones).
nlohmann::json campaign_metrics(const std::vector<MergeRow>& rows, std::vector<RocPoint>* roc,
                                std::vector<std::string>* warnings);

std::string results_csv(const MergeResult& r);
nlohmann::json results_json(const Manifest& m, const MergeResult& r, const PlotResult& plots);
std::string campaign_report_html(const Manifest& m, const MergeResult& r, const PlotResult& plots);
// C/results.csv, C/results.json, C/plots/ (the score distribution; the ROC curve with
// ground truth) and C/report.html (self-contained: the SVG plots inlined).
PlotResult write_merge(const Manifest& m, MergeResult& r, const ReportOptions& options);

// ---- Slurm -------------------------------------------------------------------------

struct SlurmOptions {
  std::string bdguard;               // the absolute path of the binary the jobs run
  std::string partition, time, mem;  // "" leaves Slurm's default
  int cpus = 1;
  int64_t array_limit = 0;       // at most this many tasks at once (0: all)
  std::vector<int64_t> indices;  // the tasks of the array
  bool merge_anyway = false;     // afterany instead of afterok
};

// "0-3%2" for 0,1,2,3 with a limit of 2; "3,7,9-11%2" for others.
std::string slurm_array_spec(const std::vector<int64_t>& indices, int64_t limit);
// C/slurm/task.sbatch: the array job, one task per index, `bdguard campaign task C`
// (the index is $SLURM_ARRAY_TASK_ID), logs C/slurm/logs/task-%A_%a.{out,err}.
std::string slurm_task_script(const Manifest& m, const SlurmOptions& o);
// C/slurm/merge.sbatch: `bdguard campaign merge C` after the array `array_job`
// (--dependency=afterok:<array_job> with --kill-on-invalid-dep=yes).
std::string slurm_merge_script(const Manifest& m, const SlurmOptions& o,
                               const std::string& array_job);
constexpr const char* kArrayJobPlaceholder = "ARRAY_JOB_ID";

// Runs `sbatch --parsable script` and returns the job id (IoError with sbatch's message
// when it fails).
std::string sbatch_submit(const std::string& sbatch, const std::string& script);

// The jobs (array tasks as "123_4") among `jobs` that Slurm still has pending or
// running, by `squeue`; empty when squeue is missing or knows none of them.
std::vector<std::string> slurm_active_jobs(const std::string& squeue,
                                           const std::vector<std::string>& jobs);

// ---- The local executor ------------------------------------------------------------

struct TaskEvent {
  int64_t index = 0;
  TaskResult result;
  bool skipped = false;
  int64_t done = 0, total = 0;
};

struct ExecutorOptions {
  int jobs = 1;
  double task_timeout_s = 0;  // 0: none
  // The command of task `index` (argv[0]: the program), given the attempt token.
  std::function<std::vector<std::string>(int64_t index, const std::string& attempt)> command;
  std::function<void(const TaskEvent&)> on_done;
};

struct ExecutorSummary {
  int64_t ok = 0, failed = 0, skipped = 0;
};

// Runs every task not done yet as its own process, `jobs` at a time, each with its
// stdout and stderr in C/logs/I.log. A process that ends without recording its result
// (a crash, a signal, the timeout, a hung HDF5 read ended by the watchdog) gets a
// failed result naming what ended it, with the last `error:` line of its log.
ExecutorSummary run_local(const Manifest& m, const ExecutorOptions& o);

// Runs one task command as a child process (its stdout passed through, its stderr
// passed through and scanned) and records a failed result when it ends without having
// recorded one. Returns the exit code to leave with: the child's own, or
// kTaskFailedExit.
int supervise_task(const Manifest& m, int64_t index, const std::vector<std::string>& command,
                   const std::string& attempt);

// A fresh attempt token: host, pid, time.
std::string new_attempt_token();

}  // namespace bdguard
