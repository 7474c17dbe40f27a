// The zoo's recipes and its plan file (zoo.h).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/train.h"
#include "bdguard/zoo.h"

namespace bdguard {

namespace fs = std::filesystem;

namespace {

constexpr int kZooPlanVersion = 1;
constexpr int64_t kZooClasses = 10;  // Fashion-MNIST's

std::string pick(Rng& rng, const std::vector<std::string>& v) {
  return v[static_cast<size_t>(rng.below(v.size()))];
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The attack's own flags for a kind: varied triggers and positions for patches, the
// papers' defaults for the others.
std::vector<std::string> kind_flags(const std::string& kind, Rng& rng) {
  if (kind == "badnets" || kind == "all-to-all") {
    const std::string trigger = pick(rng, {"square", "checkerboard", "random"});
    const std::string size = pick(rng, {"3", "4", "5"});
    const std::string position =
        pick(rng, {"random", "random", "bottom-right", "top-left", "top-right", "bottom-left"});
    return {"--trigger", trigger, "--trigger-size", size, "--position", position};
  }
  if (kind == "blended")
    return {"--pattern", "noise", "--alpha", pick(rng, {"0.1", "0.15", "0.2"})};
  return {};  // sig, wanet: the defaults of their papers; clean: nothing is poisoned
}

}  // namespace

const std::vector<std::string>& zoo_kinds() {
  static const std::vector<std::string> kinds = {"clean", "badnets", "blended",
                                                 "sig",   "wanet",   "all-to-all"};
  return kinds;
}

std::vector<ZooRecipe> plan_zoo(const ZooOptions& o) {
  if (o.models < 1) fail<InvalidArgument>("", "--models", "at least 1", std::to_string(o.models));
  for (const auto& k : o.kinds) {
    const auto& all = zoo_kinds();
    if (std::find(all.begin(), all.end(), k) == all.end()) {
      fail<InvalidArgument>("", "--kinds", "clean, badnets, blended, sig, wanet or all-to-all",
                            "'" + k + "'");
    }
  }
  if (o.kinds.empty() || o.archs.empty() || o.poison_rates.empty()) {
    fail<InvalidArgument>("", "--kinds, --archs, --poison-rates", "at least one value each",
                          "an empty list");
  }
  std::vector<std::string> attacks;
  for (const auto& k : o.kinds) {
    if (k != "clean") attacks.push_back(k);
  }
  const bool with_clean = attacks.size() < o.kinds.size();
  int64_t n_clean =
      with_clean ? static_cast<int64_t>(std::llround(o.models * o.clean_fraction)) : 0;
  if (attacks.empty()) n_clean = o.models;
  Rng rng(o.seed);
  std::vector<ZooRecipe> out;
  std::vector<int64_t> per_arch_turn(o.kinds.size() + 1, 0);
  for (int64_t i = 0; i < o.models; ++i) {
    ZooRecipe r;
    const bool clean = i < n_clean;
    r.kind = clean ? "clean" : attacks[static_cast<size_t>(i - n_clean) % attacks.size()];
    // Architectures in turn within each kind, so every kind meets every architecture.
    const size_t kind_slot = clean ? 0 : 1 + static_cast<size_t>(i - n_clean) % attacks.size();
    r.arch = o.archs[static_cast<size_t>(per_arch_turn[kind_slot]++) % o.archs.size()];
    r.method = r.kind == "clean" || r.kind == "all-to-all" ? "badnets" : r.kind;
    r.mapping = r.kind == "all-to-all" ? "all-to-all" : "all-to-one";
    r.target = static_cast<int64_t>(rng.below(kZooClasses));
    r.poison_rate = clean ? 0 : o.poison_rates[rng.below(o.poison_rates.size())];
    r.flags = kind_flags(r.kind, rng);
    out.push_back(r);
  }
  // Shuffled: the index (and so the name) says nothing of the kind.
  const std::vector<int64_t> order = rng.permutation(o.models);
  std::vector<ZooRecipe> shuffled;
  for (int64_t i = 0; i < o.models; ++i) {
    ZooRecipe r = out[static_cast<size_t>(order[static_cast<size_t>(i)])];
    r.index = i;
    char name[32];
    std::snprintf(name, sizeof name, "model_%03lld", static_cast<long long>(i));
    r.name = name;
    r.seed = o.seed * 1000003 + static_cast<uint64_t>(i) * 1000;
    shuffled.push_back(r);
  }
  return shuffled;
}

std::vector<std::string> zoo_attack_args(const ZooOptions& o, const ZooRecipe& r, uint64_t seed,
                                         const std::string& out_dir, int threads) {
  std::vector<std::string> args = {"attack",        r.method,
                                   "--out",         out_dir,
                                   "--arch",        r.arch,
                                   "--seed",        std::to_string(seed),
                                   "--split-seed",  std::to_string(o.seed),
                                   "--poison-rate", number(r.poison_rate),
                                   "--mapping",     r.mapping,
                                   "--target",      std::to_string(r.target),
                                   "--max-train",   std::to_string(o.max_train),
                                   "--epochs",      std::to_string(o.epochs),
                                   "--format",      o.format,
                                   "--threads",     std::to_string(threads),
                                   "--quiet"};
  if (!o.data.empty()) args.insert(args.end(), {"--data", o.data});
  args.insert(args.end(), r.flags.begin(), r.flags.end());
  return args;
}

nlohmann::json to_json(const ZooOptions& o) {
  return {{"models", o.models},
          {"seed", o.seed},
          {"kinds", o.kinds},
          {"archs", o.archs},
          {"clean_fraction", o.clean_fraction},
          {"poison_rates", o.poison_rates},
          {"format", o.format},
          {"max_train", o.max_train},
          {"epochs", o.epochs},
          {"data", o.data},
          {"min_asr", o.min_asr},
          {"max_drop", o.max_drop},
          {"max_attempts", o.max_attempts}};
}

nlohmann::json to_json(const ZooRecipe& r) {
  return {{"index", r.index},
          {"name", r.name},
          {"kind", r.kind},
          {"method", r.method},
          {"arch", r.arch},
          {"mapping", r.mapping},
          {"target", r.kind == "clean" || r.mapping == "all-to-all" ? nlohmann::json(nullptr)
                                                                    : nlohmann::json(r.target)},
          {"poison_rate", r.poison_rate},
          {"seed", r.seed},
          {"flags", r.flags}};
}

namespace {

ZooOptions options_from_json(const nlohmann::json& j, const std::string& path) {
  ZooOptions o;
  try {
    o.models = j.at("models").get<int64_t>();
    o.seed = j.at("seed").get<uint64_t>();
    o.kinds = j.at("kinds").get<std::vector<std::string>>();
    o.archs = j.at("archs").get<std::vector<std::string>>();
    o.clean_fraction = j.at("clean_fraction").get<double>();
    o.poison_rates = j.at("poison_rates").get<std::vector<double>>();
    o.format = j.at("format").get<std::string>();
    o.max_train = j.at("max_train").get<int64_t>();
    o.epochs = j.at("epochs").get<int64_t>();
    o.data = j.at("data").get<std::string>();
    o.min_asr = j.at("min_asr").get<double>();
    o.max_drop = j.at("max_drop").get<double>();
    o.max_attempts = j.at("max_attempts").get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail(path, "options", "the zoo's options as bdguard zoo make writes them", e.what());
  }
  return o;
}

ZooRecipe recipe_from_json(const nlohmann::json& j, const std::string& path) {
  ZooRecipe r;
  try {
    r.index = j.at("index").get<int64_t>();
    r.name = j.at("name").get<std::string>();
    r.kind = j.at("kind").get<std::string>();
    r.method = j.at("method").get<std::string>();
    r.arch = j.at("arch").get<std::string>();
    r.mapping = j.at("mapping").get<std::string>();
    r.target = j.at("target").is_null() ? 0 : j.at("target").get<int64_t>();
    r.poison_rate = j.at("poison_rate").get<double>();
    r.seed = j.at("seed").get<uint64_t>();
    r.flags = j.at("flags").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    fail(path, "models", "recipes as bdguard zoo make writes them", e.what());
  }
  // Names become file names: the plan's own form only.
  if (r.name.empty() ||
      r.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
    fail(path, "models[].name", "letters, digits, '_' and '-'", "'" + r.name + "'");
  }
  return r;
}

}  // namespace

ZooPlan read_zoo_plan(const std::string& dir) {
  const std::string path = (fs::path(dir) / kZooPlanJson).string();
  const nlohmann::json doc = read_json_file(path, 64u << 20, "a bdguard zoo plan");
  if (!doc.is_object() || doc.value("version", 0) != kZooPlanVersion || !doc.contains("options") ||
      !doc.contains("models") || !doc["models"].is_array()) {
    fail(path, "version", "a bdguard zoo plan of version " + std::to_string(kZooPlanVersion),
         "something else");
  }
  ZooPlan plan;
  plan.options = options_from_json(doc["options"], path);
  plan.options.out = dir;
  for (const auto& m : doc["models"]) plan.recipes.push_back(recipe_from_json(m, path));
  for (size_t i = 0; i < plan.recipes.size(); ++i) {
    if (plan.recipes[i].index != static_cast<int64_t>(i)) {
      fail(path, "models[" + std::to_string(i) + "].index", std::to_string(i),
           std::to_string(plan.recipes[i].index));
    }
  }
  return plan;
}

std::vector<ZooRecipe> open_zoo(const ZooOptions& o) {
  const std::string path = (fs::path(o.out) / kZooPlanJson).string();
  if (fs::exists(path)) {
    const ZooPlan plan = read_zoo_plan(o.out);
    const nlohmann::json want = to_json(o), have = to_json(plan.options);
    for (const auto& [key, value] : want.items()) {
      if (have[key] != value) {
        fail<InvalidArgument>(path, key, value.dump() + " (the flags given now)",
                              have[key].dump() +
                                  " (planned earlier: use the same flags to "
                                  "resume, or another --out)");
      }
    }
    return plan.recipes;
  }
  std::vector<ZooRecipe> recipes = plan_zoo(o);
  nlohmann::json models = nlohmann::json::array();
  for (const auto& r : recipes) models.push_back(to_json(r));
  fs::create_directories(o.out);
  write_file_atomic(
      path,
      nlohmann::json{{"version", kZooPlanVersion}, {"options", to_json(o)}, {"models", models}}
              .dump(2) +
          "\n");
  return recipes;
}

}  // namespace bdguard
