// bdguard campaign init|task|run|merge|submit: one defense over a whole model zoo, on this
// machine (run: one process per model, N at a time) or on Slurm (submit --slurm).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bdguard/error.h"
#include "campaign_cli.h"
#include "commands.h"
#include "defend_cli.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

std::string abs_dir(const std::string& p) {
  fs::path a = fs::absolute(p).lexically_normal();
  if (a.filename().empty() && a != a.root_path()) a = a.parent_path();
  return a.string();
}

// ---- init ------------------------------------------------------------------------

struct InitOptions {
  ModelOptions model;
  NcFlags nc;
  std::string out, models, clean, ground_truth, methods = "detect";
  CompareFiles compare;
  ScanFlags scan;  // its nc flags and clean data are the fields above
  int threads = 1;
  int64_t batch = kDefaultBatch;
  bool force = false, json = false;
};

// The flags' syntax, checked before any work (their ranges against a model are each
// task's to check).
void check_flags(const InitOptions& o) {
  preprocess_of(o.model);
  parse_layout(o.model.layout);
  if (o.nc.labels != "all") {
    size_t pos = 0;
    while (pos <= o.nc.labels.size()) {
      const size_t end = std::min(o.nc.labels.find(',', pos), o.nc.labels.size());
      const std::string item = o.nc.labels.substr(pos, end - pos);
      if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) {
        fail<InvalidArgument>("--labels", "", "all, or labels L,L,... (whole numbers >= 0)",
                              "'" + o.nc.labels + "'");
      }
      pos = end + 1;
    }
  }
  if (!o.nc.pixel_range.empty()) {
    char* end = nullptr;
    const std::string& r = o.nc.pixel_range;
    const double lo = std::strtod(r.c_str(), &end);
    const bool ok = end && *end == ',' && std::isfinite(lo);
    const double hi = ok ? std::strtod(end + 1, &end) : 0;
    if (!ok || *end != '\0' || !std::isfinite(hi) || !(lo < hi)) {
      fail<InvalidArgument>("--pixel-range", "", "LO,HI with LO < HI", "'" + r + "'");
    }
  }
}

int run_init(const InitOptions& o) {
  check_flags(o);
  if (o.methods == "compare") {
    if (o.compare.poisoned_valid.empty() || o.compare.test.empty() ||
        o.compare.poisoned_test.empty()) {
      throw CLI::ValidationError("--methods compare",
                                 "expected --poisoned-valid, --test and --poisoned-test (the data "
                                 "of bdguard compare), found not all three");
    }
    parse_methods(o.compare.defenses);
  }
  std::vector<GroundTruthRow> truth;
  if (!o.ground_truth.empty()) truth = read_ground_truth(o.ground_truth);
  prepare_output_dir(o.out, o.force);
  Manifest m;
  m.dir = abs_dir(o.out);
  m.tool = kToolVersion;
  m.created = campaign_timestamp();
  m.models_source = abs_dir(o.models);
  m.models = find_models(o.models);
  if (!o.ground_truth.empty()) {
    attach_ground_truth(m.models, truth, o.ground_truth);
    m.ground_truth_file = abs_dir(o.ground_truth);
    m.ground_truth_sha256 = sha256_file(o.ground_truth);
  }
  ScanFlags scan = o.scan;
  if (o.methods == "scan") {
    ScanFlags f = o.scan;
    f.nc = o.nc;
    f.clean = o.clean;
    // The tasks use the calibration resolved now (the shipped default may change later).
    const std::string file = resolved_calibration(f);
    std::optional<Calibration> calib;
    if (!file.empty()) calib = read_calibration(file);
    f.calibration = file;
    scan_detector_list(f, calib ? &*calib : nullptr);  // the detectors against the calibration
    scan.calibration = file.empty() ? "none" : file;
  }
  m.settings =
      campaign_settings(o.model, o.nc, o.threads, o.batch, o.methods, o.clean, o.compare, scan);
  write_manifest(m);
  if (o.json) {
    print_json(to_json(m));
    return 0;
  }
  int64_t with_truth = 0;
  for (const auto& e : m.models) with_truth += e.truth ? 1 : 0;
  std::printf("campaign %s: %zu models, method %s, %lld with ground truth\n", m.dir.c_str(),
              m.models.size(), o.methods.c_str(), static_cast<long long>(with_truth));
  std::printf("next: bdguard campaign run %s --jobs N, or bdguard campaign submit %s --slurm\n",
              m.dir.c_str(), m.dir.c_str());
  return 0;
}

