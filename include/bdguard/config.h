// Configuration files: a flat table of settings, in TOML or JSON.
//
//   model = "bd_net.h5"            {"model": "bd_net.h5",
//   valid = "valid.h5"              "valid": "valid.h5",
//   drops = [2, 4, 10]              "drops": [2, 4, 10]}
//
// Values are strings, numbers, booleans or arrays of those; nested tables are refused.
// The format is JSON when the file name ends in .json or its first non-blank character
// is '{', TOML otherwise. The file is untrusted: its size is limited and every error
// names the file, the line where known, and what was expected.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bdguard {

struct ConfigEntry {
  std::string key;
  std::vector<std::string> values;  // one per array element; scalars give one
  bool is_array = false;
};

constexpr size_t kMaxConfigBytes = 1 << 20;

// Entries in file order (TOML) or key order (JSON). `origin` names the file in errors.
std::vector<ConfigEntry> parse_config(const std::string& text, const std::string& origin);
// The file at `path`, which must be a regular file (a FIFO or a device is refused
// without being opened).
std::vector<ConfigEntry> read_config_file(const std::string& path);

// A JSON document bdguard wrote (a GoodNet manifest, detect.json), read as untrusted
// input: a regular file of at most `max_bytes`, nested at most 64 deep. Errors name
// the file and `what` ("a GoodNet manifest").
nlohmann::json read_json_file(const std::string& path, size_t max_bytes, const std::string& what);
// read_json_file's parse of the text of `path` (nested at most 64 deep; errors name
// `path` and `what`), for text that is already in memory.
nlohmann::json parse_json_text(const std::string& text, const std::string& path,
                               const std::string& what);

}  // namespace bdguard
