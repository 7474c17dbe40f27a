// Helpers of the campaign tests (tests/cli/campaign_test.cpp, tests/slurm/): the zoo
// that tests/cli/make_campaign_zoo.sh trains once per build, small Neural Cleanse
// settings, and reading the campaign's files.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace bdguard::test {

inline std::string zoo_dir() { return BDGUARD_CAMPAIGN_ZOO; }
inline std::string hostile_corpus() { return BDGUARD_HOSTILE_CORPUS; }

#define BDGUARD_REQUIRE_ZOO()                                                                \
  do {                                                                                       \
    if (!std::filesystem::exists(::bdguard::test::zoo_dir() + "/models/bd_a.h5"))            \
      GTEST_SKIP() << ::bdguard::test::zoo_dir() << " has no zoo (Fashion-MNIST is absent)"; \
  } while (0)

// Neural Cleanse small enough for tests (~5 s a model on one thread): every one of the
// 10 labels, 4 steps of 2 mini-batches, success measured on 100 images.
constexpr const char* kSmallNc =
    " --nc-steps 4 --nc-batches-per-step 2 --nc-eval-images 100 --threads 1";

// `campaign init` over `models` (a folder or a list) with the zoo's clean data.
inline CliResult init_campaign(const std::string& dir, const std::string& models,
                               const std::string& extra = "") {
  return run_cli("campaign init --out " + dir + " --models " + models + " --clean " + zoo_dir() +
                 "/data/valid.h5" + kSmallNc + extra);
}

inline nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_text(path));
}

// results.csv without its `seconds` column (wall times differ from run to run).
inline std::string csv_without_seconds(const std::string& path) {
  std::istringstream in(read_text(path));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::string cell;
    std::istringstream cells(line);
    while (std::getline(cells, cell, ',')) f.push_back(cell);
    if (line.back() == ',') f.push_back("");
    for (size_t i = 0; i < f.size(); ++i) {
      if (i != 5) out += f[i] + (i + 1 < f.size() ? "," : "");
    }
    out += "\n";
  }
  return out;
}

}  // namespace bdguard::test
