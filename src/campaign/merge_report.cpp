// The merge's plots (gnuplot: the score distribution, the ROC curve) and report.html.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/fileio.h"
#include "report/document.h"
#include "report/gnuplot.h"

namespace bdguard {

namespace fs = std::filesystem;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The probabilities of the rows, one data block per kind of row (empty ones left out).
struct Series {
  std::string block, title, colour;
  std::vector<double> p;
};

std::vector<Series> score_series(const MergeResult& r) {
  std::vector<Series> s = {{"$backdoored", "backdoored (ground truth)", "#d62728", {}},
                           {"$clean", "clean (ground truth)", "#1f77b4", {}},
                           {"$unknown", "no ground truth", "#7f7f7f", {}},
                           {"$failed", "failed or missing (scored 0.5)", "#000000", {}}};
  for (const auto& row : r.rows) {
    const size_t k = row.status != "ok"            ? 3
                     : !row.model.truth            ? 2
                     : row.model.truth->backdoored ? 0
                                                   : 1;
    s[k].p.push_back(row.status == "ok" ? row.trojan_probability : kMissingProbability);
  }
  std::vector<Series> out;
  for (auto& x : s) {
    if (!x.p.empty()) out.push_back(std::move(x));
  }
  return out;
}

std::string preamble(const MergeResult& r) {
  std::ostringstream gp;
  for (const auto& s : score_series(r)) {
    gp << s.block << " << EOD\np\n";
    for (double p : s.p) gp << report::num(p) << '\n';
    gp << "EOD\n";
  }
  if (!r.roc.empty()) {
    gp << "$roc << EOD\nfpr,tpr\n";
    for (const auto& p : r.roc) gp << report::num(p.fpr) << ',' << report::num(p.tpr) << '\n';
    gp << "EOD\n";
  }
  return gp.str();
}

PlotSpec scores_plot(const MergeResult& r) {
  std::ostringstream gp;
  gp << "set title 'Trojan probability of each model (20 bins)'\n"
     << "set xlabel 'trojan probability'\nset ylabel 'models'\nset key below horizontal\n"
     << "set xrange [0:1]\nset yrange [0:*]\nset offsets 0, 0, graph 0.1, 0\nset grid ytics\n"
     << "set style fill transparent solid 0.5 border -1\nbw = 0.05\nset boxwidth bw * 0.9\n"
     << "bin(x) = x >= 1 ? 1 - bw / 2 : (floor(x / bw) + 0.5) * bw\n"
     << "set arrow from 0.5, graph 0 to 0.5, graph 1 nohead dt 2 lc rgb '#555555'\n"
     << "set label 'verdict threshold' at 0.51, graph 0.95 left\n";
  const auto series = score_series(r);
  for (size_t i = 0; i < series.size(); ++i) {
    gp << (i ? ", \\\n     " : "plot ") << series[i].block
       << " using (bin(column('p'))):(1) smooth frequency with boxes lc rgb '" << series[i].colour
       << "' title " << report::gp_string(series[i].title);
  }
  gp << "\n";
  return {"scores", "The trojan probability of each model", gp.str()};
}

PlotSpec roc_plot(const MergeResult& r) {
  std::ostringstream gp;
  const double auc = r.metrics.is_object() && r.metrics["roc_auc"].is_number()
                         ? r.metrics["roc_auc"].get<double>()
                         : std::nan("");
  gp << "set title 'ROC curve: every threshold on the trojan probability'\n"
     << "set xlabel 'false-positive rate (clean models flagged)'\n"
     << "set ylabel 'true-positive rate (backdoored models flagged)'\n"
     << "set size ratio -1\nset xrange [0:1]\nset yrange [0:1]\nset grid\nset key bottom right\n"
     << "plot $roc using (column('fpr')):(column('tpr')) with linespoints lw 2 pt 7 lc rgb "
        "'#d62728' title "
     << report::gp_string("ROC (AUC " + fmt("%.3f", auc) + ")")
     << ", \\\n     x with lines dt 2 lc rgb '#555555' title 'chance'\n";
  return {"roc", "ROC curve of the trojan probability against the ground truth", gp.str()};
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const PlotFile* find_plot(const PlotResult& plots, const std::string& name) {
  for (const auto& f : plots.files) {
    if (f.name == name && f.format == "svg") return &f;
  }
  return nullptr;
}

std::string metric(const nlohmann::json& j, const char* f = "%.4f") {
  return j.is_number() ? fmt(f, j.get<double>()) : "-";
}

std::string truth_text(const CampaignModel& m) {
  if (!m.truth) return "-";
  if (!m.truth->backdoored) return "clean";
  return m.truth->target ? "backdoored (target " + std::to_string(*m.truth->target) + ")"
                         : "backdoored";
}

void add_metrics(report::Document& d, const nlohmann::json& mt) {
  d.heading(2, "Against the ground truth");
  const auto& c = mt["confusion"];
  const auto& t = mt["target"];
  d.table(
      {"metric", "value"},
      {{"models with ground truth (backdoored / clean)",
        std::to_string(mt["n"].get<int64_t>()) + " (" +
            std::to_string(mt["n_backdoored"].get<int64_t>()) + " / " +
            std::to_string(mt["n_clean"].get<int64_t>()) + ")"},
       {"ROC AUC", metric(mt["roc_auc"])},
       {"cross-entropy", metric(mt["cross_entropy"])},
       {"accuracy at the default verdict", metric(mt["accuracy"])},
       {"TP / FP / TN / FN / no verdict", c["tp"].dump() + " / " + c["fp"].dump() + " / " +
                                              c["tn"].dump() + " / " + c["fn"].dump() + " / " +
                                              c["no_verdict"].dump()},
       {"target label right (of backdoored models with a known target)",
        t["correct"].dump() + " of " + t["n"].dump() + " (" + metric(t["accuracy"], "%.3f") + ")"}},
      {false, true});
  d.paragraph(
      "ROC AUC: the chance that a backdoored model gets a higher trojan probability than a "
      "clean one (ties count one half). Cross-entropy: TrojAI's, the mean of -(y log p + (1 - y) "
      "log(1 - p)) with p clipped to [1e-12, 1 - 1e-12]. Failed and missing tasks count with "
      "p = 0.5 and no verdict.");
}

// How the trojan probability was made: scan's own, or Neural Cleanse's fixed logistic.
std::string probability_text(const nlohmann::json& settings) {
  if (settings.value("methods", "detect") == "scan") {
    const std::string calib = scan_calibration_file(settings);
    return "The trojan probability is `bdguard scan`'s: " +
           (calib.empty() ? std::string("its uncalibrated rule (the smallest p-value of the "
                                        "detectors, Bonferroni-corrected)")
                          : "the logistic regression of the calibration file `" + calib + "`") +
           "; the verdict \"backdoored\" is p >= " + fmt("%g", settings.value("threshold", 0.5)) +
           ".";
  }
  return "The trojan probability is 1 / (1 + exp(-" + fmt("%g", kProbabilitySlope) + " (s - " +
         fmt("%g", kProbabilityCentre) +
         "))) of the detection score s (Neural Cleanse: the largest anomaly index of a label "
         "whose mask norm is below the median), so p > 0.5 is the verdict \"backdoored\".";
}

report::Document build(const Manifest& m, const MergeResult& r, const PlotResult& plots) {
  report::Document d;
  d.heading(1, "bdguard campaign: `" + fs::path(m.dir).filename().string() + "`");
  const std::string methods = m.settings.value("methods", "detect");
  d.paragraph(std::to_string(r.rows.size()) + " models, method `" + methods +
              "`: " + std::to_string(r.n_ok) + " ok, " + std::to_string(r.n_failed) + " failed, " +
              std::to_string(r.n_missing) + " missing. " + probability_text(m.settings) +
              " A failed or missing task is scored 0.5.");
  for (const auto& w : r.warnings) d.note("Warning: " + w);
  if (r.metrics.is_object()) add_metrics(d, r.metrics);
  auto image = [&](const std::string& name, const std::string& alt) {
    if (const PlotFile* p = find_plot(plots, name)) {
      d.image(alt, p->file);
    } else {
      d.note(alt + ": not drawn (gnuplot missing or failed; see the warnings).");
    }
  };
  d.heading(2, "Score distribution");
  image("scores", "The trojan probability of each model");
  if (!r.roc.empty()) {
    d.heading(2, "ROC curve");
    image("roc", "ROC curve of the trojan probability against the ground truth");
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : r.rows) {
    if (row.status == "ok") continue;
    rows.push_back({std::to_string(row.model.index), row.model.name, row.status, row.error});
  }
  if (!rows.empty()) {
    d.heading(2, "Failed and missing tasks");
    d.table({"index", "model", "status", "error"}, rows, {true, false, false, false});
  }
  rows.clear();
  for (const auto& row : r.rows) {
    const bool ok = row.status == "ok";
    rows.push_back({std::to_string(row.model.index), row.model.name,
                    fmt("%.4f", ok ? row.trojan_probability : kMissingProbability),
                    ok ? (std::isfinite(row.score) ? fmt("%.3f", row.score) : "inf") : "-",
                    row.backdoored ? (*row.backdoored ? "backdoored" : "clean") : "-",
                    row.target ? std::to_string(*row.target) : "-", truth_text(row.model),
                    row.seconds ? fmt("%.1f", *row.seconds) : "-", row.status});
  }
  d.heading(2, "Models");
  d.table({"index", "model", "trojan probability", "score", "verdict", "target", "ground truth",
           "seconds", "status"},
          rows, {true, false, true, true, false, true, false, true, false});
  d.heading(2, "Settings");
  std::vector<std::string> items;
  for (const auto& [k, v] : m.settings.items()) items.push_back("`" + k + "`: " + v.dump());
  d.list(items);
  return d;
}

}  // namespace

std::string campaign_report_html(const Manifest& m, const MergeResult& r, const PlotResult& plots) {
  auto uri = [&](const std::string& rel) -> std::string {
    const std::string bytes = read_bytes((fs::path(m.dir) / rel).string());
    return bytes.empty() ? "" : "data:image/svg+xml;base64," + base64(bytes);
  };
  return report::to_html(build(m, r, plots),
                         "bdguard campaign: " + fs::path(m.dir).filename().string(), uri);
}

PlotResult write_merge(const Manifest& m, MergeResult& r, const ReportOptions& options) {
  std::vector<PlotSpec> specs = {scores_plot(r)};
  if (!r.roc.empty()) specs.push_back(roc_plot(r));
  PlotResult plots = report::draw_plots(m.dir, "plots.gp", preamble(r), specs, options);
  r.warnings.insert(r.warnings.end(), plots.warnings.begin(), plots.warnings.end());
  write_file_atomic((fs::path(m.dir) / kResultsCsv).string(), results_csv(r));
  write_file_atomic((fs::path(m.dir) / kResultsJson).string(),
                    results_json(m, r, plots).dump(2) + "\n");
  write_file_atomic((fs::path(m.dir) / kReportHtml).string(), campaign_report_html(m, r, plots));
  return plots;
}

}  // namespace bdguard
