// report.md, report.html and summary.json of a defense run (see report.h).
#include "bdguard/report.h"

#include <openssl/evp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "report/compare_section.h"
#include "report/detect_section.h"
#include "report/document.h"
#include "report/model_view.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

using report::percent1;
// Table cells: "98.65"; prose: "98.7 %" (percent1).
std::string p2(double v) { return report::fixed2(v); }
std::string p2(const std::optional<double>& v) { return v ? p2(*v) : "-"; }
std::string g(double v) { return report::formatted("%g", v); }
std::string seconds(double v) { return report::formatted(v < 10 ? "%.2f" : "%.1f", v); }

std::string human_bytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? std::to_string(n) + " B" : report::formatted("%.1f", v) + " " + units[u];
}

// A setting as the report shows it: code for values, "-" for unset; numbers as users write them.
std::string setting_text(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return "`" + v.get<std::string>() + "`";
  if (v.is_number_float()) return "`" + g(v.get<double>()) + "`";
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      std::string t = setting_text(e);
      out += (out.empty() ? "" : ", ") + t;
    }
    return out.empty() ? "-" : out;
  }
  return "`" + v.dump() + "`";
}

bool has_test_steps(const SweepResult& s) {
  return !s.steps.empty() && s.steps[0].test_accuracy.has_value();
}

const PlotFile* find_plot(const PlotResult& plots, const std::string& name,
                          const std::string& format) {
  for (const auto& p : plots.files) {
    if (p.name == name && p.format == format) return &p;
  }
  return nullptr;
}

}  // namespace

