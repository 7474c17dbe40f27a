// bdguard goodnet eval|predict|save: the BadNet and a pruned net as one repaired classifier.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <tuple>

#include "bdguard/error.h"
#include "bdguard/goodnet.h"
#include "commands.h"
#include "common.h"
#include "strip_cli.h"

namespace bdguard::cli {
namespace {

struct GoodNetOptions {
  ModelOptions model;  // --arch, --arch-from, --input-scale, --layout
  GlobalOptions global;
  std::string badnet, manifest, out, clean, poisoned;
  std::string pruned_one;  // predict and save take exactly one pruned net
  std::vector<std::string> pruned, images;
  bool strip = false;  // STRIP beside the pair: N also where STRIP flags the input
  StripFlags strip_flags;
};

// B and every P, from the flags or from a manifest (whose hashes are checked).
struct Pair {
  Model badnet;
  std::vector<Model> pruned;
  std::vector<std::string> pruned_paths;
};

// The options with a manifest's settings in place of the flags.
GoodNetOptions resolved(const GoodNetOptions& in) {
  GoodNetOptions o = in;
  if (o.manifest.empty()) return o;
  GoodNetManifest g = read_goodnet_manifest(o.manifest);
  if (g.strip) {
    o.strip = true;
    o.strip_flags.clean = g.strip_valid;
    o.strip_flags.options.overlays = g.strip_overlays;
    o.strip_flags.options.alpha = g.strip_alpha;
    o.strip_flags.options.frr = g.strip_frr;
    o.strip_flags.options.seed = g.strip_seed;
  }
  return o;
}

void require_strip_valid(const GoodNetOptions& o) {
  if (o.strip && o.strip_flags.clean.empty()) {
    throw CLI::RequiredError("--valid (clean validation data for --strip)");
  }
}

Pair load_pair(const GoodNetOptions& o) {
  ModelOptions mo = o.model;
  std::string badnet = o.badnet;
  std::vector<std::string> pruned = o.pruned;
  if (!o.pruned_one.empty()) pruned = {o.pruned_one};
  if (!o.manifest.empty()) {
    GoodNetManifest g = read_goodnet_manifest(o.manifest);
    badnet = g.badnet;
    pruned = {g.pruned};
    mo.arch = g.arch;
    mo.arch_from = g.arch_from;
    mo.input_scale = g.preprocess.scale;
    mo.mean = number_text(g.preprocess.mean);
    mo.std = number_text(g.preprocess.std);
  }
  if (badnet.empty() || pruned.empty()) {
    throw InvalidArgument("goodnet: --badnet and --pruned (or --goodnet G.json) are required");
  }
  Pair p{load(mo, badnet), {}, pruned};
  for (const auto& path : pruned) {
    p.pruned.push_back(load(mo, path));
    check_goodnet_pair(p.badnet, p.pruned.back(), badnet, path);
  }
  return p;
}

void run_goodnet_eval(const GoodNetOptions& in) {
  const GoodNetOptions o = resolved(in);
  require_strip_valid(o);
  apply_threads(o.global.threads);
  Pair p = load_pair(o);
  const DataOptions dopt = data_options(o.model, p.badnet);
  LabDataset clean(o.clean, p.badnet.input_shape(), dopt);
  LabDataset poisoned(o.poisoned, p.badnet.input_shape(), dopt);
  std::vector<const Model*> models{&p.badnet};
  for (const auto& m : p.pruned) models.push_back(&m);
  // Each file is read once; every net runs on each batch.
  auto pc = predict_dataset(models, clean, o.global.batch, progress_bar("clean", o.global.quiet));
  auto pp =
      predict_dataset(models, poisoned, o.global.batch, progress_bar("poisoned", o.global.quiet));
  // STRIP on the BadNet's inputs: one set of flags serves every pruned net.
  std::vector<bool> sc, sp;
  nlohmann::json strip_doc = nullptr;
  if (o.strip) {
    Strip s = make_strip(p.badnet, o.model, o.strip_flags, o.global);
    for (const auto& [set, out, stream] : {std::tuple{&clean, &sc, kStripTestStream},
                                           std::tuple{&poisoned, &sp, kStripPoisonedStream}}) {
      for (double x :
           s.scores(read_tensor_data(*set).images, stream, progress_bar("STRIP", o.global.quiet))) {
        out->push_back(s.flagged(x));
      }
    }
    strip_doc = strip_settings(o.strip_flags, o.model);
    strip_doc["threshold"] = s.threshold();
  }
  nlohmann::json rows = nlohmann::json::array(), strip_rows = nlohmann::json::array();
  std::vector<GoodNetRow> table;
  for (size_t k = 0; k < p.pruned.size(); ++k) {
    table.push_back(goodnet_row(p.pruned_paths[k], p.badnet.num_classes(), clean.labels(),
                                poisoned.labels(), pc[0], pp[0], pc[k + 1], pp[k + 1]));
    rows.push_back(to_json(table.back()));
    if (o.strip) {
      table.push_back(goodnet_row(p.pruned_paths[k], p.badnet.num_classes(), clean.labels(),
                                  poisoned.labels(), pc[0], pp[0], pc[k + 1], pp[k + 1], sc, sp));
      strip_rows.push_back(to_json(table.back()));
    }
  }
  if (o.global.json) {
    nlohmann::json doc = {{"rows", rows}, {"detected_label", p.badnet.num_classes()}};
    if (o.strip) {
      doc["strip_rows"] = strip_rows;
      doc["strip"] = strip_doc;
    }
    print_json(doc);
    return;
  }
  std::printf(
      "GoodNet = BadNet where both agree, label %lld where they disagree "
      "(%lld clean, %lld poisoned images)\n",
      static_cast<long long>(p.badnet.num_classes()), static_cast<long long>(clean.size()),
      static_cast<long long>(poisoned.size()));
  std::printf("%-28s %9s %9s %9s %9s %9s %9s %9s %9s\n", "pruned net", "G acc", "G ASR", "detect",
              "false al", "B acc", "B ASR", "P acc", "P ASR");
  for (const auto& r : table) {
    std::string name =
        std::filesystem::path(r.pruned).filename().string() + (r.strip ? " +STRIP" : "");
    std::printf("%-28s %9s %9s %9s %9s %9s %9s %9s %9s\n", name.c_str(),
                pct(r.goodnet_accuracy).c_str(), pct(r.goodnet_asr).c_str(),
                pct(r.detection_rate).c_str(), pct(r.false_alarm_rate).c_str(),
                pct(r.badnet_accuracy).c_str(), pct(r.badnet_asr).c_str(),
                pct(r.pruned_accuracy).c_str(), pct(r.pruned_asr).c_str());
  }
  std::printf("(all rates in percent)\n");
}

void run_goodnet_predict(const GoodNetOptions& in) {
  const GoodNetOptions o = resolved(in);
  require_strip_valid(o);
  apply_threads(o.global.threads);
  Pair p = load_pair(o);
  if (p.pruned.size() != 1) throw InvalidArgument("goodnet predict takes one --pruned net");
  std::vector<at::Tensor> xs;
  for (const auto& path : o.images) xs.push_back(load_image(path, p.badnet.input_shape()));
  at::NoGradGuard no_grad;
  at::Tensor x = at::cat(xs);
  auto [bp, bl] = p.badnet.probabilities(x).to(at::kDouble).max(1);
  auto [pp, pl] = p.pruned[0].probabilities(x).to(at::kDouble).max(1);
  const int64_t n = p.badnet.num_classes();
  std::vector<double> entropy;
  std::optional<Strip> strip;
  if (o.strip) {
    strip.emplace(make_strip(p.badnet, o.model, o.strip_flags, o.global));
    entropy = strip->scores(x, kStripImageStream);
  }
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < o.images.size(); ++i) {
    auto r = static_cast<int64_t>(i);
    int64_t b = bl[r].item<int64_t>(), q = pl[r].item<int64_t>();
    const bool strip_flag = strip && strip->flagged(entropy[i]);
    bool agree = b == q && !strip_flag;
    nlohmann::json e = {
        {"input", o.images[i]},
        {"label", agree ? b : n},
        {"prob", agree ? nlohmann::json(bp[r].item<double>()) : nlohmann::json(nullptr)},
        {"backdoor_detected", !agree},
        {"badnet", {{"label", b}, {"prob", bp[r].item<double>()}}},
        {"pruned", {{"label", q}, {"prob", pp[r].item<double>()}}}};
    if (strip) e["strip"] = {{"entropy", entropy[i]}, {"flagged", strip_flag}};
    out.push_back(e);
  }
  if (o.global.json) {
    print_json(out);
    return;
  }
  for (const auto& e : out) {
    std::printf("%s\t%lld%s\n", e["input"].get<std::string>().c_str(),
                static_cast<long long>(e["label"].get<int64_t>()),
                e["backdoor_detected"].get<bool>() ? "\tbackdoor detected" : "");
  }
}

void run_goodnet_save(const GoodNetOptions& o) {
  Pair p = load_pair(o);
  if (p.pruned.size() != 1) throw InvalidArgument("goodnet save takes one --pruned net");
  GoodNetManifest g;
  g.badnet = o.badnet;
  g.pruned = o.pruned_one;
  g.arch = o.model.arch;
  g.arch_from = o.model.arch_from;
  g.preprocess = preprocess_of(o.model);
  g.num_classes = p.badnet.num_classes();
  require_strip_valid(o);
  if (o.strip) {
    g.strip = true;
    g.strip_valid = o.strip_flags.clean;
    g.strip_overlays = o.strip_flags.options.overlays;
    g.strip_alpha = o.strip_flags.options.alpha;
    g.strip_frr = o.strip_flags.options.frr;
    g.strip_seed = o.strip_flags.options.seed;
  }
  write_goodnet_manifest(g, o.out);
  if (o.global.json) {
    print_json({{"goodnet", o.out}});
  } else {
    std::printf("wrote %s\n", o.out.c_str());
  }
}

void add_strip_flags(CLI::App& sub, GoodNetOptions& o) {
  sub.add_flag("--strip", o.strip,
               "add STRIP: G also answers N where STRIP flags the input (needs --valid)");
  add_strip_options(sub, o.strip_flags, "--valid", "--strip-seed", /*required=*/false);
}

void add_pair_options(CLI::App& sub, GoodNetOptions& o, bool many_pruned) {
  add_model_options(sub, o.model, "");
  add_global_options(sub, o.global);
  auto* b = sub.add_option("--badnet", o.badnet, "the BadNet (Keras .h5 or ONNX)")
                ->check(CLI::ExistingFile);
  auto* p = many_pruned ? sub.add_option("--pruned", o.pruned, "pruned net(s), repeatable")
                        : sub.add_option("--pruned", o.pruned_one, "the pruned net");
  p->check(CLI::ExistingFile);
  auto* g = sub.add_option("--goodnet", o.manifest, "a GoodNet manifest from `goodnet save`")
                ->check(CLI::ExistingFile);
  g->excludes(b)->excludes(p);
  add_strip_flags(sub, o);
}

}  // namespace

