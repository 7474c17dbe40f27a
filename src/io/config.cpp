#include "bdguard/config.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard {
namespace {

std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool looks_like_json(const std::string& text, const std::string& origin) {
  if (ends_with(origin, ".json")) return true;
  if (ends_with(origin, ".toml")) return false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{';
  }
  return false;
}

// One JSON scalar as a setting's text.
std::string json_scalar(const nlohmann::json& v, const std::string& origin,
                        const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number()) return number_text(v.get<double>());
  fail(origin, "setting '" + key + "'", "a string, number, boolean or array of those",
       std::string(v.type_name()));
}

std::vector<ConfigEntry> parse_json(const std::string& text, const std::string& origin) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(origin, "", "a JSON object of settings", e.what());
  }
  if (!doc.is_object()) fail(origin, "", "a JSON object of settings", std::string(doc.type_name()));
  std::vector<ConfigEntry> out;
  for (const auto& [key, value] : doc.items()) {
    ConfigEntry e{key, {}, value.is_array()};
    if (value.is_array()) {
      for (const auto& v : value) e.values.push_back(json_scalar(v, origin, key));
    } else {
      e.values.push_back(json_scalar(value, origin, key));
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string toml_scalar(const toml::node& n, const std::string& origin, const std::string& key) {
  if (auto s = n.value_exact<std::string>()) return *s;
  if (auto b = n.value_exact<bool>()) return *b ? "true" : "false";
  if (auto i = n.value_exact<int64_t>()) return std::to_string(*i);
  if (auto d = n.value_exact<double>()) return number_text(*d);
  fail(origin, "setting '" + key + "' (line " + std::to_string(n.source().begin.line) + ")",
       "a string, number, boolean or array of those",
       n.is_table() ? "a table (sections are not supported)" : "another TOML type");
}

std::vector<ConfigEntry> parse_toml(const std::string& text, const std::string& origin) {
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    fail(origin, "line " + std::to_string(e.source().begin.line), "valid TOML",
         std::string(e.description()));
  }
  std::vector<ConfigEntry> out;
  for (const auto& [k, node] : table) {
    std::string key(k.str());
    ConfigEntry e{key, {}, node.is_array()};
    if (const toml::array* arr = node.as_array()) {
      for (const auto& v : *arr) e.values.push_back(toml_scalar(v, origin, key));
    } else {
      e.values.push_back(toml_scalar(node, origin, key));
    }
    out.push_back(std::move(e));
  }
  // toml++ keeps keys sorted; report them in the order of the file.
  std::stable_sort(out.begin(), out.end(), [&](const ConfigEntry& a, const ConfigEntry& b) {
    return table.get(a.key)->source().begin.line < table.get(b.key)->source().begin.line;
  });
  return out;
}

}  // namespace

std::vector<ConfigEntry> parse_config(const std::string& text, const std::string& origin) {
  if (text.size() > kMaxConfigBytes) {
    fail<LimitExceeded>(
        origin, "", "a configuration file of at most " + std::to_string(kMaxConfigBytes) + " bytes",
        std::to_string(text.size()) + " bytes");
  }
  return looks_like_json(text, origin) ? parse_json(text, origin) : parse_toml(text, origin);
}

std::vector<ConfigEntry> read_config_file(const std::string& path) {
  require_regular_file(path);  // opening a FIFO would block; /dev/zero never ends
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable configuration file", "cannot open it");
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) break;
  }
  return parse_config(text, path);
}

nlohmann::json read_json_file(const std::string& path, size_t max_bytes, const std::string& what) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable file (" + what + ")", std::strerror(errno));
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      fail<LimitExceeded>(path, "", what + " of at most " + std::to_string(max_bytes) + " bytes",
                          "a larger file");
    }
  }
  return parse_json_text(text, path, what);
}

nlohmann::json parse_json_text(const std::string& text, const std::string& path,
                               const std::string& what) {
  auto depth_guard = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= 64) {
      fail<LimitExceeded>(path, "", "JSON nested at most 64 deep", "deeper nesting");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, depth_guard);
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", "JSON (" + what + ")", e.what());
  }
}

}  // namespace bdguard