namespace report {

std::vector<ModelView> model_views(const RunReport& r) {
  std::vector<ModelView> out;
  const auto& steps = r.sweep.steps;
  for (const ReportedModel& m : r.saved) {
    const SavedModel& s = m.saved;
    ModelView v;
    v.drop = s.drop;
    v.reached = s.reached;
    v.goodnet = m.goodnet ? &*m.goodnet : nullptr;
    if (s.reached) {
      if (s.step < 0 || static_cast<size_t>(s.step) >= steps.size()) {
        throw InvalidArgument(
            describe("", "saved model X=" + format_drop(s.drop),
                     "a step of the sweep (0 to " + std::to_string(steps.size()) + ")",
                     std::to_string(s.step)));
      }
      const SweepStep& st = steps[static_cast<size_t>(s.step)];
      v.step = s.step;
      v.file = s.path.empty() ? "" : fs::path(s.path).filename().string();
      v.sha256 = s.sha256;
      v.fraction_pruned = st.fraction_pruned;
      v.valid_accuracy = st.valid_accuracy;
      v.valid_asr = st.valid_asr;
      v.valid_drop = steps.front().valid_accuracy - st.valid_accuracy;
      v.test_accuracy = st.test_accuracy;
      v.test_asr = st.test_asr;
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace report

namespace {

report::Document build_document(const RunReport& r, const PlotResult& plots) {
  using report::Document;
  Document d;
  const auto& sw = r.sweep;
  d.heading(1, "bdguard report: pruning defense of " + r.model_name);
  d.paragraph("Channels of the layer `" + sw.layer +
              "` are pruned one at a time, in increasing "
              "order of their mean activation at `" +
              sw.cut_layer +
              "` on clean validation data "
              "(Fine-Pruning, Liu et al., RAID 2018). After each step the clean accuracy and the "
              "attack success rate (ASR) are measured; a pruned model is saved at the first step "
              "that costs 2, 4 and 10 points of validation accuracy, and each is paired with the "
              "BadNet into a GoodNet, which outputs label N = " +
              std::to_string(r.num_classes) +
              " (backdoor detected) where the two disagree. Rates are percentages.");
  for (const auto& w : r.warnings) d.note("Warning: " + w);

  d.heading(2, "Settings");
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, value] : r.settings) rows.push_back({key, setting_text(value)});
  d.table({"setting", "value"}, rows);

  d.heading(2, "Inputs");
  rows.clear();
  for (const auto& in : r.inputs) {
    rows.push_back({in.role, "`" + in.path + "`", human_bytes(in.bytes), "`" + in.sha256 + "`"});
  }
  d.table({"input", "file", "size", "SHA-256"}, rows, {false, false, true, false});

  d.heading(2, "Baseline: the BadNet");
  rows = {{"validation", p2(r.valid.accuracy), p2(r.valid.asr), std::to_string(r.valid.n_clean),
           std::to_string(r.valid.n_poisoned)}};
  if (r.test) {
    rows.push_back({"test", p2(r.test->accuracy), p2(r.test->asr), std::to_string(r.test->n_clean),
                    std::to_string(r.test->n_poisoned)});
  }
  d.table({"data", "clean accuracy", "ASR", "clean images", "poisoned images"}, rows,
          {false, true, true, true, true});

  report::add_detection_section(d, r, plots);

  d.heading(2, "Pruning curves");
  d.paragraph("Clean accuracy and ASR against the fraction of the " + std::to_string(sw.channels) +
              " channels of `" + sw.layer +
              "` pruned. Dashed lines: the baseline accuracy less "
              "2, 4 and 10 points; dotted lines and large markers: the saved models. Every step "
              "is in `sweep.csv` and in the appendix.");
  auto add_plot = [&](const std::string& name, const std::string& alt) {
    if (const PlotFile* p = find_plot(plots, name, "png")) {
      d.image(alt, p->file);
    } else {
      d.note(alt + ": not drawn (gnuplot missing or failed; see the warnings).");
    }
  };
  add_plot("sweep_valid", "Validation data: clean accuracy and ASR against the fraction pruned");
  if (has_test_steps(sw)) {
    add_plot("sweep_test", "Test data: clean accuracy and ASR against the fraction pruned");
  }
  d.paragraph("The mean activation of every channel of `" + sw.layer + "` (at `" + sw.cut_layer +
              "`, over clean validation data), in the order they are pruned; the dotted lines "
              "mark where each saved model stops.");
  add_plot("activations", "Mean activation of each channel, in pruning order");

  d.heading(2, "Saved models and their GoodNets");
  rows.clear();
  for (const auto& s : report::model_views(r)) {
    if (!s.reached) {
      rows.push_back(
          {"X=" + g(s.drop), "not reached", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    std::vector<std::string> row = {
        s.file.empty() ? "X=" + g(s.drop) : "`" + s.file + "`",
        std::to_string(s.step) + " (" + report::formatted("%.1f", 100 * s.fraction_pruned) + " %)",
        p2(s.valid_drop),
        p2(s.valid_accuracy),
        p2(s.valid_asr),
        p2(s.test_accuracy),
        p2(s.test_asr)};
    if (s.goodnet) {
      const auto& gn = *s.goodnet;
      for (double v :
           {gn.goodnet_accuracy, gn.goodnet_asr, gn.detection_rate, gn.false_alarm_rate}) {
        row.push_back(p2(v));
      }
    } else {
      row.insert(row.end(), 4, "-");
    }
    row.insert(row.begin() + 1, g(s.drop));
    rows.push_back(row);
  }
  d.table({"model", "drop asked", "channels pruned (step)", "validation drop",
           "validation accuracy", "validation ASR", "test accuracy", "test ASR",
           "GoodNet test accuracy", "GoodNet test ASR", "detection rate", "false-alarm rate"},
          rows, {false, true, true, true, true, true, true, true, true, true, true, true});
  d.paragraph(
      "Drops are in accuracy points below the BadNet's validation accuracy. The GoodNet "
      "columns are measured on the test files: detection rate = poisoned inputs labelled "
      "N, false-alarm rate = clean inputs labelled N.");

  bool any_fine = false;
  for (const auto& m : r.saved) any_fine |= m.fine_pruned.has_value();
  if (any_fine) {
    d.heading(2, "Fine-pruning");
    d.paragraph(
        "Each saved model fine-tuned on the clean validation data (a seeded split: one part "
        "trains, the held-out part picks the best epoch), its pruned channels held at exactly "
        "zero (Fine-Pruning, Liu et al., RAID 2018), and its GoodNet with the BadNet. Test "
        "files only for the accuracy and ASR columns.");
    rows.clear();
    for (const auto& m : r.saved) {
      if (!m.fine_pruned) continue;
      const FinePrunedModel& f = *m.fine_pruned;
      rows.push_back({"`" + fs::path(f.path).filename().string() + "`", g(m.saved.drop),
                      p2(f.holdout_accuracy_before) + " -> " + p2(f.holdout_accuracy_after),
                      p2(f.test_accuracy), p2(f.test_asr), p2(f.goodnet.goodnet_accuracy),
                      p2(f.goodnet.goodnet_asr), p2(f.goodnet.detection_rate),
                      p2(f.goodnet.false_alarm_rate),
                      std::to_string(f.best_epoch) + " of " + std::to_string(f.epochs)});
    }
    d.table({"fine-pruned model", "drop asked", "held-out accuracy before -> after",
             "test accuracy", "test ASR", "GoodNet test accuracy", "GoodNet test ASR",
             "detection rate", "false-alarm rate", "best epoch"},
            rows, {false, true, true, true, true, true, true, true, true, true});
  }

  if (r.comparison) report::add_compare_section(d, *r.comparison, plots, 2);
  if (r.repair) report::add_repair_section(d, *r.repair, *r.comparison, 2);

  d.heading(2, "Timings");
  rows.clear();
  double total = 0;
  for (const auto& t : r.timings) {
    rows.push_back({t.stage, seconds(t.seconds)});
    total += t.seconds;
  }
  rows.push_back({"total", seconds(total)});
  d.table({"stage", "seconds"}, rows, {false, true});

  d.heading(2, "Conclusion");
  d.paragraph(conclusion(r));

  d.heading(2, "Appendix: every pruning step");
  const bool test = has_test_steps(sw);
  rows.clear();
  for (const auto& st : sw.steps) {
    std::vector<std::string> row = {
        std::to_string(st.step), st.channel < 0 ? "-" : std::to_string(st.channel),
        report::formatted("%.4f", st.fraction_pruned), p2(st.valid_accuracy), p2(st.valid_asr)};
    if (test) {
      row.push_back(p2(st.test_accuracy));
      row.push_back(p2(st.test_asr));
    }
    rows.push_back(row);
  }
  std::vector<std::string> header = {"step", "channel", "fraction pruned", "validation accuracy",
                                     "validation ASR"};
  if (test) {
    header.push_back("test accuracy");
    header.push_back("test ASR");
  }
  d.table(header, rows, std::vector<bool>(header.size(), true));
  return d;
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string render_markdown(const RunReport& r, const PlotResult& plots) {
  return report::to_markdown(build_document(r, plots));
}

std::string render_html(const RunReport& r, const PlotResult& plots, const std::string& out_dir) {
  auto uri = [&](const std::string& rel) -> std::string {
    std::string bytes = read_file_bytes((fs::path(out_dir) / rel).string());
    if (bytes.empty()) return "";
    return "data:image/png;base64," + base64(bytes);
  };
  return report::to_html(build_document(r, plots), "bdguard report: " + r.model_name, uri);
}

PlotResult write_report(RunReport& r, const std::string& out_dir, const ReportOptions& options) {
  write_activations_csv(r.sweep, (fs::path(out_dir) / kActivationsCsv).string());
  PlotResult plots = write_plots(r, out_dir, options);
  r.warnings.insert(r.warnings.end(), plots.warnings.begin(), plots.warnings.end());
  write_file_atomic((fs::path(out_dir) / kReportMd).string(), render_markdown(r, plots));
  write_file_atomic((fs::path(out_dir) / kReportHtml).string(), render_html(r, plots, out_dir));
  write_file_atomic((fs::path(out_dir) / kSummaryJson).string(),
                    summary_json(r, plots).dump(2) + "\n");
  return plots;
}

}  // namespace bdguard
