// bdguard run: evaluation of the BadNet, the pruning sweep, the saved models, their
// GoodNets, plots and the report, in one command (see cmd_run.h).
#include "cmd_run.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/goodnet.h"
#include "bdguard/report.h"
#include "bdguard/sweep_files.h"
#include "commands.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Progress of the run's stages on stderr: a bar per counted stage on a terminal,
// plain lines otherwise, nothing with --quiet.
class Stages {
 public:
  Stages(int total, bool quiet) : total_(total), quiet_(quiet), tty_(isatty(STDERR_FILENO)) {}

  void begin(const std::string& name) {
    ++index_;
    name_ = name;
    start_ = Clock::now();
    last_decile_ = -1;
    if (!quiet_ && !tty_) std::fprintf(stderr, "%s ...\n", label().c_str());
  }
  // A progress function for a stage with counts.
  ProgressFn progress() {
    if (quiet_) return {};
    if (tty_) return progress_bar(label(), quiet_);
    return [this](int64_t done, int64_t total) {
      int decile = total > 0 ? static_cast<int>(10 * done / total) : 10;
      if (decile == last_decile_ || done == 0) return;
      last_decile_ = decile;
      double elapsed = since(start_);
      double eta =
          done > 0 ? elapsed * static_cast<double>(total - done) / static_cast<double>(done) : 0;
      std::fprintf(stderr, "%s: %lld/%lld, %.1f s, eta %.1f s\n", label().c_str(),
                   static_cast<long long>(done), static_cast<long long>(total), elapsed, eta);
    };
  }
  // Ends the stage and returns its time.
  double end(const std::string& detail = "") {
    double s = since(start_);
    timings_.push_back({name_, s});
    if (!quiet_) {
      std::fprintf(stderr, "%s: done in %.1f s%s\n", label().c_str(), s,
                   detail.empty() ? "" : ("; " + detail).c_str());
    }
    return s;
  }
  void warn(const std::string& msg) const { std::fprintf(stderr, "warning: %s\n", msg.c_str()); }
  const std::vector<StageTiming>& timings() const { return timings_; }

 private:
  std::string label() const {
    return "[" + std::to_string(index_) + "/" + std::to_string(total_) + "] " + name_;
  }
  int total_, index_ = 0;
  bool quiet_, tty_;
  std::string name_;
  Clock::time_point start_;
  int last_decile_ = -1;
  std::vector<StageTiming> timings_;
};

std::vector<std::pair<std::string, nlohmann::json>> settings_of(const RunOptions& o) {
  nlohmann::json drops = o.drops;
  std::vector<std::pair<std::string, nlohmann::json>> s = {
      {"model", o.model.model},
      {"arch", o.model.arch.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.model.arch)},
      {"arch-from",
       o.model.arch_from.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.model.arch_from)},
      {"input-scale", o.model.input_scale},
      {"mean", preprocess_of(o.model).mean},
      {"std", preprocess_of(o.model).std},
      {"layout", o.model.layout},
      {"valid", o.valid},
      {"poisoned-valid", o.poisoned_valid},
      {"test", o.test},
      {"poisoned-test", o.poisoned_test},
      {"out", o.out},
      {"layer", o.layer.empty() ? nlohmann::json("(default)") : nlohmann::json(o.layer)},
      {"drops", drops},
      {"stop-drop", std::isinf(o.stop_drop) ? nlohmann::json("none") : nlohmann::json(o.stop_drop)},
      {"batch", o.global.batch},
      {"finetune", o.no_finetune ? nlohmann::json("no")
                                 : nlohmann::json({{"epochs", o.finetune.epochs},
                                                   {"lr", o.finetune.lr},
                                                   {"optimizer", o.finetune_optimizer},
                                                   {"batch", o.finetune.batch},
                                                   {"holdout", o.finetune.holdout},
                                                   {"clip_norm", o.finetune.clip_grad_norm},
                                                   {"shift", o.finetune.shift},
                                                   {"cosine_decay", o.finetune.cosine_decay},
                                                   {"seed", o.finetune.seed}})},
      {"detection", o.no_detect ? nlohmann::json("no")
                                : nlohmann::json({{"nc_steps", o.nc.max_steps},
                                                  {"nc_batches_per_step", o.nc.batches_per_step},
                                                  {"detect_seed", o.nc.seed},
                                                  {"strip_overlays", o.strip.options.overlays},
                                                  {"strip_frr", o.strip.options.frr},
                                                  {"strip_seed", o.strip.options.seed}})},
      {"comparison", o.compare.no_compare ? nlohmann::json("no")
                                          : nlohmann::json({{"methods", o.compare.methods},
                                                            {"sets", o.compare.sets}})},
      {"threads",
       o.global.threads == 0 ? nlohmann::json("all cores") : nlohmann::json(o.global.threads)},
      {"config", o.config.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.config)}};
  return s;
}

}  // namespace

