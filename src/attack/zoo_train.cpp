// Training one model of a zoo, its record, and the zoo's ground truth (zoo.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/zoo.h"

namespace bdguard {

namespace fs = std::filesystem;

namespace {

std::string record_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / "records" / (name + ".json")).string();
}

std::string model_ext(const ZooOptions& o) { return o.format == "onnx" ? "onnx" : "h5"; }

nlohmann::json attempt_json(const ZooAttempt& a) {
  return {{"seed", a.seed},         {"clean_accuracy", a.clean_accuracy},
          {"asr", a.asr},           {"train_seconds", a.train_seconds},
          {"accepted", a.accepted}, {"why", a.why}};
}

ZooRecord record_from_json(const nlohmann::json& j, const std::string& path) {
  ZooRecord r;
  try {
    r.name = j.at("name").get<std::string>();
    r.file = j.at("file").get<std::string>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.criteria_met = j.at("criteria_met").get<bool>();
    r.kept = j.at("kept").get<int>();
    for (const auto& a : j.at("attempts")) {
      ZooAttempt x;
      x.seed = a.at("seed").get<uint64_t>();
      x.clean_accuracy = a.at("clean_accuracy").get<double>();
      x.asr = a.at("asr").get<double>();
      x.train_seconds = a.at("train_seconds").get<double>();
      x.accepted = a.at("accepted").get<bool>();
      x.why = a.at("why").get<std::string>();
      r.attempts.push_back(x);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", "a zoo model's record as bdguard zoo writes it", e.what());
  }
  if (r.kept < 0 || r.kept >= static_cast<int>(r.attempts.size())) {
    fail(path, "kept", "an attempt's index", std::to_string(r.kept));
  }
  return r;
}

// The attack's record of one attempt.
ZooAttempt read_attempt(const std::string& dir, uint64_t seed) {
  const std::string path = (fs::path(dir) / "attack.json").string();
  const nlohmann::json doc = read_json_file(path, 16u << 20, "a bdguard attack.json");
  ZooAttempt a;
  a.seed = seed;
  try {
    a.clean_accuracy = doc.at("clean_accuracy").get<double>();
    a.asr = doc.at("attack_success_rate").get<double>();
    a.train_seconds = doc.at("train_seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", "clean_accuracy, attack_success_rate and train_seconds", e.what());
  }
  return a;
}

void move_file(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::rename(from, to, ec);
  if (ec)
    fail<IoError>(from.string(), "", "a file bdguard can move to " + to.string(), ec.message());
}

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

nlohmann::json to_json(const ZooRecord& r) {
  nlohmann::json attempts = nlohmann::json::array();
  for (const auto& a : r.attempts) attempts.push_back(attempt_json(a));
  return {{"name", r.name},
          {"file", r.file},
          {"sha256", r.sha256},
          {"kept", r.kept},
          {"criteria_met", r.criteria_met},
          {"attempts", attempts}};
}

std::optional<ZooRecord> read_zoo_record(const std::string& dir, const ZooRecipe& recipe) {
  const std::string path = record_path(dir, recipe.name);
  if (!fs::exists(path)) return std::nullopt;
  ZooRecord r = record_from_json(read_json_file(path, 1u << 20, "a zoo model's record"), path);
  const fs::path model = fs::path(dir) / r.file;
  if (r.name != recipe.name || !fs::is_regular_file(model) ||
      sha256_file(model.string()) != r.sha256) {
    return std::nullopt;
  }
  return r;
}

std::optional<double> clean_twin_accuracy(const ZooPlan& plan, const std::string& arch) {
  double sum = 0;
  int n = 0;
  for (const auto& r : plan.recipes) {
    if (r.kind != "clean" || r.arch != arch) continue;
    if (auto rec = read_zoo_record(plan.options.out, r)) {
      sum += rec->attempts[static_cast<size_t>(rec->kept)].clean_accuracy;
      ++n;
    }
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

std::vector<int64_t> zoo_missing(const ZooPlan& plan) {
  std::vector<int64_t> out;
  for (const auto& r : plan.recipes) {
    if (!read_zoo_record(plan.options.out, r)) out.push_back(r.index);
  }
  return out;
}

ZooRecord train_zoo_model(const ZooPlan& plan, int64_t index, int threads, const ZooTrain& train) {
  const ZooOptions& o = plan.options;
  if (index < 0 || index >= static_cast<int64_t>(plan.recipes.size())) {
    fail<InvalidArgument>((fs::path(o.out) / kZooPlanJson).string(), "--index",
                          "a model index in [0, " + std::to_string(plan.recipes.size()) + ")",
                          std::to_string(index));
  }
  const ZooRecipe& r = plan.recipes[static_cast<size_t>(index)];
  if (auto done = read_zoo_record(o.out, r)) return *done;
  const fs::path work = fs::path(o.out) / "work" / r.name;
  fs::remove_all(work);
  // NaN: no clean twin to compare with (a clean model, or none trained yet).
  const double twin =
      r.backdoored() ? clean_twin_accuracy(plan, r.arch).value_or(std::nan("")) : std::nan("");
  ZooRecord rec;
  rec.name = r.name;
  int best = -1;
  for (int k = 0; k < std::max(1, o.max_attempts); ++k) {
    const uint64_t seed = r.seed + static_cast<uint64_t>(k);
    const fs::path dir = work / ("attempt_" + std::to_string(k));
    const std::string failed = train(zoo_attack_args(o, r, seed, dir.string(), threads));
    ZooAttempt a;
    a.seed = seed;
    if (!failed.empty()) {
      a.why = "bdguard attack " + failed;
      rec.attempts.push_back(a);
      continue;
    }
    a = read_attempt(dir.string(), seed);
    if (r.backdoored() && a.asr < o.min_asr) {
      a.why = "ASR " + fixed(a.asr) + " % below --min-asr " + fixed(o.min_asr);
    } else if (std::isfinite(twin) && a.clean_accuracy < twin - o.max_drop) {
      a.why = "clean accuracy " + fixed(a.clean_accuracy) + " % more than " + fixed(o.max_drop) +
              " points below its clean twins' " + fixed(twin) + " %";
    }
    a.accepted = a.why.empty();
    rec.attempts.push_back(a);
    const int i = static_cast<int>(rec.attempts.size()) - 1;
    if (best < 0 || a.asr > rec.attempts[static_cast<size_t>(best)].asr) best = i;
    if (a.accepted) {
      best = i;
      break;
    }
  }
  if (best < 0) {
    fail<Error>(r.name, "bdguard attack", "a trained model", rec.attempts.back().why);
  }
  rec.kept = best;
  rec.criteria_met = rec.attempts[static_cast<size_t>(best)].accepted;
  const fs::path kept = work / ("attempt_" + std::to_string(best));
  const fs::path data = fs::path(o.out) / "data";
  const std::string ext = model_ext(o);
  rec.file = "models/" + r.name + "." + ext;
  move_file(kept / ("bd_net." + ext), fs::path(o.out) / rec.file);
  // Every model's clean split is the same (--split-seed): the first one moved in stays.
  for (const char* f : {"valid.h5", "test.h5"}) {
    if (!fs::exists(data / f)) move_file(kept / "data" / f, data / f);
  }
  if (r.backdoored()) {
    move_file(kept / "data/bd_valid.h5", data / ("bd_valid_" + r.name + ".h5"));
    move_file(kept / "data/bd_test.h5", data / ("bd_test_" + r.name + ".h5"));
  }
  rec.sha256 = sha256_file((fs::path(o.out) / rec.file).string());
  fs::create_directories(fs::path(o.out) / "records");
  write_file_atomic(record_path(o.out, r.name), to_json(rec).dump(2) + "\n");
  fs::remove_all(work);
  return rec;
}

nlohmann::json finish_zoo(const ZooPlan& plan) {
  const ZooOptions& o = plan.options;
  std::ostringstream csv;
  csv << "model,backdoored,target,kind,arch,poison_rate,asr,criteria_met\n";
  nlohmann::json models = nlohmann::json::array();
  std::vector<std::string> missing;
  for (const auto& r : plan.recipes) {
    const auto rec = read_zoo_record(o.out, r);
    if (!rec) {
      missing.push_back(r.name);
      continue;
    }
    const std::string target = !r.backdoored()             ? ""
                               : r.mapping == "all-to-all" ? "all"
                                                           : std::to_string(r.target);
    const ZooAttempt& kept = rec->attempts[static_cast<size_t>(rec->kept)];
    char rate[32], asr[32] = "";
    std::snprintf(rate, sizeof rate, "%g", r.poison_rate);
    if (r.backdoored()) std::snprintf(asr, sizeof asr, "%.2f", kept.asr);
    csv << r.name << ',' << (r.backdoored() ? 1 : 0) << ',' << target << ',' << r.kind << ','
        << r.arch << ',' << rate << ',' << asr << ',' << (rec->criteria_met ? 1 : 0) << '\n';
    nlohmann::json m = to_json(r);
    m["file"] = rec->file;
    m["sha256"] = rec->sha256;
    m["clean_accuracy"] = kept.clean_accuracy;
    m["asr"] = r.backdoored() ? nlohmann::json(kept.asr) : nlohmann::json(nullptr);
    m["train_seconds"] = kept.train_seconds;
    m["seed_used"] = kept.seed;
    m["criteria_met"] = rec->criteria_met;
    m["attempts"] = to_json(*rec)["attempts"];
    if (r.backdoored()) {
      m["bd_valid"] = "data/bd_valid_" + r.name + ".h5";
      m["bd_test"] = "data/bd_test_" + r.name + ".h5";
    }
    models.push_back(m);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& n : missing) list += (list.empty() ? "" : ", ") + n;
    fail<InvalidArgument>(o.out, "records", "a record for every model (run bdguard zoo make again)",
                          std::to_string(missing.size()) + " missing: " + list);
  }
  write_file_atomic((fs::path(o.out) / kZooGroundTruthCsv).string(), csv.str());
  nlohmann::json doc = {{"finished", campaign_timestamp()},
                        {"options", to_json(o)},
                        {"valid", "data/valid.h5"},
                        {"test", "data/test.h5"},
                        {"models", models}};
  write_file_atomic((fs::path(o.out) / kZooJson).string(), doc.dump(2) + "\n");
  return doc;
}

}  // namespace bdguard
