#include "bdguard/goodnet.h"

#include <cerrno>
#include <cstring>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/evaluate.h"
#include "bdguard/fileio.h"
#include "bdguard/model.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bdguard {

std::vector<int64_t> goodnet_labels(const std::vector<int64_t>& badnet,
                                    const std::vector<int64_t>& pruned, int64_t num_classes) {
  if (badnet.size() != pruned.size()) {
    throw InvalidArgument(describe("", "GoodNet predictions",
                                   std::to_string(badnet.size()) + " labels from each net",
                                   std::to_string(pruned.size()) + " from the pruned net"));
  }
  std::vector<int64_t> out(badnet.size());
  for (size_t i = 0; i < badnet.size(); ++i)
    out[i] = badnet[i] == pruned[i] ? badnet[i] : num_classes;
  return out;
}

std::vector<int64_t> with_strip(std::vector<int64_t> g, const std::vector<bool>& flagged,
                                int64_t num_classes) {
  if (flagged.size() != g.size()) {
    throw InvalidArgument(describe("", "STRIP flags", std::to_string(g.size()) + " flags",
                                   std::to_string(flagged.size())));
  }
  for (size_t i = 0; i < g.size(); ++i) {
    if (flagged[i]) g[i] = num_classes;
  }
  return g;
}

static double rate_of(const std::vector<int64_t>& labels, int64_t value) {
  int64_t hits = 0;
  for (int64_t l : labels) hits += l == value;
  return percent(hits, static_cast<int64_t>(labels.size()));
}

GoodNetRow goodnet_row(
    const std::string& pruned_name, int64_t num_classes, const std::vector<int64_t>& clean_labels,
    const std::vector<int64_t>& poisoned_labels, const std::vector<int64_t>& badnet_clean,
    const std::vector<int64_t>& badnet_poisoned, const std::vector<int64_t>& pruned_clean,
    const std::vector<int64_t>& pruned_poisoned, const std::vector<bool>& strip_clean,
    const std::vector<bool>& strip_poisoned) {
  GoodNetRow r;
  r.pruned = pruned_name;
  r.strip = !strip_clean.empty();
  r.n_clean = static_cast<int64_t>(clean_labels.size());
  r.n_poisoned = static_cast<int64_t>(poisoned_labels.size());
  auto g_clean = goodnet_labels(badnet_clean, pruned_clean, num_classes);
  auto g_poisoned = goodnet_labels(badnet_poisoned, pruned_poisoned, num_classes);
  if (r.strip) {
    g_clean = with_strip(std::move(g_clean), strip_clean, num_classes);
    g_poisoned = with_strip(std::move(g_poisoned), strip_poisoned, num_classes);
  }
  r.goodnet_accuracy = match_rate(g_clean, clean_labels);
  r.goodnet_asr = match_rate(g_poisoned, poisoned_labels);
  r.detection_rate = rate_of(g_poisoned, num_classes);
  r.false_alarm_rate = rate_of(g_clean, num_classes);
  r.badnet_accuracy = match_rate(badnet_clean, clean_labels);
  r.badnet_asr = match_rate(badnet_poisoned, poisoned_labels);
  r.pruned_accuracy = match_rate(pruned_clean, clean_labels);
  r.pruned_asr = match_rate(pruned_poisoned, poisoned_labels);
  return r;
}

nlohmann::json to_json(const GoodNetRow& r) {
  return {{"pruned", r.pruned},
          {"strip", r.strip},
          {"goodnet_accuracy", r.goodnet_accuracy},
          {"goodnet_asr", r.goodnet_asr},
          {"detection_rate", r.detection_rate},
          {"false_alarm_rate", r.false_alarm_rate},
          {"badnet_accuracy", r.badnet_accuracy},
          {"badnet_asr", r.badnet_asr},
          {"pruned_accuracy", r.pruned_accuracy},
          {"pruned_asr", r.pruned_asr},
          {"n_clean", r.n_clean},
          {"n_poisoned", r.n_poisoned}};
}

void check_goodnet_pair(const Model& b, const Model& p, const std::string& bpath,
                        const std::string& ppath) {
  auto mismatch = [&](const std::string& what, const std::string& expected,
                      const std::string& found) {
    throw ShapeMismatch(
        describe(ppath, what, expected + " (as in the BadNet " + bpath + ")", found));
  };
  if (b.input_shape() != p.input_shape()) {
    mismatch("input shape", shape_str(b.input_shape()), shape_str(p.input_shape()));
  }
  if (b.num_classes() != p.num_classes()) {
    mismatch("classes", std::to_string(b.num_classes()), std::to_string(p.num_classes()));
  }
  // The same graph: every op node of B in P, with its op type and output dims.
  auto ops_of = [](const Model& m) {
    std::vector<const Node*> out;
    for (size_t i = 0; i < m.size(); ++i) {
      if (m.node(i).kind == NodeKind::kOp) out.push_back(&m.node(i));
    }
    return out;
  };
  const auto bo = ops_of(b), po = ops_of(p);
  if (bo.size() != po.size()) {
    mismatch("architecture", std::to_string(bo.size()) + " ops", std::to_string(po.size()));
  }
  auto desc = [](const Node& n) {
    return n.name + " (" + n.op->type() + ") " + dims_str(n.info.dims);
  };
  for (const Node* x : bo) {
    const int j = p.find(x->name);
    if (j < 0) mismatch("layers", "a layer " + desc(*x), "none of that name");
    const Node& y = p.node(static_cast<size_t>(j));
    if (y.kind != NodeKind::kOp || std::string(x->op->type()) != y.op->type() ||
        x->info.dims != y.info.dims) {
      mismatch("layer " + x->name, desc(*x), y.kind == NodeKind::kOp ? desc(y) : y.name);
    }
  }
}