void run_run(const RunOptions& o) {
  auto t_start = Clock::now();
  apply_threads(o.global.threads);
  Stages stages(/*total=*/6 + (o.no_finetune ? 0 : 1) + (o.no_detect ? 0 : 3) +
                    (o.compare.no_compare ? 0 : (o.no_repair ? 1 : 2)),
                o.global.quiet);

  RunReport r;
  r.tool_version = "0.1.0";
  r.settings = settings_of(o);
  r.model_name = fs::path(o.model.model).filename().string();

  // Every input is read and checked before anything is written.
  stages.begin("load model and data");
  Model m = load(o.model, o.model.model);
  r.num_classes = m.num_classes();
  const DataOptions dopt = data_options(o.model, m);
  LabDataset valid(o.valid, m.input_shape(), dopt);
  LabDataset poisoned_valid(o.poisoned_valid, m.input_shape(), dopt);
  LabDataset test(o.test, m.input_shape(), dopt);
  LabDataset poisoned_test(o.poisoned_test, m.input_shape(), dopt);
  const ChannelUnit target = resolve_prune_target(m, o.layer);
  prepare_output_dir(o.out, o.force);
  stages.end(
      std::to_string(m.num_classes()) + " classes, " +
      std::to_string(valid.size() + poisoned_valid.size() + test.size() + poisoned_test.size()) +
      " images");

  stages.begin("hash inputs");
  const std::vector<std::pair<std::string, std::string>> files = {
      {"model", o.model.model}, {"arch-from", o.model.arch_from},
      {"valid", o.valid},       {"poisoned-valid", o.poisoned_valid},
      {"test", o.test},         {"poisoned-test", o.poisoned_test},
      {"config", o.config}};
  ProgressFn hash_progress = stages.progress();
  int64_t n_files = 0, done_files = 0;
  for (const auto& f : files) n_files += !f.second.empty();
  for (const auto& [role, path] : files) {
    if (path.empty()) continue;
    r.inputs.push_back({role, path, sha256_data(path), data_bytes(path)});
    if (hash_progress) hash_progress(++done_files, n_files);
  }
  stages.end(std::to_string(n_files) + " files");

  // Detection from clean validation data alone: Neural Cleanse on the BadNet, then
  // STRIP's threshold on the validation data and its rates on the test files.
  std::vector<bool> strip_test, strip_poisoned;
  if (!o.no_detect) {
    DetectionReport det;
    stages.begin("Neural Cleanse");
    TensorData clean = read_tensor_data(valid);
    NeuralCleanseOptions nco = nc_options(o.nc, m);
    nco.progress = stages.progress();
    det.nc = neural_cleanse(m, clean, nco);
    det.nc_settings = nc_settings(o.nc, nco, o.model, o.valid);
    det.trigger_files = write_triggers(det.nc, trigger_labels(det.nc), o.out);
    {
      // One poisoned validation input, for the report: the real trigger beside the reversed.
      at::Tensor x = poisoned_valid.read(0, 1).images[0].to(at::kFloat);
      const double scale = 255.0 / (det.nc.pixel_max - det.nc.pixel_min);
      det.poisoned_example = "triggers/poisoned_example.png";
      AtomicOutput out((fs::path(o.out) / det.poisoned_example).string());
      write_png(out.path(), (x - det.nc.pixel_min) * scale);
      out.commit();
    }
    write_file_atomic((fs::path(o.out) / "detect.json").string(),
                      detect_json(det.nc, det.nc_settings, det.trigger_files).dump(2) + "\n");
    stages.end(detect_verdict(det.nc, o.out));
    stages.begin("scan: MM-BD, K-Arm and the verdict");
    det.scan = run_scan_stage(m, det.nc, o, clean);
    write_file_atomic((fs::path(o.out) / "scan.json").string(), det.scan.dump(2) + "\n");
    stages.end(run_scan_summary(det.scan));
    stages.begin("STRIP");
    ProgressFn strip_progress = stages.progress();
    Strip strip = make_strip(m, std::move(clean), o.strip, {});
    StripReport sr;
    sr.threshold = strip.threshold();
    sr.n_valid = static_cast<int64_t>(strip.pool_scores().size());
    sr.valid_frr = flagged_rate(strip, strip.pool_scores());
    sr.test_scores = strip.scores(read_tensor_data(test).images, kStripTestStream, strip_progress);
    sr.poisoned_scores =
        strip.scores(read_tensor_data(poisoned_test).images, kStripPoisonedStream, strip_progress);
    sr.n_test = test.size();
    sr.n_poisoned = poisoned_test.size();
    sr.frr = flagged_rate(strip, sr.test_scores);
    sr.detection_rate = flagged_rate(strip, sr.poisoned_scores);
    for (double x : sr.test_scores) strip_test.push_back(strip.flagged(x));
    for (double x : sr.poisoned_scores) strip_poisoned.push_back(strip.flagged(x));
    det.strip_settings = to_json(o.strip.options);
    det.strip = sr;
    r.detection = std::move(det);
    stages.end("detection rate " + pct(sr.detection_rate) + " %, false rejections " + pct(sr.frr) +
               " %");
  }

  stages.begin("pruning sweep");
  SweepOptions so;
  so.layer = m.node(static_cast<size_t>(target.node)).name;
  so.stop_drop = o.stop_drop;
  so.batch = o.global.batch;
  so.progress = stages.progress();
  r.sweep = run_sweep(m, {&valid, &poisoned_valid, &test, &poisoned_test}, so);
  const SweepResult& sw = r.sweep;
  write_file_atomic((fs::path(o.out) / kSweepCsv).string(), sweep_csv(sw));
  stages.end(std::to_string(sw.steps.size() - 1) + " channels of " + sw.layer + " pruned");

  const SweepStep& base = sw.steps.front();
  r.valid = {base.valid_accuracy, base.valid_asr, valid.size(), poisoned_valid.size()};
  r.test = SplitMetrics{base.test_accuracy.value_or(0), base.test_asr.value_or(0), test.size(),
                        poisoned_test.size()};

  stages.begin("save pruned models");
  std::vector<SavedModel> saved = save_drop_models(m, sw, o.drops, o.out);
  int n_saved = 0;
  for (const SavedModel& s : saved) {
    n_saved += s.reached;
    if (!s.reached) {
      stages.warn("validation accuracy never fell " + format_drop(s.drop) +
                  " points below the baseline: no " + s.file);
    }
  }
  stages.end(std::to_string(n_saved) + " models");

  // The GoodNet of each saved model, on the test files: the sweep kept every step's
  // test predictions, so no model is run again.
  stages.begin("GoodNets");
  std::vector<GoodNetRow> rows;
  for (const SavedModel& s : saved) {
    ReportedModel reported{s, std::nullopt, std::nullopt};
    if (s.reached) {
      const auto k = static_cast<size_t>(s.step);
      rows.push_back(goodnet_row(s.path, m.num_classes(), test.labels(), poisoned_test.labels(),
                                 sw.test_predictions[0], sw.poisoned_test_predictions[0],
                                 sw.test_predictions[k], sw.poisoned_test_predictions[k]));
      reported.goodnet = rows.back();
      if (r.detection && r.detection->strip) {
        r.detection->goodnet_strip.push_back(goodnet_row(
            s.path, m.num_classes(), test.labels(), poisoned_test.labels(), sw.test_predictions[0],
            sw.poisoned_test_predictions[0], sw.test_predictions[k],
            sw.poisoned_test_predictions[k], strip_test, strip_poisoned));
      }
    }
    r.saved.push_back(reported);
  }
  stages.end(std::to_string(rows.size()) + " rows");

  // Fine-pruning: each saved model fine-tuned on clean validation data.
  std::vector<FinePrunedModel> fine;
  if (!o.no_finetune) {
    stages.begin("fine-pruning");
    fine = fine_prune_with_flags(m, sw, saved, {&valid, &poisoned_valid, &test, &poisoned_test},
                                 o.finetune, o.finetune_optimizer, o.global);
    for (auto& reported : r.saved) {
      for (const auto& f : fine) {
        if (reported.saved.reached && f.drop == reported.saved.drop) reported.fine_pruned = f;
      }
    }
    stages.end(std::to_string(fine.size()) + " models fine-tuned");
  }
  if (!o.compare.no_compare) {
    stages.begin("defenses compared");
    r.comparison = run_compare_stage(
        m, read_tensor_data(valid), read_tensor_data(poisoned_valid), read_tensor_data(test),
        read_tensor_data(poisoned_test), r.detection ? &r.detection->nc : nullptr, o.compare,
        o.finetune.seed, o.global.batch, o.out, stages.progress(), nc_options(o.nc, m));
    for (const auto& row : r.comparison->rows) {
      if (!row.ok) stages.warn(row.method + " failed: " + row.error);
    }
    stages.end(r.comparison->best >= 0 ? "best: " + compare_verdict(*r.comparison)
                                       : "no method ran");
    if (!o.no_repair) {
      // repair's rule on the compared defenses: no training again (repair.h).
      stages.begin("repair");
      RepairPick p = repair_from_compare(*r.comparison);
      if (p.picked >= 0 && !p.model.empty()) {
        p.output = "repaired" + fs::path(p.model).extension().string();
        fs::copy_file(fs::path(o.out) / p.model, fs::path(o.out) / p.output,
                      fs::copy_options::overwrite_existing);
        p.sha256 = sha256_file((fs::path(o.out) / p.output).string());
      }
      stages.end(repair_reason(p));
      r.repair = std::move(p);
    }
  }
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [key, value] : r.settings) settings[key] = value;
  write_file_atomic((fs::path(o.out) / "sweep.json").string(),
                    sweep_json(sw, saved, rows, settings, fine).dump(2) + "\n");

  // The report lists the time of every stage before it (it cannot time its own writing).
  stages.begin("report");
  r.timings = stages.timings();
  ReportOptions ro;
  ro.gnuplot = o.gnuplot;
  ro.png_width = o.png_width;
  ro.png_height = o.png_height;
  PlotResult plots = write_report(r, o.out, ro);
  for (const auto& w : plots.warnings) stages.warn(w);
  stages.end(std::to_string(plots.files.size()) + " plot files");

  if (o.global.json) {
    print_json(summary_json(r, plots));
    return;
  }
  std::printf("%s\n\nReport: %s (and report.md, summary.json) in %.1f s\n", conclusion(r).c_str(),
              (fs::path(o.out) / kReportHtml).string().c_str(), since(t_start));
}

void setup_run(CLI::App& app) {
  auto opt = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand(
      "run", "the whole defense: evaluation, pruning sweep, saved models, GoodNets, plots, report");
  add_run_options(*sub, *opt);
  sub->callback([opt, sub] {
    apply_run_config(*sub, *opt);
    run_run(*opt);
  });
}

}  // namespace bdguard::cli
