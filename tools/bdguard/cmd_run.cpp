// bdguard run: evaluation of the BadNet, the pruning sweep, the saved models, their
// GoodNets, plots and the report, in one command (see cmd_run.h).
#include "cmd_run.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/goodnet.h"
#include "bdguard/keras.h"
#include "bdguard/report.h"
#include "commands.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Keys of the configuration file that name files: relative ones are taken relative
// to the configuration file's folder.
const std::set<std::string> kPathKeys = {"model", "arch-from",     "valid", "poisoned-valid",
                                         "test",  "poisoned-test", "out"};

// CLI11 reads --config through this: TOML or JSON (bdguard/config.h), keys as the long
// flags (`poisoned-valid` or `poisoned_valid`). Flags given on the command line win.
class ConfigFile : public CLI::Config {
 public:
  explicit ConfigFile(std::shared_ptr<CLI::Option*> option) : option_(std::move(option)) {}
  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return {}; }
  std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
    std::string path = *option_ ? (*option_)->as<std::string>() : "config";
    std::ostringstream text;
    text << in.rdbuf();
    fs::path dir = fs::path(path).parent_path();
    std::vector<CLI::ConfigItem> items;
    for (ConfigEntry& e : parse_config(text.str(), path)) {
      std::string key = e.key;
      for (char& c : key) c = c == '_' ? '-' : c;
      if (kPathKeys.count(key)) {
        for (auto& v : e.values) {
          if (!v.empty() && fs::path(v).is_relative()) v = (dir / v).lexically_normal().string();
        }
      }
      CLI::ConfigItem item;
      item.name = key;
      item.inputs = e.values;
      items.push_back(std::move(item));
    }
    return items;
  }

 private:
  std::shared_ptr<CLI::Option*> option_;
};

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

std::string saved_name(double drop) { return "model_X=" + num(drop) + ".h5"; }

// sweep.csv as the pruning command writes it (rates in percent).
// TODO(report): use the library's sweep writer once `bdguard prune` lands on main.
void write_sweep_files(const SweepResult& r, const std::string& out) {
  std::ostringstream csv;
  bool test = !r.steps.empty() && r.steps[0].test_accuracy.has_value();
  csv << "step,channel,fraction_pruned,valid_accuracy,valid_asr"
      << (test ? ",test_accuracy,test_asr" : "") << "\n";
  char buf[256];
  for (const auto& s : r.steps) {
    std::snprintf(buf, sizeof buf, "%d,%lld,%.17g,%.17g,%.17g", s.step,
                  static_cast<long long>(s.channel), s.fraction_pruned, s.valid_accuracy,
                  s.valid_asr);
    csv << buf;
    if (test) {
      std::snprintf(buf, sizeof buf, ",%.17g,%.17g", s.test_accuracy.value_or(NAN),
                    s.test_asr.value_or(NAN));
      csv << buf;
    }
    csv << "\n";
  }
  write_file_atomic((fs::path(out) / kSweepCsv).string(), csv.str());
}

std::vector<std::pair<std::string, nlohmann::json>> settings_of(const RunOptions& o) {
  nlohmann::json drops = o.drops;
  std::vector<std::pair<std::string, nlohmann::json>> s = {
      {"model", o.model.model},
      {"arch", o.model.arch.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.model.arch)},
      {"arch-from",
       o.model.arch_from.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.model.arch_from)},
      {"input-scale", o.model.input_scale},
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
      {"threads",
       o.global.threads == 0 ? nlohmann::json("all cores") : nlohmann::json(o.global.threads)},
      {"config", o.config.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.config)}};
  return s;
}

}  // namespace

