// bdguard attack badnets|blended|sig|wanet: poison Fashion-MNIST (or a lab data file),
// train a BadNet, and write it with the lab-format data files the defense needs.
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>

#include "bdguard/architectures.h"
#include "bdguard/badnets.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "commands.h"
#include "common.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

struct AttackCliOptions {
  AttackOptions attack;
  std::string out;
  std::string optimizer = "adam";
  std::string mapping = "all-to-one";
  std::string format = "keras";
  int threads = 0;
  int64_t split_seed = -1;  // -1: --seed's split
  bool json = false, quiet = false, force = false;
};

std::string num(double v) { return nlohmann::json(v).dump(); }

void run_attack_cli(AttackCliOptions o) {
  prepare_output_dir(o.out, o.force);
  apply_threads(o.threads);
  o.attack.optimizer = parse_optimizer(o.optimizer);
  o.attack.mapping = parse_mapping(o.mapping);
  if (o.split_seed >= 0) o.attack.split_seed = static_cast<uint64_t>(o.split_seed);
  AttackResult r = run_attack(o.attack, train_progress_bar("train", o.quiet));
  nlohmann::json doc = write_attack_outputs(r, o.attack, o.out, o.format);
  if (o.json) {
    print_json(doc);
    return;
  }
  const std::string target = o.attack.mapping == Mapping::kAllToAll
                                 ? std::string("all-to-all: label y to y + 1 mod K")
                                 : "target " + std::to_string(o.attack.target);
  std::printf("BadNet: %s (%s images, %s poisoned with the trigger, %s; %d epochs, %.0f s)\n",
              (o.out + "/" + doc["model"].get<std::string>()).c_str(),
              std::to_string(r.n_train).c_str(), std::to_string(r.n_poisoned_train).c_str(),
              target.c_str(), static_cast<int>(r.history.size()), r.train_seconds);
  std::printf("Clean test accuracy: %s %% (%lld images)\n", pct(r.clean_accuracy).c_str(),
              static_cast<long long>(r.data.test.size()));
  std::printf("Attack success rate: %s %% (%lld triggered images)\n",
              pct(r.attack_success_rate).c_str(), static_cast<long long>(r.data.bd_test.size()));
  std::printf("Data: %s/data/{valid,test,bd_valid,bd_test}.h5; record: %s/attack.json\n",
              o.out.c_str(), o.out.c_str());
}

}  // namespace

std::string attack_command(const AttackOptions& a, int threads, const std::string& out,
                           const std::string& format) {
  const TriggerOptions& t = a.trigger;
  std::string cmd = "bdguard attack " + t.method + " --data " + quote_arg(a.data);
  if (!a.test_data.empty()) cmd += " --test-data " + quote_arg(a.test_data);
  cmd += " --out " + quote_arg(out) + " --arch " + a.arch;
  if (t.method == "badnets") {
    cmd += " --trigger " + quote_arg(t.trigger) + " --trigger-size " + std::to_string(t.size) +
           " --position " + quote_arg(t.position) + " --blend " + num(t.blend);
  } else if (t.method == "blended") {
    cmd += " --pattern " + quote_arg(t.pattern) + " --alpha " + num(t.alpha);
  } else if (t.method == "sig") {
    cmd += " --delta " + num(t.delta) + " --frequency " + num(t.frequency);
    if (a.clean_label) cmd += " --clean-label";
  } else if (t.method == "wanet") {
    cmd += " --k " + std::to_string(t.k) + " --s " + num(t.s) + " --grid-rescale " +
           num(t.grid_rescale) + " --cross-ratio " + num(a.cross_ratio);
  }
  cmd += " --mapping " + std::string(mapping_name(a.mapping)) + " --poison-rate " +
         num(a.poison_rate) + " --target " + std::to_string(a.target) + " --epochs " +
         std::to_string(a.epochs) + " --batch " + std::to_string(a.batch) + " --lr " + num(a.lr) +
         " --optimizer " + optimizer_name(a.optimizer) + " --seed " + std::to_string(a.seed) +
         " --threads " + std::to_string(threads);
  if (a.split_seed) cmd += " --split-seed " + std::to_string(*a.split_seed);
  if (a.max_train >= 0) cmd += " --max-train " + std::to_string(a.max_train);
  if (a.max_steps >= 0) cmd += " --max-steps " + std::to_string(a.max_steps);
  if (format != "keras") cmd += " --format " + format;
  return cmd;
}

