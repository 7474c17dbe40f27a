// Every plot kind, drawn from known data: each data point must lie inside the axis
// ranges gnuplot drew (it prints them after each plot), in the PNG and the SVG, and the
// PNG must show the series in its colour. The run report's plots are drawn in one
// script, as `bdguard run` and `demo` draw them: a range left over from the plot before
// would show here.
#include <gtest/gtest.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bdguard/campaign.h"
#include "bdguard/report.h"
#include "bdguard/scan_files.h"
#include "report_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

struct Rgb {
  int r, g, b;
};

// Pixels of the PNG in colour `c`, drawn solid or filled half transparent over the white
// background: t * c + (1 - t) * white for some t >= 0.25, within 24 in every channel.
int64_t pixels_of(const std::string& png, Rgb c) {
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &n, 3);
  if (!px) return -1;
  const int want[3] = {c.r, c.g, c.b};
  // The channel furthest from white fixes t.
  int k = 0;
  for (int j = 1; j < 3; ++j) {
    if (want[j] < want[k]) k = j;
  }
  int64_t count = 0;
  for (int64_t i = 0; i < int64_t{w} * h; ++i) {
    const unsigned char* p = px + 3 * i;
    const double t = (255.0 - p[k]) / (255.0 - want[k]);
    if (t < 0.25 || t > 1.1) continue;
    bool match = true;
    for (int j = 0; j < 3; ++j) {
      match &= std::abs(p[j] - (t * want[j] + (1 - t) * 255)) <= 24;
    }
    count += match;
  }
  stbi_image_free(px);
  return count;
}

constexpr Rgb kBlue{0x1f, 0x77, 0xb4}, kRed{0xd6, 0x27, 0x28}, kGreen{0x2c, 0xa0, 0x2c};

// Checks the PNG and SVG of plot `name`: drawn, both axes covering [x_lo, x_hi] and
// [y_lo, y_hi], and at least 20 pixels of each colour in the PNG.
void expect_plot(const std::string& dir, const PlotResult& plots, const std::string& name,
                 double x_lo, double x_hi, double y_lo, double y_hi,
                 const std::vector<Rgb>& colours) {
  for (const std::string format : {"png", "svg"}) {
    SCOPED_TRACE(name + "." + format);
    const auto it = std::find_if(plots.files.begin(), plots.files.end(), [&](const PlotFile& f) {
      return f.name == name && f.format == format;
    });
    ASSERT_NE(it, plots.files.end()) << "not drawn; warnings: " << plots.warnings.size();
    ASSERT_TRUE(std::isfinite(it->x_min) && std::isfinite(it->y_min)) << "no drawn range";
    EXPECT_LE(it->x_min, x_lo);
    EXPECT_GE(it->x_max, x_hi);
    EXPECT_LE(it->y_min, y_lo);
    EXPECT_GE(it->y_max, y_hi);
    if (format == "png") {
      for (const Rgb& c : colours) {
        EXPECT_GE(pixels_of(dir + "/" + it->file, c), 20)
            << "colour " << c.r << "," << c.g << "," << c.b;
      }
    } else {
      const std::string svg = test::read_text(dir + "/" + it->file);
      EXPECT_NE(svg.find("<path"), std::string::npos);
    }
  }
}

// The run report of report_util.h with Neural Cleanse on 10 labels, STRIP and a
// comparison at 82 to 89 % accuracy: every plot `bdguard demo` draws, in its order.
RunReport full_report() {
  RunReport r = test::small_report();
  DetectionReport d;
  for (int64_t label = 0; label < 10; ++label) {
    LabelTrigger t;
    t.label = label;
    t.mask_l1 = label == 3 ? 4.0 : 20.0 + 2.0 * static_cast<double>(label);
    t.refined = true;
    d.nc.labels.push_back(t);
  }
  d.nc.median = 29;
  d.nc.mad = 5;
  d.nc.flagged = {3};
  d.nc.backdoored = true;
  StripReport s;
  s.threshold = 0.4;
  s.valid_frr = 5;
  for (int i = 0; i < 200; ++i) s.test_scores.push_back(0.3 + 1.9 * (i % 50) / 49.0);
  for (int i = 0; i < 100; ++i) s.poisoned_scores.push_back(0.01 + 0.5 * (i % 25) / 24.0);
  d.strip = s;
  r.detection = d;
  CompareResult c;
  c.baseline_accuracy = 89.5;
  c.baseline_asr = 99.9;
  const double acc[] = {82.0, 86.5, 88.9}, asr[] = {2.5, 40.0, 96.0};
  for (int i = 0; i < 3; ++i) {
    CompareRow row;
    row.method = "method" + std::to_string(i);
    row.ok = true;
    row.clean_accuracy = acc[i];
    row.asr = asr[i];
    c.rows.push_back(row);
  }
  r.comparison = c;
  return r;
}

class RunPlots : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir());
    const RunReport r = full_report();
    test::write_sweep_csv(r, *dir_);
    write_activations_csv(r.sweep, *dir_ + "/" + kActivationsCsv);
    plots_ = new PlotResult(write_plots(r, *dir_, ReportOptions{}));
  }
  static void TearDownTestSuite() {
    delete plots_;
    delete dir_;
  }
  static std::string* dir_;
  static PlotResult* plots_;
};
std::string* RunPlots::dir_ = nullptr;
PlotResult* RunPlots::plots_ = nullptr;

TEST_F(RunPlots, SweepShowsEveryStep) {
  // Fractions 0..1; accuracy 98..10 and ASR 100..2 (report_util.h).
  expect_plot(*dir_, *plots_, "sweep_valid", 0, 1, 2, 100, {kBlue, kRed});
}