void run_run(const RunOptions& o) {
  auto t_start = Clock::now();
  apply_threads(o.global.threads);
  Stages stages(/*total=*/6, o.global.quiet);
  fs::create_directories(o.out);

  RunReport r;
  r.tool_version = "0.1.0";
  r.settings = settings_of(o);
  r.model_name = fs::path(o.model.model).filename().string();

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
    r.inputs.push_back({role, path, sha256_file(path), static_cast<int64_t>(fs::file_size(path))});
    if (hash_progress) hash_progress(++done_files, n_files);
  }
  stages.end(std::to_string(n_files) + " files");

  stages.begin("load model");
  Model m = load(o.model, o.model.model);
  r.num_classes = m.num_classes();
  DataOptions dopt = data_options(o.model, m);
  LabDataset valid(o.valid, m.input_shape(), dopt);
  LabDataset poisoned_valid(o.poisoned_valid, m.input_shape(), dopt);
  LabDataset test(o.test, m.input_shape(), dopt);
  LabDataset poisoned_test(o.poisoned_test, m.input_shape(), dopt);
  stages.end(std::to_string(m.num_classes()) + " classes");

  stages.begin("pruning sweep");
  SweepOptions so;
  so.layer = o.layer;
  so.stop_drop = o.stop_drop;
  so.batch = o.global.batch;
  so.progress = stages.progress();
  r.sweep = run_sweep(m, {&valid, &poisoned_valid, &test, &poisoned_test}, so);
  const SweepResult& sw = r.sweep;
  if (sw.steps.empty()) throw InvalidArgument("the pruning sweep returned no steps");
  write_sweep_files(sw, o.out);
  stages.end(std::to_string(sw.steps.size() - 1) + " channels of " + sw.layer + " pruned");

  const SweepStep& base = sw.steps[0];
  r.valid = {base.valid_accuracy, base.valid_asr, valid.size(), poisoned_valid.size()};
  r.test = SplitMetrics{base.test_accuracy.value_or(0), base.test_asr.value_or(0), test.size(),
                        poisoned_test.size()};

  stages.begin("save pruned models");
  ProgressFn save_progress = stages.progress();
  for (size_t i = 0; i < o.drops.size(); ++i) {
    SavedModel s;
    s.drop = o.drops[i];
    s.step = first_step_with_drop(sw, s.drop);
    s.reached = s.step >= 0;
    if (s.reached) {
      const SweepStep& st = sw.steps[static_cast<size_t>(s.step)];
      s.file = saved_name(s.drop);
      save_model(pruned_copy(m, sw, s.step), (fs::path(o.out) / s.file).string());
      s.fraction_pruned = st.fraction_pruned;
      s.valid_accuracy = st.valid_accuracy;
      s.valid_asr = st.valid_asr;
      s.valid_drop = base.valid_accuracy - st.valid_accuracy;
      s.test_accuracy = st.test_accuracy;
      s.test_asr = st.test_asr;
    } else {
      stages.warn("validation accuracy never fell " + num(s.drop) +
                  " points below the baseline: no " + saved_name(s.drop));
    }
    r.saved.push_back(s);
    if (save_progress)
      save_progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(o.drops.size()));
  }
  stages.end();

  stages.begin("GoodNets");
  for (SavedModel& s : r.saved) {
    if (!s.reached) continue;
    auto step = static_cast<size_t>(s.step);
    s.goodnet = goodnet_row(s.file, m.num_classes(), test.labels(), poisoned_test.labels(),
                            sw.test_predictions[0], sw.poisoned_test_predictions[0],
                            sw.test_predictions[step], sw.poisoned_test_predictions[step]);
  }
  stages.end();

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
  std::printf("%s\n\nReport: %s\n", conclusion(r).c_str(),
              (fs::path(o.out) / kReportHtml).string().c_str());
  std::fprintf(stdout, "Total: %.1f s\n", since(t_start));
}

void add_run_options(CLI::App& sub, RunOptions& o) {
  auto config_option = std::make_shared<CLI::Option*>(nullptr);
  *config_option = sub.set_config("--config", "",
                                  "TOML or JSON file with the same keys as the flags (flags win)");
  (*config_option)->check(CLI::ExistingFile);
  sub.config_formatter(std::make_shared<ConfigFile>(config_option));
  sub.allow_config_extras(CLI::config_extras_mode::error);
  add_model_options(sub, o.model);
  add_global_options(sub, o.global);
  sub.add_option("--valid", o.valid, "clean validation data (lab HDF5)")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--poisoned-valid", o.poisoned_valid, "poisoned validation data (lab HDF5)")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--test", o.test, "clean test data (lab HDF5)")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--poisoned-test", o.poisoned_test, "poisoned test data (lab HDF5)")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--out", o.out, "output folder (created if missing)")->required();
  sub.add_option("--layer", o.layer,
                 "Conv2D layer to prune (default: the last one every path crosses)");
  sub.add_option("--drops", o.drops,
                 "save a pruned model at these validation accuracy drops (points)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub.add_option("--stop-drop", o.stop_drop,
                 "stop the sweep once validation accuracy is this many points below the baseline")
      ->check(CLI::PositiveNumber);
  sub.add_option("--gnuplot", o.gnuplot, "the gnuplot program")->capture_default_str();
  sub.add_option("--plot-width", o.png_width, "plot width in pixels")
      ->check(CLI::Range(200, 8000))
      ->capture_default_str();
  sub.add_option("--plot-height", o.png_height, "plot height in pixels")
      ->check(CLI::Range(150, 8000))
      ->capture_default_str();
}

void setup_run(CLI::App& app) {
  auto opt = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand(
      "run", "the whole defense: evaluation, pruning sweep, saved models, GoodNets, plots, report");
  add_run_options(*sub, *opt);
  sub->callback([opt, sub] {
    if (auto* c = sub->get_option("--config"); c->count() > 0) opt->config = c->as<std::string>();
    run_run(*opt);
  });
}

}  // namespace bdguard::cli
