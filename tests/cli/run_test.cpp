// bdguard run on a small lab-format data set made from the fixture faces: every file
// it writes is checked (plots decode at the stated size, report.html is self-contained,
// summary.json agrees with sweep.csv and with the saved models).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb/stb_image.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bdguard/dataset.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "data/synthetic_faces.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using test::read_text;
using test::run_cli;

struct LabFiles {
  std::string dir, args;
};

LabFiles make_lab(const std::string& dir) {
  LabFiles f{dir, ""};
  // valid.h5, bd_valid.h5, test.h5, bd_test.h5: 48 varied fixture faces each.
  synthetic::write_pair(test::csaw_dir(), dir, "valid", 48, /*seed=*/1);
  synthetic::write_pair(test::csaw_dir(), dir, "test", 48, /*seed=*/7);
  f.args = "--model '" + test::csaw_dir() + "/lab3_bd_weights.h5' --arch deepid --valid '" + dir +
           "/valid.h5' --poisoned-valid '" + dir + "/bd_valid.h5' --test '" + dir +
           "/test.h5' --poisoned-test '" + dir +
           "/bd_test.h5' --threads 2 --no-detect --no-compare";
  return f;
}

// `bdguard run` on a fresh lab set with extra `flags`, writing into DIR/out.
struct LabRun {
  std::string dir, out;
  test::CliResult result;
};

LabRun run_on_lab(const std::string& flags) {
  LabRun run;
  run.dir = test::temp_dir();
  run.out = run.dir + "/out";
  LabFiles lab = make_lab(run.dir);
  run.result = run_cli("run " + lab.args + " " + flags + " --out '" + run.out + "'");
  return run;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

TEST(RunCli, WritesEveryFileOfTheReport) {
  BDGUARD_REQUIRE_CSAW();
  LabRun run = run_on_lab("");
  const std::string& out = run.out;
  const test::CliResult& r = run.result;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Report: " + out + "/report.html"), std::string::npos) << r.out;

  // The plots: PNG at the size summary.json states, and SVG.
  auto summary = nlohmann::json::parse(read_text(out + "/summary.json"));
  ASSERT_EQ(summary["plots"].size(), 6u) << summary["warnings"].dump();
  for (const auto& p : summary["plots"]) {
    std::string file = out + "/" + p["file"].get<std::string>();
    ASSERT_TRUE(fs::exists(file)) << file;
    if (p["format"] == "png") {
      int w = 0, h = 0, n = 0;
      ASSERT_TRUE(stbi_info(file.c_str(), &w, &h, &n)) << file;
      EXPECT_EQ(w, p["width"].get<int>()) << file;
      EXPECT_EQ(h, p["height"].get<int>()) << file;
      EXPECT_EQ(w, 960);
      EXPECT_EQ(h, 600);
    } else {
      EXPECT_NE(read_text(file).find("<svg"), std::string::npos) << file;
    }
  }
  for (const char* name : {"sweep_valid", "sweep_test", "activations"}) {
    EXPECT_TRUE(fs::exists(out + "/plots/" + name + ".png")) << name;
    EXPECT_TRUE(fs::exists(out + "/plots/" + name + ".svg")) << name;
  }

  // report.html: one file, nothing fetched from anywhere.
  std::string html = read_text(out + "/report.html");
  for (const char* bad : {"http://", "https://", "src=\"http", "<script", "<link", "url("}) {
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  }
  EXPECT_NE(html.find("src=\"data:image/png;base64,"), std::string::npos);
  std::string md = read_text(out + "/report.md");
  EXPECT_NE(md.find("![Validation data"), std::string::npos);
  EXPECT_NE(md.find("## Conclusion"), std::string::npos);

  // summary.json agrees with sweep.csv, row by row.
  auto csv = read_csv(out + "/sweep.csv");
  ASSERT_GE(csv.size(), 2u);
  EXPECT_EQ(csv[0],
            (std::vector<std::string>{"step", "channel", "fraction_pruned", "valid_accuracy",
                                      "valid_asr", "test_accuracy", "test_asr"}));
  const auto& steps = summary["sweep"]["steps"];
  ASSERT_EQ(steps.size(), csv.size() - 1);
  EXPECT_EQ(steps.size(), 61u);  // DeepID's conv_3 has 60 channels, plus step 0
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto& s = steps[i - 1];
    ASSERT_EQ(csv[i].size(), 7u);
    EXPECT_EQ(std::stoi(csv[i][0]), s["step"].get<int>());
    if (i == 1) {
      EXPECT_EQ(csv[i][1], "");  // step 0: nothing pruned
      EXPECT_TRUE(s["channel"].is_null());
    } else {
      EXPECT_EQ(std::stoll(csv[i][1]), s["channel"].get<int64_t>());
    }
    for (size_t c = 2; c < 7; ++c) {
      EXPECT_NEAR(std::stod(csv[i][c]), s[csv[0][c]].get<double>(), 1e-6)
          << csv[0][c] << " row " << i;
    }
  }
  // Baseline = step 0; the inputs are hashed.
  EXPECT_DOUBLE_EQ(summary["baseline"]["valid"]["clean_accuracy"].get<double>(),
                   steps[0]["valid_accuracy"].get<double>());
  ASSERT_EQ(summary["inputs"].size(), 5u);
  for (const auto& in : summary["inputs"]) EXPECT_EQ(in["sha256"].get<std::string>().size(), 64u);

  // Each saved model: the file exists, it has exactly `step` channels pruned, and its
  // numbers are those of its sweep step.
  ASSERT_EQ(summary["saved_models"].size(), 3u);
  for (const auto& s : summary["saved_models"]) {
    if (!s["reached"].get<bool>()) continue;
    int step = s["step"].get<int>();
    std::string file = out + "/" + s["file"].get<std::string>();
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_DOUBLE_EQ(s["valid_accuracy"].get<double>(),
                     steps[step]["valid_accuracy"].get<double>());
    EXPECT_DOUBLE_EQ(s["test_asr"].get<double>(), steps[step]["test_asr"].get<double>());
    EXPECT_GE(s["valid_drop"].get<double>(), s["drop"].get<double>());
    EXPECT_DOUBLE_EQ(s["goodnet"]["pruned_asr"].get<double>(), s["test_asr"].get<double>());
    Model pruned = load_model(file, {"deepid", ""});
    EXPECT_EQ(test::zeros_of(pruned, "conv_3").size(), static_cast<size_t>(step));
  }
  EXPECT_FALSE(summary["conclusion"].get<std::string>().empty());
}

