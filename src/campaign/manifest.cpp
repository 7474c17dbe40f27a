// The campaign manifest: finding the models of a zoo, the ground truth, manifest.json.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "bdguard/campaign.h"
#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "campaign/text.h"
#include "io/csv.h"

namespace bdguard {

namespace fs = std::filesystem;
using campaign::lower;

namespace {

constexpr int64_t kMaxTextBytes = int64_t{64} << 20;  // a list or a ground-truth CSV

std::vector<std::string> text_lines(const std::string& path) {
  require_regular_file(path);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) fail<IoError>(path, "", "a readable file", ec.message());
  if (size > static_cast<uintmax_t>(kMaxTextBytes)) {
    fail<LimitExceeded>(path, "", "a text file of at most 64 MiB", std::to_string(size) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

bool model_extension(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".h5" || ext == ".onnx";
}

std::string abs_path(const fs::path& p) {
  fs::path a = fs::absolute(p).lexically_normal();
  if (a.filename().empty() && a.has_parent_path() && a != a.root_path()) a = a.parent_path();
  return a.string();
}

std::vector<CampaignModel> search_folder(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> found;  // name, path
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (!model_extension(it->path()) || !fs::is_regular_file(it->path(), ec2)) continue;
    found.emplace_back(fs::relative(it->path(), dir, ec2).generic_string(), abs_path(it->path()));
  }
  if (ec) fail<IoError>(dir, "", "a readable folder", ec.message());
  std::sort(found.begin(), found.end());
  std::vector<CampaignModel> out;
  for (auto& [name, path] : found) {
    CampaignModel m;
    m.name = name;
    m.path = path;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<CampaignModel> read_list(const std::string& list) {
  const fs::path base = fs::absolute(list).parent_path();
  std::vector<CampaignModel> out;
  std::map<std::string, int> seen;
  const auto lines = text_lines(list);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string entry = trim(lines[i]);
    if (entry.empty() || entry[0] == '#') continue;
    const std::string where = "line " + std::to_string(i + 1);
    const fs::path p = fs::path(entry).is_absolute() ? fs::path(entry) : base / entry;
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st))
      fail<InvalidArgument>(list, where, "an existing model file", "'" + entry + "': missing");
    if (!fs::is_regular_file(st)) {
      fail<InvalidArgument>(list, where, "a model file", "'" + entry + "': not a regular file");
    }
    const std::string path = abs_path(p);
    if (auto [it, fresh] = seen.emplace(path, static_cast<int>(i + 1)); !fresh) {
      fail<InvalidArgument>(list, where, "each model listed once",
                            "'" + entry + "' again (line " + std::to_string(it->second) + ")");
    }
    CampaignModel m;
    m.name = entry;
    m.path = path;
    out.push_back(std::move(m));
  }
  return out;
}

bool parse_bool(const std::string& s, bool& v) {
  const std::string t = lower(s);
  if (t == "1" || t == "true" || t == "yes") {
    v = true;
  } else if (t == "0" || t == "false" || t == "no") {
    v = false;
  } else {
    return false;
  }
  return true;
}

// The names a ground-truth row may give a model.
std::set<std::string> model_keys(const CampaignModel& m) {
  const fs::path name(m.name), path(m.path);
  std::string stem = name.generic_string();
  if (name.has_extension()) stem = stem.substr(0, stem.size() - name.extension().string().size());
  return {m.name, stem, path.filename().string(), path.stem().string()};
}

template <class T>
T field(const nlohmann::json& doc, const char* key, const std::string& file) {
  if (!doc.is_object() || !doc.contains(key)) fail(file, key, "this key", "none");
  try {
    return doc.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(file, key, "a value of the right type", doc.at(key).dump());
  }
}

}  // namespace

std::vector<CampaignModel> find_models(const std::string& dir_or_list) {
  std::error_code ec;
  const auto st = fs::status(dir_or_list, ec);
  if (!fs::exists(st))
    fail<InvalidArgument>(dir_or_list, "", "a model folder or list", "nothing there");
  std::vector<CampaignModel> models =
      fs::is_directory(st) ? search_folder(dir_or_list) : read_list(dir_or_list);
  if (models.empty()) {
    fail<InvalidArgument>(dir_or_list, "",
                          fs::is_directory(st) ? "at least one .h5 or .onnx model in the folder"
                                               : "at least one model path in the list",
                          "none");
  }
  for (size_t i = 0; i < models.size(); ++i) {
    models[i].index = static_cast<int64_t>(i);
    models[i].sha256 = sha256_file(models[i].path);
  }
  return models;
}

std::vector<GroundTruthRow> read_ground_truth(const std::string& csv) {
  const auto lines = text_lines(csv);
  size_t first = 0;
  while (first < lines.size() && trim(lines[first]).empty()) ++first;
  const auto header = first < lines.size() ? parse_csv_line(lines[first]) : std::nullopt;
  std::vector<std::string> names;
  for (const auto& h : header.value_or(std::vector<std::string>{})) names.push_back(lower(trim(h)));
  auto column = [&](const std::string& name) -> int {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) return -1;
    if (std::find(it + 1, names.end(), name) != names.end()) {
      fail(csv, "line " + std::to_string(first + 1), "one column '" + name + "'", "two");
    }
    return static_cast<int>(it - names.begin());
  };
  const int model_col = column("model"), bd_col = column("backdoored"),
            target_col = column("target");
  if (model_col < 0 || bd_col < 0) {
    fail(csv, "line " + std::to_string(first + 1),
         "a header with the columns model and backdoored (and optionally target and others)",
         first < lines.size() ? "'" + lines[first] + "'" : "an empty file");
  }
  // The old three-column form allowed rows without the target.
  const bool short_rows_ok = names.size() == 3 && target_col == 2;
  std::vector<GroundTruthRow> rows;
  std::map<std::string, int> seen;
  for (size_t i = first + 1; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    const std::string where = "line " + std::to_string(i + 1);
    const auto f = parse_csv_line(lines[i]);
    if (!f) fail(csv, where, "CSV fields", "a quoted field that does not end");
    if (f->size() != names.size() && !(short_rows_ok && f->size() == 2)) {
      fail(csv, where, std::to_string(names.size()) + " fields (" + lines[first] + ")",
           std::to_string(f->size()) + " in '" + lines[i] + "'");
    }
    GroundTruthRow row;
    row.line = static_cast<int>(i + 1);
    row.model = (*f)[static_cast<size_t>(model_col)];
    if (row.model.empty()) fail(csv, where, "a model name", "an empty field");
    const std::string& bd = (*f)[static_cast<size_t>(bd_col)];
    if (!parse_bool(bd, row.truth.backdoored)) {
      fail(csv, where + ": backdoored", "1/0, true/false or yes/no", "'" + bd + "'");
    }
    const std::string target = target_col >= 0 && static_cast<size_t>(target_col) < f->size()
                                   ? trim((*f)[static_cast<size_t>(target_col)])
                                   : "";
    if (!target.empty()) {
      if (!row.truth.backdoored) {
        fail(csv, where + ": target", "no target on a clean model (backdoored 0)",
             "'" + target + "'");
      }
      if (lower(target) == "all") {
        row.truth.all_to_all = true;
      } else {
        char* end = nullptr;
        errno = 0;
        const long long t = std::strtoll(target.c_str(), &end, 10);
        if (end != target.c_str() + target.size() || errno != 0 || t < 0) {
          fail(csv, where + ": target", "empty, a label >= 0 or all", "'" + target + "'");
        }
        row.truth.target = t;
      }
    }
    for (size_t c = 0; c < f->size(); ++c) {
      const int ci = static_cast<int>(c);
      if (ci != model_col && ci != bd_col && ci != target_col) row.truth.extra[names[c]] = (*f)[c];
    }
    if (auto [it, fresh] = seen.emplace(row.model, row.line); !fresh) {
      fail(csv, where, "one row per model",
           "'" + row.model + "' again (line " + std::to_string(it->second) + ")");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void attach_ground_truth(std::vector<CampaignModel>& models,
                         const std::vector<GroundTruthRow>& rows, const std::string& csv) {
  std::vector<std::set<std::string>> keys;
  for (const auto& m : models) keys.push_back(model_keys(m));
  std::map<size_t, int> taken;  // model position -> line
  std::vector<std::optional<GroundTruth>> truth(models.size());
  for (const auto& row : rows) {
    const std::string where = "line " + std::to_string(row.line);
    std::vector<size_t> hits;
    for (size_t i = 0; i < models.size(); ++i) {
      if (keys[i].count(row.model)) hits.push_back(i);
    }
    if (hits.empty()) {
      fail(csv, where, "a model of the zoo (its name, file name, or either without the extension)",
           "'" + row.model + "'");
    }
    if (hits.size() > 1) {
      fail(csv, where, "a name that matches one model",
           "'" + row.model + "' matching " + models[hits[0]].name + " and " + models[hits[1]].name);
    }
    if (auto [it, fresh] = taken.emplace(hits[0], row.line); !fresh) {
      fail(csv, where, "one row per model",
           "a second row for " + models[hits[0]].name + " (line " + std::to_string(it->second) +
               ")");
    }
    truth[hits[0]] = row.truth;
  }
  for (size_t i = 0; i < models.size(); ++i) models[i].truth = truth[i];
}

nlohmann::json to_json(const Manifest& m) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& e : m.models) {
    nlohmann::json j = {
        {"index", e.index}, {"path", e.path}, {"name", e.name}, {"sha256", e.sha256}};
    if (e.truth) {
      j["ground_truth"] = {{"backdoored", e.truth->backdoored},
                           {"target", e.truth->all_to_all ? nlohmann::json("all")
                                      : e.truth->target   ? nlohmann::json(*e.truth->target)
                                                          : nlohmann::json(nullptr)}};
      if (!e.truth->extra.empty()) j["ground_truth"]["extra"] = e.truth->extra;
    }
    models.push_back(j);
  }
  return {{"format", "bdguard-campaign"},
          {"version", kManifestVersion},
          {"tool", m.tool},
          {"created", m.created},
          {"models_source", m.models_source},
          {"ground_truth", m.ground_truth_file.empty()
                               ? nlohmann::json(nullptr)
                               : nlohmann::json({{"file", m.ground_truth_file},
                                                 {"sha256", m.ground_truth_sha256}})},
          {"settings", m.settings},
          {"models", models}};
}

Manifest manifest_from_json(const nlohmann::json& doc, const std::string& dir) {
  const std::string file = (fs::path(dir) / kManifestJson).string();
  if (field<std::string>(doc, "format", file) != "bdguard-campaign") {
    fail(file, "format", "bdguard-campaign", doc["format"].dump());
  }
  if (field<int>(doc, "version", file) != kManifestVersion) {
    fail(file, "version", std::to_string(kManifestVersion), doc["version"].dump());
  }
  Manifest m;
  m.dir = abs_path(dir);
  m.tool = field<std::string>(doc, "tool", file);
  m.created = field<std::string>(doc, "created", file);
  m.models_source = field<std::string>(doc, "models_source", file);
  if (doc.contains("ground_truth") && !doc["ground_truth"].is_null()) {
    m.ground_truth_file = field<std::string>(doc["ground_truth"], "file", file);
    m.ground_truth_sha256 = field<std::string>(doc["ground_truth"], "sha256", file);
  }
  m.settings = field<nlohmann::json>(doc, "settings", file);
  if (!m.settings.is_object()) fail(file, "settings", "an object", m.settings.dump());
  const auto models = field<nlohmann::json>(doc, "models", file);
  if (!models.is_array()) fail(file, "models", "an array", models.type_name());
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string where = file + ": models[" + std::to_string(i) + "]";
    CampaignModel e;
    e.index = field<int64_t>(models[i], "index", where);
    if (e.index != static_cast<int64_t>(i))
      fail(where, "index", std::to_string(i), std::to_string(e.index));
    e.path = field<std::string>(models[i], "path", where);
    e.name = field<std::string>(models[i], "name", where);
    e.sha256 = field<std::string>(models[i], "sha256", where);
    if (models[i].contains("ground_truth")) {
      const auto& g = models[i]["ground_truth"];
      GroundTruth t;
      t.backdoored = field<bool>(g, "backdoored", where + ": ground_truth");
      if (g.contains("target") && g["target"].is_string() && g["target"] == "all") {
        t.all_to_all = true;
      } else if (g.contains("target") && !g["target"].is_null()) {
        t.target = field<int64_t>(g, "target", where + ": ground_truth");
      }
      if (g.contains("extra")) {
        t.extra = field<std::map<std::string, std::string>>(g, "extra", where + ": ground_truth");
      }
      e.truth = t;
    }
    m.models.push_back(std::move(e));
  }
  return m;
}