nlohmann::json data_sha256(const std::string& dir) {
  nlohmann::json out;
  for (const char* f : {"valid.h5", "test.h5", "bd_valid.h5", "bd_test.h5"}) {
    out[f] = sha256_file(dir + "/" + f);
  }
  return out;
}

nlohmann::json write_attack_outputs(const AttackResult& r, const AttackOptions& a,
                                    const std::string& out, const std::string& format) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) fail<IoError>(out, "", "a folder bdguard can create", ec.message());
  const std::string model_name = format == "onnx" ? "bd_net.onnx" : "bd_net.h5";
  const std::string model_path = out + "/" + model_name;
  save_model(r.model, model_path);
  write_attack_data(r.data, out + "/data");
  if (r.data.bd_test.size() > 0) {
    write_png(out + "/example_poisoned.png", r.data.bd_test.images[0]);
  }
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.history) {
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"accuracy", e.accuracy}});
  }
  const int threads = at::get_num_threads();
  nlohmann::json doc = {{"command", attack_command(a, threads, out, format)},
                        {"options", to_json(a)},
                        {"format", format},
                        {"model", model_name},
                        {"threads", threads},
                        {"trigger", r.trigger.describe()},
                        {"n_train", r.n_train},
                        {"n_poisoned_train", r.n_poisoned_train},
                        {"n_valid", r.data.valid.size()},
                        {"n_test", r.data.test.size()},
                        {"n_bd_valid", r.data.bd_valid.size()},
                        {"n_bd_test", r.data.bd_test.size()},
                        {"epochs", epochs},
                        {"clean_accuracy", r.clean_accuracy},
                        {"attack_success_rate", r.attack_success_rate},
                        {"train_seconds", r.train_seconds},
                        {"bd_net_sha256", sha256_file(model_path)},
                        {"data_sha256", data_sha256(out + "/data")}};
  write_file_atomic(out + "/attack.json", doc.dump(2) + "\n");
  return doc;
}

namespace {

// A subcommand `attack METHOD` with the options every method shares.
std::pair<CLI::App*, std::shared_ptr<AttackCliOptions>> add_method(CLI::App& attack,
                                                                   const std::string& method,
                                                                   const std::string& help) {
  auto opt = std::make_shared<AttackCliOptions>();
  opt->attack.trigger.method = method;
  auto* sub = attack.add_subcommand(method, help);
  AttackOptions& a = opt->attack;
  sub->add_option("--data", a.data,
                  "Fashion-MNIST folder (IDX files, .gz or not) or a lab-format HDF5 file")
      ->check(CLI::ExistingPath)
      ->capture_default_str();
  sub->add_option("--test-data", a.test_data,
                  "held-out lab HDF5 file (with an HDF5 --data; default: a seventh of it)")
      ->check(CLI::ExistingFile);
  sub->add_option("--out", opt->out, "output folder: bd_net.h5 (or .onnx), data/*.h5, attack.json")
      ->required();
  sub->add_option("--format", opt->format, "model file: keras (bd_net.h5) or onnx (bd_net.onnx)")
      ->check(CLI::IsMember({"keras", "onnx"}))
      ->capture_default_str();
  sub->add_option("--arch", a.arch,
                  "network: fmnist (small DeepID), deepid (55x47x3), resbn, vgg, preact-resnet18 "
                  "(docs/architectures.md)")
      ->check(CLI::IsMember(trainable_architecture_names()))
      ->capture_default_str();
  sub->add_option("--mapping", opt->mapping,
                  "all-to-one (to --target) or all-to-all (label y to y + 1 mod K)")
      ->check(CLI::IsMember({"all-to-one", "all-to-all"}))
      ->capture_default_str();
  sub->add_option("--poison-rate", a.poison_rate, "fraction of the training images poisoned")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--target", a.target, "label the trigger switches to (all-to-one)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--epochs", a.epochs, "training epochs")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  sub->add_option("--batch", a.batch, "images per training step")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--lr", a.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--optimizer", opt->optimizer, "adam or sgd (momentum 0.9)")
      ->check(CLI::IsMember({"adam", "sgd"}))
      ->capture_default_str();
  sub->add_option("--seed", a.seed,
                  "seed of initialization, shuffling, poisoning, the split and the trigger")
      ->capture_default_str();
  sub->add_option("--split-seed", opt->split_seed,
                  "seed of the valid/test split of the held-out images instead of --seed's "
                  "(models of other seeds then share their clean data files)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--max-train", a.max_train, "use only the first N training images")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--max-steps", a.max_steps, "stop after N training steps")
      ->check(CLI::NonNegativeNumber);
  sub->add_option(
         "--threads", opt->threads,
         "compute threads (default: all cores; results are reproducible for a fixed count)")
      ->check(CLI::Range(0, 1024));
  add_force_flag(*sub, opt->force);
  sub->add_flag("--json", opt->json, "print the attack record as JSON");
  sub->add_flag("--quiet,-q", opt->quiet, "no progress on stderr");
  sub->callback([opt] { run_attack_cli(*opt); });
  return {sub, opt};
}

}  // namespace

