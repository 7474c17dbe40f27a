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
#include "bdguard/sweep_files.h"
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

// Fine-pruning of the models `bdguard run` saved (DIR/model_X=<X>.h5): each is fine-tuned
// with the defaults and written as DIR/model_X=<X>_finetuned.h5. Rows: the BadNet, then
// each pruned model and its fine-pruned copy, with their GoodNets (test files).
std::vector<Row> fine_prune(const DemoOptions& o, const std::string& model_path,
                            nlohmann::json& summary) {
  Model badnet = load_model(model_path);
  const std::string dir = o.out + "/data/";
  DataOptions d;
  d.num_classes = badnet.num_classes();
  LabDataset valid(dir + "valid.h5", badnet.input_shape(), d);
  LabDataset bd_valid(dir + "bd_valid.h5", badnet.input_shape(), d);
  LabDataset test(dir + "test.h5", badnet.input_shape(), d);
  LabDataset bd_test(dir + "bd_test.h5", badnet.input_shape(), d);
  auto clean_b = predict_dataset({&badnet}, test)[0];
  auto bd_b = predict_dataset({&badnet}, bd_test)[0];
  std::vector<Row> rows{{"BadNet", 0, match_rate(clean_b, test.labels()),
                         match_rate(bd_b, bd_test.labels()), std::nullopt}};
  const int64_t n = badnet.num_classes();
  auto goodnet = [&](const std::string& name, const std::vector<int64_t>& clean,
                     const std::vector<int64_t>& poisoned) {
    return goodnet_row(name, n, test.labels(), bd_test.labels(), clean_b, bd_b, clean, poisoned);
  };
  nlohmann::json models = nlohmann::json::array();
  for (double drop : kDefaultDrops) {
    const std::string file = drop_file_name(drop);
    const std::string name = file.substr(0, file.size() - 3);
    if (!std::filesystem::exists(o.out + "/" + file)) continue;
    Model pruned = load_model(o.out + "/" + file);
    int64_t count = 0;
    for (const auto& p : pruned_channels(pruned)) count += static_cast<int64_t>(p.channels.size());
    auto clean_p = predict_dataset({&pruned}, test)[0];
    auto bd_p = predict_dataset({&pruned}, bd_test)[0];
    rows.push_back({name, count, match_rate(clean_p, test.labels()),
                    match_rate(bd_p, bd_test.labels()), goodnet(name, clean_p, bd_p)});
    FinetuneOptions fo;
    fo.progress = train_progress_bar("finetune " + name, o.quiet);
    FinetuneResult ft = finetune(pruned, {&valid, &bd_valid, &test, &bd_test}, fo);
    const std::string ft_name = name + "_finetuned";
    save_model(pruned, o.out + "/" + ft_name + ".h5");
    rows.push_back({ft_name, count, *ft.after.test_accuracy, *ft.after.test_asr,
                    goodnet(ft_name, ft.test_predictions, ft.poisoned_test_predictions)});
    nlohmann::json entry = to_json(ft);
    entry["name"] = ft_name;
    entry["file"] = ft_name + ".h5";
    models.push_back(entry);
  }
  summary["finetune"] = models;
  return rows;
}

void print_rows(const std::vector<Row>& rows) {
  std::printf("\nFine-pruning (test files; G = the GoodNet of the BadNet and that model):\n");
  std::printf("%-24s %7s %9s %9s | %9s %9s %9s %9s\n", "model", "pruned", "accuracy", "ASR",
              "G acc", "G ASR", "detected", "false al.");
  for (const auto& r : rows) {
    std::string pruned = r.pruned ? std::to_string(r.pruned) : "-";
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
  // The defense: exactly `bdguard run` on the files just written.
  RunOptions run;
  run.model.model = model_path;
  run.valid = o.out + "/data/valid.h5";
  run.poisoned_valid = o.out + "/data/bd_valid.h5";
  run.test = o.out + "/data/test.h5";
  run.poisoned_test = o.out + "/data/bd_test.h5";
  run.out = o.out;
  run.force = true;  // the folder is the demo's own (checked above)
  run.global.threads = o.threads;
  run.global.quiet = o.quiet;
  run_run(run);
  std::fflush(stdout);
  std::vector<Row> rows = fine_prune(o, model_path, summary);
  print_rows(rows);
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
