// bdguard campaign task: one model of a campaign, as a worker process or supervising one;
// the settings <-> flags of the manifest, and the methods a task runs.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bdguard/compare.h"
#include "bdguard/compare_files.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/train.h"
#include "campaign_cli.h"
#include "commands.h"
#include "defend_cli.h"

namespace bdguard::cli {

namespace fs = std::filesystem;

namespace {

std::string abs_file(const std::string& p) {
  return p.empty() ? "" : fs::absolute(p).lexically_normal().string();
}

// settings[key] as T, or a FormatError naming the manifest's key.
template <class T>
T setting(const nlohmann::json& s, const char* key) {
  try {
    return s.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(kManifestJson, std::string("settings.") + key, "a value of the right type",
         s.contains(key) ? s[key].dump() : "none");
  }
}

}  // namespace

nlohmann::json campaign_settings(const ModelOptions& mo, const NcFlags& nc, int threads,
                                 int64_t batch, const std::string& methods,
                                 const std::string& clean, const CompareFiles& cf,
                                 const ScanFlags& scan) {
  const Preprocess p = preprocess_of(mo);  // also checks --mean and --std
  nlohmann::json s = {{"methods", methods},
                      {"clean", abs_file(clean)},
                      {"clean_sha256", sha256_data(clean)},
                      {"arch", mo.arch},
                      {"arch_from", abs_file(mo.arch_from)},
                      {"input_scale", mo.input_scale},
                      {"mean", number_text(p.mean)},
                      {"std", number_text(p.std)},
                      {"layout", mo.layout},
                      {"max_tensor_bytes", mo.max_tensor_bytes},
                      {"max_model_bytes", mo.max_model_bytes},
                      {"threads", threads},
                      {"batch", batch},
                      {"labels", nc.labels},
                      {"seed", nc.seed},
                      {"nc_steps", nc.max_steps},
                      {"nc_batches_per_step", nc.batches_per_step},
                      {"nc_label_batch", nc.label_batch},
                      {"nc_full_below", nc.full_below},
                      {"nc_screen_steps", nc.screen_steps},
                      {"nc_screen_batches", nc.screen_batches},
                      {"nc_screen_lr", nc.screen_lr},
                      {"nc_refine", nc.refine},
                      {"nc_reference", nc.reference},
                      {"nc_eval_images", nc.eval_images},
                      {"pixel_range", nc.pixel_range}};
  if (!mo.arch_from.empty()) s["arch_from_sha256"] = sha256_file(mo.arch_from);
  // The data options, only where they differ from the defaults (older manifests' task
  // keys stay the same).
  if (!mo.data_labels.empty()) s["data_labels"] = mo.data_labels;
  if (mo.resize) s["resize"] = true;
  if (mo.max_files != kDefaultMaxDataFiles) s["max_files"] = mo.max_files;
  if (methods == "scan") {
    s["detectors"] = scan.detectors;
    const bool none = scan.calibration.empty() || scan.calibration == "none";
    s["calibration"] = none ? "none" : abs_file(scan.calibration);
    s["calibration_sha256"] = none ? "" : sha256_file(scan.calibration);
    s["threshold"] = scan.threshold;
    s["mm_starts"] = scan.mm.starts;
    s["mm_steps"] = scan.mm.steps;
    s["mm_lr"] = scan.mm.lr;
    s["k_arm_steps"] = scan.k_arm.steps;
    s["k_arm_batches_per_step"] = scan.k_arm.batches_per_step;
    s["k_arm_arms"] = scan.k_arm.max_arms;
    s["k_arm_min_arms"] = scan.k_arm.min_arms;
    s["k_arm_min_steps"] = scan.k_arm.min_steps;
  }
  if (methods == "compare") {
    s["defenses"] = cf.defenses;
    for (const auto& [key, path] :
         {std::pair<const char*, std::string>{"poisoned_valid", cf.poisoned_valid},
          {"test", cf.test},
          {"poisoned_test", cf.poisoned_test}}) {
      s[key] = abs_file(path);
      s[std::string(key) + "_sha256"] = sha256_data(path);
    }
  }
  return s;
}

ModelOptions model_options_of(const nlohmann::json& s) {
  ModelOptions mo;
  mo.arch = setting<std::string>(s, "arch");
  mo.arch_from = setting<std::string>(s, "arch_from");
  mo.input_scale = setting<double>(s, "input_scale");
  mo.mean = setting<std::string>(s, "mean");
  mo.std = setting<std::string>(s, "std");
  mo.layout = setting<std::string>(s, "layout");
  mo.max_tensor_bytes = setting<int64_t>(s, "max_tensor_bytes");
  mo.max_model_bytes = setting<int64_t>(s, "max_model_bytes");
  mo.data_labels = s.value("data_labels", std::vector<std::string>{});
  mo.resize = s.value("resize", false);
  mo.max_files = s.value("max_files", kDefaultMaxDataFiles);
  return mo;
}

NcFlags nc_flags_of(const nlohmann::json& s) {
  NcFlags f;
  f.labels = setting<std::string>(s, "labels");
  f.seed = setting<uint64_t>(s, "seed");
  f.max_steps = setting<int>(s, "nc_steps");
  f.batches_per_step = setting<int>(s, "nc_batches_per_step");
  f.label_batch = setting<int64_t>(s, "nc_label_batch");
  f.full_below = setting<int64_t>(s, "nc_full_below");
  f.screen_steps = setting<int>(s, "nc_screen_steps");
  f.screen_batches = setting<int>(s, "nc_screen_batches");
  f.screen_lr = setting<double>(s, "nc_screen_lr");
  f.refine = setting<int64_t>(s, "nc_refine");
  f.reference = setting<int64_t>(s, "nc_reference");
  f.eval_images = setting<int64_t>(s, "nc_eval_images");
  f.pixel_range = setting<std::string>(s, "pixel_range");
  return f;
}

ScanFlags scan_flags_of(const nlohmann::json& s) {
  ScanFlags f;
  f.nc = nc_flags_of(s);
  f.clean = setting<std::string>(s, "clean");
  f.detectors = setting<std::string>(s, "detectors");
  f.calibration = setting<std::string>(s, "calibration");
  if (f.calibration.empty()) f.calibration = "none";  // a manifest from before the default
  f.threshold = setting<double>(s, "threshold");
  f.mm.starts = setting<int64_t>(s, "mm_starts");
  f.mm.steps = setting<int>(s, "mm_steps");
  f.mm.lr = setting<double>(s, "mm_lr");
  // K-Arm's flags; a manifest from before they were recorded ran with the defaults of
  // then: 1000 steps of 4 mini-batches, 3 to 8 arms, no minimum of steps per arm.
  f.k_arm.steps = s.value("k_arm_steps", 1000);
  f.k_arm.batches_per_step = s.value("k_arm_batches_per_step", 4);
  f.k_arm.max_arms = s.value("k_arm_arms", int64_t{8});
  f.k_arm.min_arms = s.value("k_arm_min_arms", int64_t{3});
  f.k_arm.min_steps = s.value("k_arm_min_steps", 0);  // none before it was recorded
  return f;
}

namespace {

// Neural Cleanse into `task_dir` (what `bdguard detect --out` writes), its result kept.
TaskOutcome detect_into(const CampaignModel& model, const nlohmann::json& settings,
                        const std::string& task_dir, NeuralCleanseResult* keep) {
  ModelOptions mo = model_options_of(settings);
  mo.model = model.path;
  DetectRun run =
      detect_to_folder(mo, nc_flags_of(settings), setting<std::string>(settings, "clean"), task_dir,
                       /*force=*/true, /*quiet=*/false);
  for (const auto& w : run.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const DetectionScore score = nc_detection_score(run.result);
  TaskOutcome out;
  out.score = score.score;
  out.suspect = score.label;
  out.backdoored = run.result.backdoored;
  if (run.result.backdoored) out.target = run.result.flagged.front();
  out.outputs = {"detect.json"};
  for (const auto& f : run.doc["triggers"]) out.outputs.push_back(f.get<std::string>());
  out.warnings = run.warnings;
  if (keep) *keep = std::move(run.result);
  return out;
}

}  // namespace

TaskOutcome run_detect_task(const CampaignModel& model, const nlohmann::json& settings,
                            const std::string& task_dir) {
  return detect_into(model, settings, task_dir, nullptr);
}

TaskOutcome run_scan_task(const CampaignModel& model, const nlohmann::json& settings,
                          const std::string& task_dir) {
  ModelOptions mo = model_options_of(settings);
  mo.model = model.path;
  const ScanRun run = scan_to_folder(mo, scan_flags_of(settings), task_dir, /*force=*/true,
                                     /*quiet=*/false);
  std::fprintf(stderr, "%s\n", scan_verdict_line(run).c_str());
  TaskOutcome out;
  out.probability = run.verdict.probability;
  out.score = run.verdict.probability;
  out.suspect = run.verdict.target;
  out.backdoored = run.verdict.backdoored;
  if (run.verdict.backdoored && run.verdict.target >= 0) out.target = run.verdict.target;
  out.outputs = {"scan.json", "evidence.json"};
  for (const auto& f : run.triggers) out.outputs.push_back(f);
  out.details = scan_task_details(run);
  return out;
}

TaskOutcome run_compare_task(const CampaignModel& model, const nlohmann::json& settings,
                             const std::string& task_dir) {
  NeuralCleanseResult nc;
  TaskOutcome out = detect_into(model, settings, task_dir, &nc);
  ModelOptions mo = model_options_of(settings);
  Model m = load(mo, model.path);
  const DataOptions d = data_options(mo, m);
  auto read = [&](const char* key) {
    return read_tensor_data(LabDataset(setting<std::string>(settings, key), m.input_shape(), d));
  };
  CompareData data;
  data.valid = read("clean");
  data.poisoned_valid = read("poisoned_valid");
  data.test = read("test");
  data.poisoned_test = read("poisoned_test");
  data.neural_cleanse = &nc;
  const std::string compare_dir = (fs::path(task_dir) / "compare").string();
  fs::create_directories(compare_dir);
  CompareOptions co;
  co.methods = parse_methods(setting<std::string>(settings, "defenses"));
  co.params = methods_params(co.methods, MethodFlags{});
  co.out_dir = compare_dir;
  co.defense.seed = setting<uint64_t>(settings, "seed");
  co.defense.eval_batch = setting<int64_t>(settings, "batch");
  co.defense.neural_cleanse = nc_options(nc_flags_of(settings), m);
  co.on_start = [](const std::string& method) {
    std::fprintf(stderr, "compare: %s\n", method.c_str());
  };
  const CompareResult r = compare_defenses(m, data, co);
  const PlotResult plots = write_compare_files(r, fs::path(model.path).filename().string(),
                                               settings, compare_dir, ReportOptions{});
  for (const auto& w : plots.warnings) out.warnings.push_back(w);
  for (const char* f : {"compare.csv", "compare.json", "compare.md", "compare.html"}) {
    out.outputs.push_back(std::string("compare/") + f);
  }
  for (const auto& row : r.rows) {
    if (!row.ok) out.warnings.push_back(row.method + " failed: " + row.error);
  }
  out.details = {{"best_defense", compare_verdict(r)},
                 {"best", r.best >= 0 ? nlohmann::json(r.rows[static_cast<size_t>(r.best)].method)
                                      : nlohmann::json(nullptr)},
                 {"baseline_accuracy", r.baseline_accuracy},
                 {"baseline_asr", r.baseline_asr}};
  return out;
}

TaskMethod task_method(const nlohmann::json& settings) {
  const std::string methods = setting<std::string>(settings, "methods");
  if (methods == "detect") return run_detect_task;
  if (methods == "compare") return run_compare_task;
  if (methods == "scan") return run_scan_task;
  fail(kManifestJson, "settings.methods", "detect, compare or scan", "'" + methods + "'");
}

std::string self_exe() {
  std::error_code ec;
  std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) fail<IoError>("/proc/self/exe", "", "this program's path", ec.message());
  const std::string deleted = " (deleted)";
  if (exe.size() > deleted.size() &&
      exe.compare(exe.size() - deleted.size(), deleted.size(), deleted) == 0) {
    exe.resize(exe.size() - deleted.size());
  }
  return exe;
}

std::vector<std::string> task_worker_command(const std::string& dir, int64_t index,
                                             const std::string& attempt, bool quiet) {
  // The very binary running now, even if its file was replaced since.
  std::vector<std::string> cmd = {"/proc/self/exe",      "campaign", "task",      dir,    "--index",
                                  std::to_string(index), "--worker", "--attempt", attempt};
  if (quiet) cmd.push_back("--quiet");
  return cmd;
}

namespace {

struct TaskOptions {
  std::string dir, attempt;
  int64_t index = -1;
  bool worker = false, quiet = false;
};

int64_t resolve_index(const CLI::App& sub, const TaskOptions& o) {
  return array_task_index(sub, o.index);
}

int run_worker(const TaskOptions& o, int64_t index) {
  const Manifest m = read_manifest(o.dir);
  const CampaignModel& model = campaign_model(m, index);
  apply_threads(setting<int>(m.settings, "threads"));
  const TaskRun run = run_task(m, index, task_method(m.settings), o.attempt);
  const TaskResult& r = run.result;
  const std::string where = "task " + std::to_string(index) + " (" + model.name + ")";
  if (run.skipped) {
    std::printf("%s: done already with the same model and settings: results/%lld.json\n",
                where.c_str(), static_cast<long long>(index));
    return 0;
  }
  if (r.status != "ok") {
    std::fprintf(stderr, "error: %s\n", r.error.c_str());
    return kTaskFailedExit;
  }
  std::printf("%s: trojan probability %.4f (score %.3f; %s%s), %.1f s: results/%lld.json\n",
              where.c_str(), r.trojan_probability, r.score, r.backdoored ? "backdoored" : "clean",
              r.target ? (", target " + std::to_string(*r.target)).c_str() : "", r.seconds,
              static_cast<long long>(index));
  return 0;
}

}  // namespace

int64_t array_task_index(const CLI::App& sub, int64_t index) {
  if (sub.count("--index")) return index;
  const char* env = std::getenv("SLURM_ARRAY_TASK_ID");
  if (!env) {
    throw CLI::ValidationError("--index",
                               "expected --index I or $SLURM_ARRAY_TASK_ID (a Slurm array task), "
                               "found neither");
  }
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  if (*env == '\0' || *end != '\0' || v < 0) {
    fail<InvalidArgument>("$SLURM_ARRAY_TASK_ID", "", "a task index >= 0",
                          std::string("'") + env + "'");
  }
  return v;
}

void setup_campaign_task(CLI::App& campaign) {
  auto o = std::make_shared<TaskOptions>();
  auto* sub = campaign.add_subcommand(
      "task", "run one model of a campaign (the index: --index, else $SLURM_ARRAY_TASK_ID)");
  sub->add_option("dir", o->dir, "the campaign folder")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--index", o->index, "the model's index in the manifest")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--worker", o->worker,
                "run the task in this process (default: in a child process, so a crash is "
                "recorded as the task's failure)")
      ->group("");
  sub->add_option("--attempt", o->attempt, "the supervisor's token for this attempt")->group("");
  sub->add_flag("--quiet,-q", o->quiet, "no progress on stderr");
  sub->callback([o, sub] {
    const int64_t index = resolve_index(*sub, *o);
    int rc = 0;
    if (o->worker) {
      rc = run_worker(*o, index);
    } else {
      const Manifest m = read_manifest(o->dir);
      campaign_model(m, index);
      const std::string attempt = new_attempt_token() + ":" + std::to_string(index);
      rc = supervise_task(m, index, task_worker_command(m.dir, index, attempt, o->quiet), attempt);
    }
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace bdguard::cli
