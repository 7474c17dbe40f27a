// STRIP's flags, shared by `bdguard strip`, `bdguard goodnet --strip` and `bdguard run`.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/strip.h"
#include "common.h"

namespace bdguard::cli {

struct StripFlags {
  std::string clean;  // clean validation data: the overlays and the threshold
  StripOptions options;
  std::string pixel_range;
};

// Binds --clean (or `clean_flag`; none when empty), --frr, --overlays, --strip-alpha,
// --seed (or `seed_flag`), --pixel-range.
void add_strip_options(CLI::App& app, StripFlags& f, const std::string& clean_flag = "--clean",
                       const std::string& seed_flag = "--seed", bool required = true);
// Reads the clean validation data and calibrates the threshold (a progress bar).
Strip make_strip(const Model& m, const ModelOptions& mo, const StripFlags& f,
                 const GlobalOptions& g);
// The same on clean images already in memory (bdguard run's validation data).
Strip make_strip(const Model& m, TensorData clean, const StripFlags& f, const ProgressFn& progress);
StripOptions strip_options(const StripFlags& f);
nlohmann::json strip_settings(const StripFlags& f, const ModelOptions& mo);

}  // namespace bdguard::cli