void setup_campaign_init(CLI::App& campaign) {
  auto o = std::make_shared<InitOptions>();
  auto* sub =
      campaign.add_subcommand("init", "write a campaign's manifest: the models and the settings");
  sub->add_option("--out", o->out, "the campaign folder: manifest.json, later tasks/, results/")
      ->required();
  sub->add_option("--models", o->models,
                  "a folder (searched for .h5 and .onnx models) or a list (one path per line, "
                  "relative to the list)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--clean", o->clean, "clean validation data, for every model")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option(
         "--ground-truth", o->ground_truth,
         "CSV naming the columns model, backdoored, optionally target (a label or all) and others")
      ->check(CLI::ExistingFile);
  sub->add_option("--methods", o->methods, "what each task runs")
      ->check(CLI::IsMember({"detect", "compare", "scan"}))
      ->capture_default_str();
  sub->add_option("--poisoned-valid", o->compare.poisoned_valid,
                  "compare: poisoned validation data (reported only)")
      ->check(CLI::ExistingPath);
  sub->add_option("--test", o->compare.test, "compare: clean test data (the table's accuracy)")
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned-test", o->compare.poisoned_test,
                  "compare: poisoned test data (the table's ASR)")
      ->check(CLI::ExistingPath);
  sub->add_option("--defenses", o->compare.defenses,
                  "compare: the defenses (bdguard compare --methods: all, or a list)")
      ->capture_default_str();
  add_model_options(*sub, o->model, /*model_flag=*/"");
  add_nc_options(*sub, o->nc);
  add_scan_flags(*sub, o->scan, /*with_nc=*/false, /*group=*/"scan (--methods scan)");
  sub->add_option("--threads", o->threads,
                  "compute threads of each task (default 1: tasks run side by side instead)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--batch", o->batch, "images per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  add_force_flag(*sub, o->force);
  sub->add_flag("--json", o->json, "print the manifest as JSON");
  sub->callback([o] { run_init(*o); });
}

// ---- merge -----------------------------------------------------------------------

struct MergeOptions {
  std::string dir, ground_truth, gnuplot = "gnuplot";
  bool json = false, quiet = false;
};

// results.csv, results.json, report.html; a summary on stdout (or results.json).
MergeResult merge_and_report(Manifest& m, const MergeOptions& o) {
  if (!o.ground_truth.empty()) {
    attach_ground_truth(m.models, read_ground_truth(o.ground_truth), o.ground_truth);
    m.ground_truth_file = abs_dir(o.ground_truth);
  }
  MergeResult r = merge_campaign(m);
  ReportOptions ro;
  ro.gnuplot = o.gnuplot;
  const PlotResult plots = write_merge(m, r, ro);
  for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (o.json) {
    print_json(results_json(m, r, plots));
    return r;
  }
  std::printf("%zu models: %lld ok, %lld failed, %lld missing\n", r.rows.size(),
              static_cast<long long>(r.n_ok), static_cast<long long>(r.n_failed),
              static_cast<long long>(r.n_missing));
  for (const auto& row : r.rows) {
    if (row.status == "ok") continue;
    std::printf("  %s: task %lld (%s): %s (scored 0.5)\n", row.status.c_str(),
                static_cast<long long>(row.model.index), row.model.name.c_str(), row.error.c_str());
  }
  if (r.metrics.is_object()) {
    const auto& mt = r.metrics;
    const auto& c = mt["confusion"];
    auto num = [](const nlohmann::json& j) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", j.is_number() ? j.get<double>() : NAN);
      return j.is_number() ? std::string(buf) : std::string("-");
    };
    auto count = [](const nlohmann::json& j) { return static_cast<long long>(j.get<int64_t>()); };
    std::printf(
        "ground truth (%lld models): ROC AUC %s, cross-entropy %s; at the verdict TP %lld FP %lld "
        "TN %lld FN %lld, no verdict %lld; target label right for %lld of %lld\n",
        count(mt["n"]), num(mt["roc_auc"]).c_str(), num(mt["cross_entropy"]).c_str(),
        count(c["tp"]), count(c["fp"]), count(c["tn"]), count(c["fn"]), count(c["no_verdict"]),
        count(mt["target"]["correct"]), count(mt["target"]["n"]));
  }
  std::printf("results: %s/%s, %s/%s, %s/%s\n", m.dir.c_str(), kResultsCsv, m.dir.c_str(),
              kResultsJson, m.dir.c_str(), kReportHtml);
  return r;
}