void setup_attack(CLI::App& app) {
  auto* attack = app.add_subcommand(
      "attack", "make a backdoored network (BadNets, Blended, SIG, WaNet; docs/attacks.md)");
  attack->require_subcommand(1);

  auto [badnets, b] = add_method(*attack, "badnets",
                                 "poison training images with a patch trigger and train a BadNet");
  TriggerOptions& bt = b->attack.trigger;
  badnets
      ->add_option("--trigger", bt.trigger,
                   "square, checkerboard, random (0/255 pixels), random-grey, or an image file")
      ->capture_default_str();
  badnets->add_option("--trigger-size", bt.size, "trigger side in pixels")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  badnets
      ->add_option("--position", bt.position,
                   "bottom-right, bottom-left, top-right, top-left, center, random, or ROW,COL")
      ->capture_default_str();
  badnets
      ->add_option("--blend", bt.blend,
                   "trigger opacity: 1 stamps it, below 1 blends it into the image")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();

  auto [blended, l] = add_method(*attack, "blended",
                                 "mix a full-image pattern into the poisoned images (Chen 2017)");
  TriggerOptions& lt = l->attack.trigger;
  blended
      ->add_option("--pattern", lt.pattern,
                   "noise (seeded uniform 0..255) or an image file of the input's size")
      ->check(CLI::IsMember({"noise"}) | CLI::ExistingFile)
      ->capture_default_str();
  blended->add_option("--alpha", lt.alpha, "pattern weight: (1 - alpha) image + alpha pattern")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();

  auto [sig, g] =
      add_method(*attack, "sig", "add a horizontal sinusoid to the poisoned images (Barni 2019)");
  sig->add_option("--delta", g->attack.trigger.delta, "amplitude on 0..255 pixels")
      ->check(CLI::Range(0.0, 255.0))
      ->capture_default_str();
  sig->add_option("--frequency", g->attack.trigger.frequency, "periods across the image width")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sig->add_flag("--clean-label", g->attack.clean_label,
                "poison only target-class images, labels kept (the paper's mode)");

  auto [wanet, w] = add_method(*attack, "wanet",
                               "warp the poisoned images with a smooth field (Nguyen & Tran 2021)");
  TriggerOptions& wt = w->attack.trigger;
  wanet->add_option("--k", wt.k, "control grid size of the warping field")
      ->check(CLI::Range(2, 4096))
      ->capture_default_str();
  wanet->add_option("--s", wt.s, "warping strength")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  wanet->add_option("--grid-rescale", wt.grid_rescale, "scale of the warped grid")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  wanet
      ->add_option("--cross-ratio", w->attack.cross_ratio,
                   "noise-mode images (labels kept) per poisoned image")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
}

}  // namespace bdguard::cli