TEST_F(RunPlots, ActivationsShowEveryChannel) {
  // Ranks 0..3, mean activations 0.1..2.0.
  expect_plot(*dir_, *plots_, "activations", 0, 3, 0, 2.0, {kGreen});
}

TEST_F(RunPlots, MaskNormsShowEveryLabel) {
  // Labels 0..9 (boxes 0.8 wide), norms 4..38.
  expect_plot(*dir_, *plots_, "mask_norms", -0.4, 9.4, 0, 38, {kBlue, kRed});
}

TEST_F(RunPlots, StripHistogramShowsBothDistributions) {
  // Clean scores 0.3..2.2, poisoned 0.01..0.51, the threshold 0.4.
  expect_plot(*dir_, *plots_, "strip_entropy", 0.01, 2.2, 0, 0.1, {kBlue, kRed});
}

TEST_F(RunPlots, CompareShowsEveryDefenseAndTheBadNet) {
  // Accuracies 82..89.5, ASRs 2.5..99.9: drawn after STRIP, whose x range ends at 2.4.
  expect_plot(*dir_, *plots_, "compare", 82, 89.5, 2.5, 99.9, {kBlue, kRed});
}

TEST(MergePlots, ScoresAndRocShowEveryModel) {
  Manifest m;
  m.dir = test::temp_dir();
  m.settings = nlohmann::json::object();
  MergeResult r;
  const double p[] = {0.05, 0.2, 0.7, 0.95, 0.6, 0.3};
  for (int i = 0; i < 6; ++i) {
    MergeRow row;
    row.model.index = i;
    row.model.name = "m" + std::to_string(i);
    GroundTruth truth;
    truth.backdoored = i >= 3;
    row.model.truth = truth;
    row.status = "ok";
    row.trojan_probability = p[i];
    r.rows.push_back(row);
  }
  r.roc = {{1.0, 0, 0},       {0.95, 0, 1.0 / 3}, {0.7, 1.0 / 3, 1.0 / 3}, {0.6, 1.0 / 3, 2.0 / 3},
           {0.3, 1.0 / 3, 1}, {0.05, 1, 1}};
  const PlotResult plots = write_merge(m, r, ReportOptions{});
  // Probabilities 0.05..0.95 binned by 0.05, at most 2 models a bin.
  expect_plot(m.dir, plots, "scores", 0.05, 0.95, 0, 1, {kRed, kBlue});
  expect_plot(m.dir, plots, "roc", 0, 1, 0, 1, {kRed});
}

// scan's plots from a hand-made result: MM-BD's margins 5..14 with label 3 at 30 (a
// Gamma null fitted to the others), K-Arm's three arms (sizes 1.2..20 %, the bound 3.4 %)
// and Neural Cleanse's norms.
class ScanPlots : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir());
    ScanResult r;
    MmBdResult mm;
    for (int c = 0; c < 10; ++c) mm.margins.push_back(c == 3 ? 30.0 : 5.0 + c);
    mm.target = 3;
    std::vector<double> null;
    for (int c = 0; c < 10; ++c) {
      if (c != 3) null.push_back(mm.margins[static_cast<size_t>(c)]);
    }
    mm.null_fit = fit_gamma(null);
    mm.p_value = max_p_value(gamma_sf(mm.null_fit, 30), 10);
    r.mm_bd = mm;
    KArmResult k;
    const double sizes[] = {0.2, 0.012, 0.08};
    for (int i = 0; i < 3; ++i) {
      KArmArm a;
      a.target = i == 2 ? 3 : 2 * i + 1;
      a.source = i == 2 ? 1 : -1;
      a.size = sizes[i];
      a.reached = true;
      k.arms.push_back(a);
    }
    k.target = 3;
    k.bound = 0.034;
    r.k_arm = k;
    r.nc = full_report().detection->nc;
    plots_ = new PlotResult(write_scan_plots(r, *dir_, ReportOptions{}));
  }
  static void TearDownTestSuite() {
    delete plots_;
    delete dir_;
  }
  static std::string* dir_;
  static PlotResult* plots_;
};
std::string* ScanPlots::dir_ = nullptr;
PlotResult* ScanPlots::plots_ = nullptr;

TEST_F(ScanPlots, MmBdMarginsShowEveryClassAndTheTarget) {
  expect_plot(*dir_, *plots_, "mm_bd_margins", -0.4, 9.4, 0, 30, {kBlue, kRed});
}

TEST_F(ScanPlots, MmBdNullShowsTheFitAndTheLargestMargin) {
  expect_plot(*dir_, *plots_, "mm_bd_null", 5, 30, 0, 0.05, {kBlue, kRed});
}

TEST_F(ScanPlots, KArmShowsEveryArmAndTheBound) {
  // Arms 0..2 (boxes 0.8 wide), sizes 1.2..20 % of the image.
  expect_plot(*dir_, *plots_, "k_arm_arms", -0.4, 2.4, 0, 20, {kBlue, kRed});
}

TEST_F(ScanPlots, NeuralCleanseNormsShowEveryLabel) {
  expect_plot(*dir_, *plots_, "nc_mask_norms", -0.4, 9.4, 0, 38, {kBlue, kRed});
}

TEST(ScanPlotMath, MarginAtPIsWhereThePValueFalls) {
  const GammaFit g = fit_gamma({5, 6, 7, 8, 9, 10, 11, 12, 13});
  const double x = mm_bd_margin_at(g, 10, 0.05);
  EXPECT_NEAR(max_p_value(gamma_sf(g, x), 10), 0.05, 1e-9);
  EXPECT_GT(x, 13);
}

}  // namespace
}  // namespace bdguard