void setup_goodnet(CLI::App& app) {
  auto* group = app.add_subcommand("goodnet", "the BadNet and a pruned net as one classifier");
  group->require_subcommand(1);

  auto eval = std::make_shared<GoodNetOptions>();
  auto* e = group->add_subcommand("eval", "GoodNet accuracy, ASR, detection and false alarms");
  add_pair_options(*e, *eval, true);
  e->add_option("--clean", eval->clean, "clean test data")->required()->check(CLI::ExistingPath);
  e->add_option("--poisoned", eval->poisoned, "poisoned test data")
      ->required()
      ->check(CLI::ExistingPath);
  e->callback([eval] { run_goodnet_eval(*eval); });

  auto pred = std::make_shared<GoodNetOptions>();
  auto* p = group->add_subcommand("predict", "one label in [0, N] per image (N: backdoor)");
  add_pair_options(*p, *pred, false);
  p->add_option("images", pred->images, "image files")->required()->check(CLI::ExistingFile);
  p->callback([pred] { run_goodnet_predict(*pred); });

  auto save = std::make_shared<GoodNetOptions>();
  auto* s = group->add_subcommand("save", "write a GoodNet manifest (one repaired artifact)");
  add_model_options(*s, save->model, "");
  add_global_options(*s, save->global);
  s->add_option("--badnet", save->badnet, "the BadNet (Keras .h5 or ONNX)")
      ->required()
      ->check(CLI::ExistingFile);
  s->add_option("--pruned", save->pruned_one, "the pruned net")
      ->required()
      ->check(CLI::ExistingFile);
  s->add_option("--out", save->out, "manifest file to write (G.json)")->required();
  add_strip_flags(*s, *save);
  s->callback([save] { run_goodnet_save(*save); });
}

}  // namespace bdguard::cli