void write_manifest(const Manifest& m) {
  write_file_atomic((fs::path(m.dir) / kManifestJson).string(), to_json(m).dump(2) + "\n");
}

Manifest read_manifest(const std::string& dir) {
  const std::string file = (fs::path(dir) / kManifestJson).string();
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    fail<InvalidArgument>(file, "", "a campaign folder (bdguard campaign init --out DIR)",
                          "no manifest.json");
  }
  return manifest_from_json(
      read_json_file(file, static_cast<size_t>(kMaxTextBytes), "a campaign manifest"), dir);
}

const CampaignModel& campaign_model(const Manifest& m, int64_t index) {
  if (index < 0 || index >= static_cast<int64_t>(m.models.size())) {
    fail<InvalidArgument>((fs::path(m.dir) / kManifestJson).string(), "task index",
                          "an index in [0, " + std::to_string(m.models.size()) + ")",
                          std::to_string(index));
  }
  return m.models[static_cast<size_t>(index)];
}

int task_threads(const Manifest& m) {
  const auto t = m.settings.find("threads");
  if (t == m.settings.end()) return 1;
  if (!t->is_number_integer()) {
    fail<FormatError>((fs::path(m.dir) / kManifestJson).string(), "settings.threads", "an integer",
                      t->dump());
  }
  return static_cast<int>(std::clamp<int64_t>(t->get<int64_t>(), 1, 1 << 20));
}

}  // namespace bdguard