void add_merge_options(CLI::App& sub, MergeOptions& o) {
  sub.add_option("--gnuplot", o.gnuplot, "the gnuplot program for the plots")
      ->capture_default_str();
  sub.add_flag("--json", o.json, "print results.json on stdout");
  sub.add_flag("--quiet,-q", o.quiet, "no progress on stderr");
}

void setup_campaign_merge(CLI::App& campaign) {
  auto o = std::make_shared<MergeOptions>();
  auto* sub = campaign.add_subcommand(
      "merge", "merge the task results: results.csv, results.json, report.html");
  sub->add_option("dir", o->dir, "the campaign folder")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--ground-truth", o->ground_truth,
                  "CSV model,backdoored[,target] (instead of the manifest's)")
      ->check(CLI::ExistingFile);
  add_merge_options(*sub, *o);
  sub->callback([o] {
    Manifest m = read_manifest(o->dir);
    merge_and_report(m, *o);
  });
}

// ---- run -------------------------------------------------------------------------

struct RunCampaignOptions {
  MergeOptions merge;
  int jobs = 0;
  double task_timeout = 0;
};

std::string task_line(const TaskEvent& e, const std::string& name) {
  char buf[160];
  const TaskResult& r = e.result;
  std::string what;
  if (e.skipped) {
    what = "done already";
  } else if (r.status == "ok") {
    std::snprintf(buf, sizeof buf, "trojan probability %.4f (%s), %.1f s", r.trojan_probability,
                  r.backdoored ? "backdoored" : "clean", r.seconds);
    what = buf;
  } else {
    what = "failed: " + r.error;
  }
  std::snprintf(buf, sizeof buf, "[%lld/%lld] task %lld (", static_cast<long long>(e.done),
                static_cast<long long>(e.total), static_cast<long long>(e.index));
  return buf + name + "): " + what;
}

int run_campaign(const RunCampaignOptions& o) {
  Manifest m = read_manifest(o.merge.dir);
  int jobs = o.jobs;
  if (jobs <= 0) {
    jobs = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / task_threads(m));
  }
  ExecutorOptions eo;
  eo.jobs = jobs;
  eo.task_timeout_s = o.task_timeout;
  eo.command = [&m, &o](int64_t index, const std::string& attempt) {
    return task_worker_command(m.dir, index, attempt, o.merge.quiet);
  };
  ProgressFn bar = progress_bar("campaign", o.merge.quiet);
  if (!o.merge.quiet) {
    std::fprintf(stderr, "campaign %s: %zu tasks, %d at a time; logs in %s/logs/\n", m.dir.c_str(),
                 m.models.size(), jobs, m.dir.c_str());
  }
  eo.on_done = [&](const TaskEvent& e) {
    if (o.merge.quiet) return;
    if (!bar || (e.result.status != "ok" && !e.skipped)) {
      if (bar) std::fprintf(stderr, "\r\033[K");
      std::fprintf(stderr, "%s\n",
                   task_line(e, m.models[static_cast<size_t>(e.index)].name).c_str());
    }
    if (bar) bar(e.done, e.total);
  };
  run_local(m, eo);
  const MergeResult r = merge_and_report(m, o.merge);
  return r.n_failed + r.n_missing > 0 ? kTaskFailedExit : 0;
}

void setup_campaign_run(CLI::App& campaign) {
  auto o = std::make_shared<RunCampaignOptions>();
  auto* sub = campaign.add_subcommand(
      "run", "run every task on this machine (one process per model, N at a time), then merge");
  sub->add_option("dir", o->merge.dir, "the campaign folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--jobs,-j", o->jobs, "tasks at once (default: the cores / the tasks' --threads)")
      ->check(CLI::Range(0, 4096));
  sub->add_option("--task-timeout", o->task_timeout,
                  "seconds a task may run before it is killed and failed (0: no limit)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  add_merge_options(*sub, o->merge);
  sub->callback([o] {
    const int rc = run_campaign(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace

void setup_campaign_submit(CLI::App& campaign);

void setup_campaign(CLI::App& app) {
  auto* campaign = app.add_subcommand(
      "campaign", "scan a whole model zoo: init, then run (this machine) or submit --slurm, merge");
  campaign->require_subcommand(1);
  setup_campaign_init(*campaign);
  setup_campaign_task(*campaign);
  setup_campaign_run(*campaign);
  setup_campaign_merge(*campaign);
  setup_campaign_submit(*campaign);
}

}  // namespace bdguard::cli
