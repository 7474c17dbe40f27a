// bdguard demo: the whole defense on the BadNet shipped with bdguard (trained on
// Fashion-MNIST by `bdguard attack badnets`), with data files made from Debian's
// dataset-fashion-mnist. No download, no other input.
#include <ATen/Parallel.h>

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

struct Row {
  std::string name;
  int64_t pruned = 0;
  double accuracy = 0, asr = 0;  // test files
  std::optional<GoodNetRow> goodnet;
};

// The defense on the prepared files: the pruning sweep of the default layer, the pruned
// models at 2, 4 and 10 points of accuracy lost, their GoodNets, and fine-pruning.
std::vector<Row> run_defense(const DemoOptions& o, const std::string& model_path,
                             nlohmann::json& summary) {
  Model badnet = load_model(model_path);
  const std::string dir = o.out + "/data/";
  DataOptions d;
  d.num_classes = badnet.num_classes();
  LabDataset valid(dir + "valid.h5", badnet.input_shape(), d);
  LabDataset bd_valid(dir + "bd_valid.h5", badnet.input_shape(), d);
  LabDataset test(dir + "test.h5", badnet.input_shape(), d);
  LabDataset bd_test(dir + "bd_test.h5", badnet.input_shape(), d);

  SweepOptions so;
  so.progress = progress_bar("prune", o.quiet);
  SweepResult sweep = run_sweep(badnet, {&valid, &bd_valid, &test, &bd_test}, so);
  const auto& base = sweep.steps.front();
  std::vector<Row> rows{{"BadNet", 0, *base.test_accuracy, *base.test_asr, std::nullopt}};
  const int64_t n = badnet.num_classes();
  auto goodnet = [&](const std::string& name, const std::vector<int64_t>& clean,
                     const std::vector<int64_t>& poisoned) {
    return goodnet_row(name, n, test.labels(), bd_test.labels(), sweep.test_predictions[0],
                       sweep.poisoned_test_predictions[0], clean, poisoned);
  };
  nlohmann::json models = nlohmann::json::array();
  for (double drop : kDefaultDrops) {
    const int step = first_step_with_drop(sweep, drop);
    if (step < 0) continue;
    char label[32];
    std::snprintf(label, sizeof label, "model_X=%g", drop);
    const std::string name = label;
    Model pruned = pruned_copy(badnet, sweep, step);
    save_model(pruned, o.out + "/" + name + ".h5");
    const auto& s = sweep.steps[static_cast<size_t>(step)];
    rows.push_back({name, step, *s.test_accuracy, *s.test_asr,
                    goodnet(name, sweep.test_predictions[static_cast<size_t>(step)],
                            sweep.poisoned_test_predictions[static_cast<size_t>(step)])});
    FinetuneOptions fo;
    fo.progress = train_progress_bar("finetune " + name, o.quiet);
    FinetuneResult ft = finetune(pruned, {&valid, &bd_valid, &test, &bd_test}, fo);
    const std::string ft_name = name + "_finetuned";
    save_model(pruned, o.out + "/" + ft_name + ".h5");
    rows.push_back({ft_name, step, *ft.after.test_accuracy, *ft.after.test_asr,
                    goodnet(ft_name, ft.test_predictions, ft.poisoned_test_predictions)});
    nlohmann::json entry = to_json(ft);
    entry["name"] = ft_name;
    models.push_back(entry);
  }
  summary["layer"] = sweep.layer;
  summary["channels"] = sweep.channels;
  summary["finetune"] = models;
  return rows;
}

void print_rows(const std::vector<Row>& rows, int64_t channels) {
  std::printf("\n%-24s %7s %9s %9s | %9s %9s %9s %9s\n", "model (test files)", "pruned", "accuracy",
              "ASR", "G acc", "G ASR", "detected", "false al.");
  for (const auto& r : rows) {
    std::string pruned = r.pruned ? std::to_string(r.pruned) + "/" + std::to_string(channels) : "-";
    std::printf("%-24s %7s %8s%% %8s%%", r.name.c_str(), pruned.c_str(), pct(r.accuracy).c_str(),
                pct(r.asr).c_str());
    if (r.goodnet) {
      std::printf(" | %8s%% %8s%% %8s%% %8s%%", pct(r.goodnet->goodnet_accuracy).c_str(),
                  pct(r.goodnet->goodnet_asr).c_str(), pct(r.goodnet->detection_rate).c_str(),
                  pct(r.goodnet->false_alarm_rate).c_str());
    }
    std::printf("\n");
  }
}

void run_demo(const DemoOptions& o) {
  apply_threads(o.threads);
  const auto start = std::chrono::steady_clock::now();
  prepare_out_dir(o);
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
  std::vector<Row> rows = run_defense(o, model_path, summary);
  print_rows(rows, summary["channels"].get<int64_t>());
  summary["seconds"] = seconds_since(start);
  nlohmann::json table = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json row = {
        {"name", r.name}, {"pruned", r.pruned}, {"test_accuracy", r.accuracy}, {"test_asr", r.asr}};
    if (r.goodnet) row["goodnet"] = to_json(*r.goodnet);
    table.push_back(row);
  }
  summary["rows"] = table;
  write_file_atomic(o.out + "/" + kMarker, summary.dump(2) + "\n");
  std::printf("\nEverything is in %s/ (models, data, %s); %.0f s.\n", o.out.c_str(), kMarker,
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
  sub->add_flag("--quiet,-q", opt->quiet, "no progress on stderr");
  sub->callback([opt] { run_demo(*opt); });
}

}  // namespace bdguard::cli