namespace {

constexpr const char* kManifestFormat = "bdguard-goodnet";

std::string relative_to(const std::string& file, const std::string& dir) {
  namespace fs = std::filesystem;
  return fs::absolute(file).lexically_normal().lexically_relative(fs::absolute(dir)).string();
}

}  // namespace

void write_goodnet_manifest(const GoodNetManifest& m, const std::string& path) {
  namespace fs = std::filesystem;
  std::string dir = fs::absolute(path).parent_path().string();
  nlohmann::json doc = {
      {"format", kManifestFormat},
      {"version", 1},
      {"badnet", {{"path", relative_to(m.badnet, dir)}, {"sha256", sha256_file(m.badnet)}}},
      {"pruned", {{"path", relative_to(m.pruned, dir)}, {"sha256", sha256_file(m.pruned)}}},
      {"arch", m.arch.empty() ? nullptr : nlohmann::json(m.arch)},
      {"arch_from", m.arch_from.empty() ? nullptr : nlohmann::json(relative_to(m.arch_from, dir))},
      {"input_scale", m.preprocess.scale},
      {"mean", m.preprocess.mean},
      {"std", m.preprocess.std},
      {"num_classes", m.num_classes},
      {"detected_label", m.num_classes}};
  if (m.strip) {
    doc["strip"] = {
        {"valid",
         {{"path", relative_to(m.strip_valid, dir)}, {"sha256", sha256_file(m.strip_valid)}}},
        {"overlays", m.strip_overlays},
        {"alpha", m.strip_alpha},
        {"frr", m.strip_frr},
        {"seed", m.strip_seed}};
  }
  write_file_atomic(path, doc.dump(2) + "\n");
}

GoodNetManifest read_goodnet_manifest(const std::string& path) {
  namespace fs = std::filesystem;
  const nlohmann::json doc = read_json_file(path, 1u << 20, "a GoodNet manifest");
  if (!doc.is_object() || doc.value("format", "") != kManifestFormat) {
    fail(path, "format", std::string("\"") + kManifestFormat + "\"", "another document");
  }
  const std::string dir = fs::absolute(path).parent_path().string();
  GoodNetManifest m;
  auto file_of = [&](const nlohmann::json& e, const std::string& key, std::string& file,
                     std::string& sha) {
    if (!e.is_object() || !e.contains("path") || !e["path"].is_string() || !e.contains("sha256") ||
        !e["sha256"].is_string()) {
      fail(path, key, "{\"path\", \"sha256\"}", e.dump().substr(0, 80));
    }
    file = (fs::path(dir) / e["path"].get<std::string>()).lexically_normal().string();
    sha = e["sha256"].get<std::string>();
    std::string now = sha256_file(file);
    if (now != sha) {
      fail(path, std::string(key) + " " + file, "SHA-256 " + sha, now + " (the file changed)");
    }
  };
  file_of(doc["badnet"], "badnet", m.badnet, m.badnet_sha256);
  file_of(doc["pruned"], "pruned", m.pruned, m.pruned_sha256);
  if (doc.contains("arch") && doc["arch"].is_string()) m.arch = doc["arch"].get<std::string>();
  if (doc.contains("arch_from") && doc["arch_from"].is_string()) {
    m.arch_from = (fs::path(dir) / doc["arch_from"].get<std::string>()).lexically_normal().string();
  }
  if (!doc.contains("input_scale") || !doc["input_scale"].is_number()) {
    fail(path, "input_scale", "a number", doc.value("input_scale", nlohmann::json()).dump());
  }
  m.preprocess.scale = doc["input_scale"].get<double>();
  for (const char* key : {"mean", "std"}) {
    if (!doc.contains(key) || doc[key].is_null()) continue;
    const auto& v = doc[key];
    if (!v.is_array() || v.size() > 64)
      fail(path, key, "a list of numbers", v.dump().substr(0, 60));
    std::vector<double>& out = std::string(key) == "mean" ? m.preprocess.mean : m.preprocess.std;
    for (const auto& x : v) {
      if (!x.is_number()) fail(path, key, "a list of numbers", v.dump().substr(0, 60));
      out.push_back(x.get<double>());
    }
  }
  if (!doc.contains("num_classes") || !doc["num_classes"].is_number_integer()) {
    fail(path, "num_classes", "an integer", "none");
  }
  m.num_classes = doc["num_classes"].get<int64_t>();
  if (doc.contains("strip") && doc["strip"].is_object()) {
    const auto& st = doc["strip"];
    m.strip = true;
    file_of(st.value("valid", nlohmann::json()), "strip valid", m.strip_valid,
            m.strip_valid_sha256);
    try {
      m.strip_overlays = st.at("overlays").get<int>();
      m.strip_alpha = st.at("alpha").get<double>();
      m.strip_frr = st.at("frr").get<double>();
      m.strip_seed = st.at("seed").get<uint64_t>();
    } catch (const nlohmann::json::exception& e) {
      fail(path, "strip", "overlays, alpha, frr and seed", e.what());
    }
  }
  return m;
}

}  // namespace bdguard
