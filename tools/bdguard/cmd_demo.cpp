// bdguard demo: the whole defense on the BadNet shipped with bdguard (trained on
// Fashion-MNIST by `bdguard attack badnets`), with data files made from Debian's
// dataset-fashion-mnist. No download, no other input.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bdguard/badnets.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/finetune.h"
#include "bdguard/goodnet.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "cmd_run.h"
#include "commands.h"
#include "common.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

constexpr const char* kRecordName = "models/fmnist_badnet.json";
constexpr const char* kMarker = "demo.json";

struct DemoOptions {
  std::string out = "bdguard-demo";
  std::string data = kFashionMnistDir;
  bool retrain = false, force = false;
  int threads = 0;
  bool quiet = false;
  bool no_detect = false, no_repair = false;
  RunCompareFlags compare;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The output folder: created, or re-used when it holds an earlier demo (or --force).
void prepare_out_dir(const DemoOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(o.out) && !fs::is_directory(o.out)) {
    fail<InvalidArgument>(o.out, "--out", "a folder", "a file");
  }
  if (fs::is_directory(o.out) && !fs::is_empty(o.out, ec) && !fs::exists(o.out + "/" + kMarker) &&
      !o.force) {
    fail<InvalidArgument>(o.out, "--out", "an empty folder or an earlier demo's (or --force)",
                          "a folder with other files");
  }
  fs::create_directories(o.out + "/data", ec);
  if (ec) fail<IoError>(o.out, "", "a folder bdguard can create", ec.message());
}

AttackOptions recorded_attack() {
  std::string_view record = shipped_badnet_record();
  if (record.empty() || shipped_badnet_h5().empty()) {
    fail<InvalidArgument>(kRecordName, "", "a BadNet compiled into this build",
                          "none (models/ was empty when bdguard was built; use --retrain)");
  }
  nlohmann::json doc = parse_model_config(std::string(record), kRecordName);
  if (!doc.is_object() || !doc.contains("options")) {
    fail(kRecordName, "options", "the record of bdguard attack badnets", "another document");
  }
  return attack_options_from_json(doc["options"], kRecordName);
}

void run_demo(const DemoOptions& o) {
  apply_threads(o.threads);
  const auto start = std::chrono::steady_clock::now();
  prepare_out_dir(o);
  // Marks the folder as the demo's at once, so a run cut short can be re-run into it.
  write_file_atomic(o.out + "/" + kMarker, "{\"status\": \"running\"}\n");
  const std::string model_path = o.out + "/bd_net.h5";
  nlohmann::json summary = {{"out", o.out}, {"threads", at::get_num_threads()}};
  if (o.retrain) {
    AttackOptions a = shipped_badnet_record().empty() ? AttackOptions{} : recorded_attack();
    a.data = o.data;
    AttackResult r = run_badnets(a, train_progress_bar("train", o.quiet));
    summary["attack"] = write_attack_outputs(r, a, o.out);
  } else {
    AttackOptions a = recorded_attack();
    a.data = o.data;
    write_file_atomic(model_path, std::string(shipped_badnet_h5()));
    write_attack_data(attack_data_for(a), o.out + "/data");
    summary["attack"] = to_json(a);
  }
  summary["bd_net_sha256"] = sha256_file(model_path);
  std::printf("BadNet: %s (%s)\nData: %s/data/{valid,test,bd_valid,bd_test}.h5\n",
              model_path.c_str(), o.retrain ? "trained now" : "shipped with bdguard",
              o.out.c_str());
  std::fflush(stdout);
  // The defense itself is `bdguard run` on these files.
  RunOptions ro;
  ro.model.model = model_path;
  ro.valid = o.out + "/data/valid.h5";
  ro.poisoned_valid = o.out + "/data/bd_valid.h5";
  ro.test = o.out + "/data/test.h5";
  ro.poisoned_test = o.out + "/data/bd_test.h5";
  ro.out = o.out;
  ro.force = true;  // the demo's own folder (prepare_out_dir checked it)
  ro.global.threads = o.threads;
  ro.global.quiet = o.quiet;
  ro.no_detect = o.no_detect;
  ro.compare = o.compare;
  ro.no_repair = o.no_repair;
  // The demo keeps to its few minutes: ANP with 300 mask iterations (its original 2,000
  // take about 6 minutes here); a --compare-set of the user's comes later and wins.
  const auto methods = parse_methods(ro.compare.methods);
  if (std::find(methods.begin(), methods.end(), "anp") != methods.end()) {
    ro.compare.sets.insert(ro.compare.sets.begin(), "anp.iterations=300");
  }
  run_run(ro);
  summary["seconds"] = seconds_since(start);
  summary["report"] = o.out + "/report.html";
  summary["summary"] = o.out + "/summary.json";
  write_file_atomic(o.out + "/" + kMarker, summary.dump(2) + "\n");
  std::printf(
      "\nEverything is in %s/: bd_net.h5, data/, model_X=*.h5, sweep.csv, plots/, "
      "report.html, report.md, summary.json, compare.csv, models/%s (%.0f s).\n",
      o.out.c_str(), std::filesystem::exists(o.out + "/repaired.h5") ? ", repaired.h5" : "",
      summary["seconds"].get<double>());
}

}  // namespace

void setup_demo(CLI::App& app) {
  auto opt = std::make_shared<DemoOptions>();
  auto* sub = app.add_subcommand(
      "demo", "the whole defense on the BadNet shipped with bdguard (Fashion-MNIST, no download)");
  sub->add_option("--out", opt->out, "output folder")->capture_default_str();
  sub->add_option("--data", opt->data, "Fashion-MNIST folder (package dataset-fashion-mnist)")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  sub->add_flag("--retrain", opt->retrain,
                "train a fresh BadNet first (the shipped model's recorded command)");
  sub->add_flag("--force", opt->force, "write into --out even if it holds other files");
  sub->add_option("--threads", opt->threads, "compute threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  sub->add_flag("--no-detect", opt->no_detect,
                "skip the detection stage (Neural Cleanse and STRIP)");
  add_run_compare_flags(*sub, opt->compare);
  sub->add_flag("--no-repair", opt->no_repair,
                "skip the repair stage (the compared defense repair's rule keeps, saved as "
                "repaired.h5)");
  sub->add_flag("--quiet,-q", opt->quiet, "no progress on stderr");
  sub->callback([opt] { run_demo(*opt); });
}

}  // namespace bdguard::cli