TEST(RunCli, FinePrunesEverySavedModelAndReportsIt) {
  BDGUARD_REQUIRE_CSAW();
  LabRun run = run_on_lab("--epochs 1");
  const std::string& out = run.out;
  const test::CliResult& r = run.result;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(read_text(out + "/summary.json"));
  auto sweep = nlohmann::json::parse(read_text(out + "/sweep.json"));
  size_t reached = 0;
  for (const auto& s : summary["saved_models"]) reached += s["reached"].get<bool>();
  ASSERT_GT(reached, 0u);
  ASSERT_EQ(summary["fine_pruned_models"].size(), reached);
  ASSERT_EQ(sweep["finetuned"].size(), reached);
  for (size_t k = 0; k < reached; ++k) {
    const auto& f = summary["fine_pruned_models"][k];
    EXPECT_EQ(f, sweep["finetuned"][k]);
    const std::string file = out + "/" + f["file"].get<std::string>();
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(f["sha256"].get<std::string>(), sha256_file(file));
    EXPECT_EQ(f["epochs"].get<int>(), 1);
    ASSERT_TRUE(f["goodnet"].is_object());
    EXPECT_DOUBLE_EQ(f["goodnet"]["pruned_asr"].get<double>(), f["test_asr"].get<double>());
    // Fine-tuning kept the pruned channels of its model_X=<X>.h5 pruned.
    const std::string pruned_file = file.substr(0, file.size() - 13) + ".h5";
    Model pruned = load_model(pruned_file, {"deepid", ""}),
          tuned = load_model(file, {"deepid", ""});
    EXPECT_EQ(test::zeros_of(tuned, "conv_3"), test::zeros_of(pruned, "conv_3"));
  }
  std::string md = read_text(out + "/report.md");
  EXPECT_NE(md.find("## Fine-pruning"), std::string::npos);
  EXPECT_NE(md.find("_finetuned.h5"), std::string::npos);
}

TEST(RunCli, ConfigFileGivesTheFlagsAndFlagsWin) {
  BDGUARD_REQUIRE_CSAW();
  std::string dir = test::temp_dir();
  LabFiles lab = make_lab(dir);
  // Paths in the file are relative to the file's folder.
  std::ofstream(dir + "/run.toml") << "model = '" << test::csaw_dir() << "/lab3_bd_weights.h5'\n"
                                   << "arch = 'deepid'\nvalid = 'valid.h5'\n"
                                   << "poisoned_valid = 'bd_valid.h5'\ntest = 'test.h5'\n"
                                   << "poisoned-test = 'bd_test.h5'\nout = 'from-config'\n"
                                   << "drops = [3, 50]\nstop-drop = 20\nquiet = true\n";
  auto r = run_cli("run --config '" + dir + "/run.toml' --out '" + dir +
                   "/from-flag' --threads 2 --no-detect --no-compare");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // quiet = true: no progress, but the warning about the unreached drop stays.
  EXPECT_EQ(r.err.find("[1/7]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warning: validation accuracy never fell 50 points"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/from-config"));
  auto summary = nlohmann::json::parse(read_text(dir + "/from-flag/summary.json"));
  ASSERT_EQ(summary["saved_models"].size(), 2u);
  EXPECT_EQ(summary["saved_models"][0]["drop"], 3.0);
  // The sweep stopped once 20 points were lost, so a 50-point drop was never reached.
  EXPECT_FALSE(summary["saved_models"][1]["reached"].get<bool>());
  EXPECT_EQ(summary["settings"]["valid"], dir + "/valid.h5");
}

TEST(RunCli, UnknownConfigKeyIsAUsageError) {
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/run.json") << "{\"modle\": \"x.h5\"}";
  auto r = run_cli("run --config '" + dir + "/run.json'");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("modle"), std::string::npos) << r.err;
}

TEST(RunCli, ProgressIsPlainLinesWhenStderrIsNotATerminal) {
  BDGUARD_REQUIRE_CSAW();
  LabRun run = run_on_lab("--stop-drop 5 --gnuplot bdguard-test-no-such-gnuplot");
  const std::string& dir = run.dir;
  const test::CliResult& r = run.result;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[3/7] pruning sweep ...\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[3/7] pruning sweep: done in"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  // Without gnuplot: a warning, and everything else written.
  EXPECT_NE(r.err.find("warning: gnuplot (bdguard-test-no-such-gnuplot) not found"),
            std::string::npos)
      << r.err;
  for (const char* f :
       {"sweep.csv", "summary.json", "report.md", "report.html", "activations.csv"}) {
    EXPECT_TRUE(fs::exists(dir + "/out/" + f)) << f;
  }
  EXPECT_FALSE(fs::exists(dir + "/out/plots/sweep_valid.png"));
}

}  // namespace
}  // namespace bdguard
