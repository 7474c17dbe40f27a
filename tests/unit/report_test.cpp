#include "bdguard/report.h"

#include <gtest/gtest.h>
#include <stb/stb_image.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/fileio.h"
#include "bdguard/sweep_files.h"
#include "report_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using test::read_text;
using test::small_report;
using test::write_sweep_csv;

TEST(Report, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

TEST(Report, ConclusionSaysPruningFailedWhenAsrStaysHigh) {
  // At X=10 (step 3): validation accuracy 88, test ASR 79.
  std::string c = conclusion(small_report());
  EXPECT_NE(c.find("At a 10-point accuracy loss (3 of the 4 channels of `conv_3` pruned"),
            std::string::npos)
      << c;
  EXPECT_NE(c.find("the attack still succeeds 79.0 % of the time on test data: pruning alone "
                   "did not remove this backdoor."),
            std::string::npos)
      << c;
  // Validation ASR first falls below 5 % at step 4, accuracy 10.
  EXPECT_NE(c.find("falls below 5.0 % only after 4 channels are pruned, when clean accuracy is "
                   "down to 10.0 %"),
            std::string::npos)
      << c;
}

TEST(Report, ConclusionSaysPruningWorkedWhenAsrCollapses) {
  RunReport r = small_report();
  r.sweep.steps[3].test_asr = 1.5;  // X=10 is step 3
  std::string c = conclusion(r);
  EXPECT_NE(c.find("succeeds only 1.5 % of the time on test data: pruning removed this backdoor, "
                   "at a cost of 10.0 points"),
            std::string::npos)
      << c;
}

TEST(Report, ConclusionUsesValidationWithoutTestFiles) {
  RunReport r = small_report(/*with_test=*/false);
  r.sweep.steps[3].valid_asr = 30;
  std::string c = conclusion(r);
  EXPECT_NE(c.find("succeeds 30.0 % of the time on validation data: pruning weakened this "
                   "backdoor but did not remove it."),
            std::string::npos)
      << c;
}

TEST(Report, ConclusionMentionsTheGoodNet) {
  RunReport r = small_report();
  GoodNetRow g;
  g.detection_rate = 21;
  g.false_alarm_rate = 3;
  g.goodnet_accuracy = 85;
  g.goodnet_asr = 77;
  r.saved[2].goodnet = g;
  std::string c = conclusion(r);
  EXPECT_NE(c.find("flags 21.0 % of the poisoned test inputs as backdoored, with 3.0 % false "
                   "alarms"),
            std::string::npos)
      << c;
}

TEST(Report, PlotScriptKeepsOutsideTextInsideItsString) {
  RunReport r = small_report();
  r.model_name = "evil'\nsystem('touch pwned')\n#";
  std::string gp = plot_script(r, {});
  // The quote is doubled and the newlines are blanked: the title stays one command.
  EXPECT_NE(gp.find("of evil'' system(''touch pwned'') #: validation"), std::string::npos);
  EXPECT_EQ(gp.find("\nsystem("), std::string::npos);
}

TEST(Report, MarkdownHasTheSectionsAndEscapesTableCells) {
  RunReport r = small_report();
  r.settings.push_back({"note", "a|b"});
  std::string md = render_markdown(r, {});
  for (const char* section :
       {"## Settings", "## Inputs", "## Baseline: the BadNet", "## Pruning curves",
        "## Saved models and their GoodNets", "## Timings", "## Conclusion"}) {
    EXPECT_NE(md.find(section), std::string::npos) << section;
  }
  EXPECT_NE(md.find("`a\\|b`"), std::string::npos);
  // Saved model X=10: drop asked 10, step 3 (75.0 %), drop 10.00, accuracy 88.00.
  EXPECT_NE(
      md.find("| `model_X=10.h5` | 10 | 3 (75.0 %) | 10.00 | 88.00 | 80.00 | 87.00 | 79.00 |"),
      std::string::npos)
      << md;
  // Timings total 0.5 + 2.25.
  EXPECT_NE(md.find("| total | 2.75 |"), std::string::npos);
}

TEST(Report, WritesEveryFileAndInlinesThePlots) {
  std::string dir = test::temp_dir();
  RunReport r = small_report();
  write_sweep_csv(r, dir);
  PlotResult plots = write_report(r, dir, {});
  for (const char* f :
       {"activations.csv", "report.md", "report.html", "summary.json", "plots/plots.gp"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  }
  EXPECT_EQ(read_text(dir + "/activations.csv"),
            "rank,channel,mean_activation\n0,1,0.1\n1,3,0.3\n2,0,0.5\n3,2,2\n");
  // gnuplot-nox is part of the setup; 3 plots x (PNG, SVG).
  ASSERT_EQ(plots.files.size(), 6u) << (plots.warnings.empty() ? "" : plots.warnings[0]);
  EXPECT_TRUE(plots.warnings.empty()) << plots.warnings[0];
  for (const auto& p : plots.files) {
    if (p.format != "png") continue;
    int w = 0, h = 0, n = 0;
    ASSERT_TRUE(stbi_info((dir + "/" + p.file).c_str(), &w, &h, &n)) << p.file;
    EXPECT_EQ(w, 960);
    EXPECT_EQ(h, 600);
  }
  std::string html = read_text(dir + "/report.html");
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  size_t images = 0;
  for (size_t at = html.find("src=\"data:image/png;base64,"); at != std::string::npos;
       at = html.find("src=\"data:image/png;base64,", at + 1)) {
    ++images;
  }
  EXPECT_EQ(images, 3u);
  auto summary = nlohmann::json::parse(read_text(dir + "/summary.json"));
  EXPECT_EQ(summary["plots"].size(), 6u);
  EXPECT_EQ(summary["saved_models"][2]["step"], 3);
  EXPECT_DOUBLE_EQ(summary["sweep"]["steps"][3]["valid_accuracy"].get<double>(), 88.0);
  EXPECT_EQ(summary["conclusion"], conclusion(r));
}

TEST(Report, WithoutGnuplotWarnsAndWritesEverythingElse) {
  std::string dir = test::temp_dir();
  RunReport r = small_report();
  write_sweep_csv(r, dir);
  ReportOptions o;
  o.gnuplot = "bdguard-test-no-such-gnuplot";
  PlotResult plots = write_report(r, dir, o);
  EXPECT_TRUE(plots.files.empty());
  ASSERT_EQ(plots.warnings.size(), 1u);
  EXPECT_NE(plots.warnings[0].find("not found: plots not drawn"), std::string::npos)
      << plots.warnings[0];
  for (const char* f : {"report.md", "report.html", "summary.json"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  }
  EXPECT_FALSE(fs::exists(dir + "/plots/sweep_valid.png"));
  auto summary = nlohmann::json::parse(read_text(dir + "/summary.json"));
  EXPECT_EQ(summary["warnings"].size(), 1u);
  EXPECT_NE(read_text(dir + "/report.md").find("not drawn"), std::string::npos);
}

}  // namespace
}  // namespace bdguard
