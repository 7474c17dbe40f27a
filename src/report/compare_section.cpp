// The comparison section, plot and CSV (compare_section.h).
#include "report/compare_section.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "io/csv.h"
#include "report/gnuplot.h"

namespace bdguard::report {
namespace {

const PlotFile* png(const PlotResult& plots, const std::string& name) {
  for (const auto& p : plots.files) {
    if (p.name == name && p.format == "png") return &p;
  }
  return nullptr;
}

}  // namespace

std::string compare_csv(const CompareResult& r) {
  std::ostringstream out;
  out << "method,clean_accuracy,asr,accuracy_drop,der,seconds,model,error,natural_rate,"
         "proxy_asr\n";
  for (const auto& x : r.rows) {
    out << csv_field(x.method) << ',';
    if (x.ok) {
      out << num(x.clean_accuracy) << ',' << num(x.asr) << ',' << num(x.accuracy_drop) << ','
          << num(x.der) << ',' << num(x.seconds) << ',' << csv_field(x.model) << ",,"
          << (x.natural_rate ? num(*x.natural_rate) : "") << ','
          << (x.proxy_asr ? num(*x.proxy_asr) : "") << '\n';
    } else {
      out << ",,,," << num(x.seconds) << ",," << csv_field(x.error) << ",,\n";
    }
  }
  return out.str();
}

std::string compare_data(const CompareResult& r) {
  std::ostringstream gp;
  gp << "$compare << EOD\nmethod,clean_accuracy,asr\n";
  for (const auto& x : r.rows) {
    // Method names are fixed identifiers (defend.h): no quoting needed inside the block.
    if (x.ok) gp << x.method << ',' << num(x.clean_accuracy) << ',' << num(x.asr) << '\n';
  }
  gp << "EOD\n$badnet << EOD\nmethod,clean_accuracy,asr\nBadNet," << num(r.baseline_accuracy) << ','
     << num(r.baseline_asr) << "\nEOD\n";
  return gp.str();
}

PlotSpec compare_plot(const CompareResult& r) {
  // The x range spans the rows' and the BadNet's accuracies with room for the labels.
  double lo = r.baseline_accuracy, hi = r.baseline_accuracy;
  for (const auto& x : r.rows) {
    if (!x.ok) continue;
    lo = std::min(lo, x.clean_accuracy);
    hi = std::max(hi, x.clean_accuracy);
  }
  const double pad = std::max(1.0, (hi - lo) * 0.12);
  std::ostringstream gp;
  gp << "set title 'Defenses on the test files: clean accuracy against attack success rate'\n";
  gp << "set xlabel 'clean accuracy (%)'\nset ylabel 'attack success rate (%)'\n";
  gp << "set grid\nset key below horizontal\n";
  gp << "set xrange [" << num(std::max(0.0, lo - pad)) << ":" << num(std::min(100.0, hi + pad))
     << "]\nset yrange [-5:105]\n";
  gp << "plot $compare using (column('clean_accuracy')):(column('asr')) with points pt 7 ps 1.6 "
        "lc rgb '#1f77b4' title 'defended model', \\\n"
     << "     $compare using (column('clean_accuracy')):(column('asr')):(stringcolumn('method')) "
        "with labels offset char 0,1 notitle, \\\n"
     << "     $badnet using (column('clean_accuracy')):(column('asr')) with points pt 5 ps 2 "
        "lc rgb '#d62728' title 'BadNet', \\\n"
     << "     $badnet using (column('clean_accuracy')):(column('asr')):(stringcolumn('method')) "
        "with labels offset char 0,-1.2 tc rgb '#d62728' notitle\n";
  return {"compare", "Defenses: clean accuracy against attack success rate (test files)", gp.str()};
}

void add_compare_section(Document& d, const CompareResult& r, const PlotResult& plots, int level) {
  d.heading(level, "Defenses compared");
  d.paragraph(
      "Every defense on the same BadNet and the same clean validation data, each choosing "
      "everything (thresholds, epochs kept) from a held-out part of that data; the test files "
      "(" +
      std::to_string(r.n_test) + " clean, " + std::to_string(r.n_poisoned_test) +
      " poisoned images) give the table. DER is BackdoorBench's defense effectiveness rating, "
      "(max(0, ASR lost) - max(0, accuracy lost) + 1) / 2: 50 % is no change, 100 % the "
      "backdoor gone at no cost. The BadNet: clean accuracy " +
      fixed2(r.baseline_accuracy) + " %, ASR " + fixed2(r.baseline_asr) + " %.");
  if (r.target && r.baseline_natural_rate) {
    d.paragraph(
        "Natural rate: the clean test images of the other labels that a model puts in "
        "the target label " +
        std::to_string(*r.target) +
        " with no trigger on them (the BadNet: " + fixed2(*r.baseline_natural_rate) +
        " %). It is the floor under a row's ASR that removing the backdoor cannot "
        "lower: the model's own confusion between the target and its neighbours.");
  }
  if (r.baseline_proxy_asr && r.proxy.is_object()) {
    std::string labels;
    for (const auto& l : r.proxy["labels"]) labels += (labels.empty() ? "" : ", ") + l.dump();
    d.paragraph(
        "Proxy ASR: what a defender without poisoned data can measure. The reversed "
        "triggers of " +
        r.proxy["source"].get<std::string>() + " (label" +
        (r.proxy["labels"].size() == 1 ? " " : "s ") + (labels.empty() ? "none" : labels) +
        ") stamped on the " + r.proxy["n_holdout"].dump() +
        " held-out clean validation images of the other labels; the share each model puts in "
        "the trigger's label (the BadNet: " +
        fixed2(*r.baseline_proxy_asr) +
        " %). Each method chooses by it the epoch it keeps and the setting it hinges on; "
        "no row is picked by it here.");
  }
  d.paragraph("Best by DER: " + compare_verdict(r) + ".");
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> failures;
  for (const auto& x : r.rows) {
    if (!x.ok) {
      rows.push_back({x.method, "-", "-", "-", "-", "-", "-", fixed1(x.seconds), "failed"});
      failures.push_back(x.method + ": " + x.error);
      continue;
    }
    rows.push_back({x.method, fixed2(x.clean_accuracy), fixed2(x.asr),
                    x.proxy_asr ? fixed2(*x.proxy_asr) : "-",
                    x.natural_rate ? fixed2(*x.natural_rate) : "-", fixed2(x.accuracy_drop),
                    fixed2(x.der), fixed1(x.seconds), x.model.empty() ? "" : "`" + x.model + "`"});
  }
  d.table({"method", "clean accuracy (%)", "ASR (%)", "proxy ASR (%)", "natural rate (%)",
           "points lost", "DER (%)", "seconds", "model"},
          rows, {false, true, true, true, true, true, true, true, false});
  if (const PlotFile* p = png(plots, "compare")) d.image(p->title, p->file);
  if (!failures.empty()) {
    d.paragraph("Methods that could not run on this model:");
    d.list(failures);
  }
  std::vector<std::string> sources;
  for (const auto& x : r.rows) sources.push_back(x.method + ": " + defense_source(x.method));
  d.paragraph("Sources (defaults from each method's original code; see the README):");
  d.list(sources);
}

void add_repair_section(Document& d, const RepairPick& p, const CompareResult& c, int level) {
  d.heading(level, "Repair");
  d.paragraph(
      "What `bdguard repair` would keep, from clean data alone: among the compared defenses "
      "that need no poisoned data, the one with the lowest proxy ASR whose held-out clean "
      "accuracy stays within " +
      fixed1(p.max_drop) +
      " points of the BadNet's. The test files' ASR (a defender does not have it) is shown "
      "beside it to judge the choice.");
  d.paragraph("Picked: " + repair_reason(p) + ".");
  if (!p.output.empty()) {
    d.paragraph("The repaired model: `" + p.output + "` (SHA-256 `" + p.sha256 + "`).");
  }
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    const RepairCandidate& k = p.candidates[i];
    std::string asr = "-", acc = "-";
    for (const CompareRow& row : c.rows) {
      if (row.method == k.method && row.ok) {
        asr = fixed2(row.asr);
        acc = fixed2(row.clean_accuracy);
      }
    }
    const std::string mark = static_cast<int>(i) == p.picked ? "picked" : "";
    if (!k.ok) {
      rows.push_back({k.method, "-", "-", acc, asr, "failed: " + k.error});
      continue;
    }
    const bool within = repair_qualifies(p.base_accuracy, k, p.max_drop);
    rows.push_back({k.method, fixed2(k.clean_accuracy), fixed2(k.proxy_asr), acc, asr,
                    mark.empty() ? (within ? "" : "too much accuracy lost") : mark});
  }
  rows.insert(rows.begin(), {"(BadNet)", fixed2(p.base_accuracy), fixed2(p.base_proxy_asr),
                             fixed2(c.baseline_accuracy), fixed2(c.baseline_asr), ""});
  d.table({"method", "held-out clean accuracy (%)", "proxy ASR (%)", "test accuracy (%)",
           "test ASR (%)", ""},
          rows, {false, true, true, true, true, false});
}

}  // namespace bdguard::report
