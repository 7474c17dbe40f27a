// The detection section of a run's report (detect_section.h).
#include "report/detect_section.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bdguard/detect_files.h"
#include "bdguard/strip_files.h"

namespace bdguard::report {
namespace {

std::string index_text(double v) { return std::isfinite(v) ? fixed2(v) : "inf"; }

const LabelTrigger* label_of(const NeuralCleanseResult& r, int64_t label) {
  for (const auto& l : r.labels) {
    if (l.label == label) return &l;
  }
  return nullptr;
}

const PlotFile* png(const PlotResult& plots, const std::string& name) {
  for (const auto& p : plots.files) {
    if (p.name == name && p.format == "png") return &p;
  }
  return nullptr;
}

std::string label_text(const nlohmann::json& v) {
  return v.is_number_integer() ? std::to_string(v.get<int64_t>()) : "none";
}

// The detectors a calibration was fitted on, as scan.json names them ("K-Arm's score").
std::string fitted_text(const nlohmann::json& scan) {
  const nlohmann::json names = scan["calibration"].value("detectors", nlohmann::json::array());
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string n = names[i].get<std::string>();
    out += (i == 0                  ? ""
            : i + 1 == names.size() ? " and "
                                    : ", ") +
           (n == "k-arm"   ? std::string("K-Arm")
            : n == "mm-bd" ? "MM-BD"
            : n == "nc"    ? "Neural Cleanse"
                           : n) +
           "'s";
  }
  return out.empty() ? "the detectors' scores" : out + (names.size() == 1 ? " score" : " scores");
}

// bdguard scan's verdict: the probability and each detector's evidence.
void add_scan_verdict(Document& d, const nlohmann::json& scan) {
  const bool yes = scan["backdoored"].get<bool>();
  d.paragraph("`bdguard scan`'s verdict: " + std::string(yes ? "backdoored" : "no backdoor found") +
              ", probability " + fixed2(scan["probability"].get<double>()) +
              (scan.value("calibrated", false) ? "" : " (uncalibrated)") + ", target " +
              label_text(scan["target"]) +
              ". It ran MM-BD (Wang et al., IEEE S&P 2024: from random inputs alone, the "
              "largest margin each label can be driven to, tested against a Gamma fit of the "
              "others) and K-Arm (Shen et al., ICML 2021: the smallest trigger to each "
              "candidate label, optimisation steps scheduled by a bandit, its size against "
              "that label's size on clean models where the calibration holds them, else "
              "against a bound). " +
              (scan.value("calibrated", false)
                   ? "The probability is the calibration shipped with bdguard (a logistic "
                     "regression fitted on a labelled zoo, docs/detectors.md) of " +
                         fitted_text(scan) +
                         "; the other detectors and Neural Cleanse (below) are listed as "
                         "evidence."
                   : std::string("The uncalibrated rule of docs/detectors.md combines them "
                                 "with Neural Cleanse (below).")));
  std::vector<std::vector<std::string>> rows;
  for (const auto& det : scan["detectors"]) {
    char p[32] = "";
    if (det["p_value"].is_number()) {
      std::snprintf(p, sizeof p, "%.3g", det["p_value"].get<double>());
    }
    rows.push_back({det["name"].get<std::string>(), fixed2(det["score"].get<double>()), p,
                    label_text(det["target"]), fixed2(det["seconds"].get<double>())});
  }
  d.table({"detector", "score", "p-value", "suspected label", "seconds"}, rows,
          {false, true, true, true, true});
  const nlohmann::json ref = scan.contains("calibration") && scan["calibration"].is_object()
                                 ? scan["calibration"].value("reference", nlohmann::json())
                                 : nlohmann::json();
  if (ref.is_object() && ref.value("applied", false)) {
    d.paragraph(
        "Against the calibration's clean reference models (each label's own natural "
        "trigger, docs/detectors.md): label " +
        label_text(ref["target"]) + "'s reversed trigger covers " +
        fixed2(100 * ref.value("size", 1.0)) + " % of the image, against " +
        fixed2(100 * ref.value("reference_size", 1.0)) + " % on clean models of the task.");
  } else if (ref.is_object()) {
    d.paragraph("The calibration's clean reference does not hold for this model (" +
                ref.value("why", std::string()) + ").");
  }
  for (const auto& f : scan.value("triggers", nlohmann::json::array())) {
    const std::string file = f.get<std::string>();
    if (file.find("_trigger.png") != std::string::npos) {
      d.paragraph("K-Arm's reversed trigger (mask times pattern, on black):");
      d.image("K-Arm's reversed trigger", file);
    }
  }
}

}  // namespace

std::vector<PlotSpec> detection_plots(const RunReport& r) {
  if (!r.detection) return {};
  std::vector<PlotSpec> specs{mask_norm_plot(r.detection->nc)};
  if (r.detection->strip) specs.push_back(strip_plot(*r.detection->strip));
  return specs;
}

std::string detection_data(const RunReport& r) {
  if (!r.detection) return "";
  std::string out = mask_norm_data(r.detection->nc);
  if (r.detection->strip) out += strip_data(*r.detection->strip);
  return out;
}

namespace {

// Neural Cleanse's and STRIP's findings, in words.
std::string nc_strip_conclusion(const RunReport& r) {
  const NeuralCleanseResult& nc = r.detection->nc;
  std::string out;
  if (nc.backdoored) {
    out +=
        "Neural Cleanse, from clean validation data alone, finds the model backdoored: it flags ";
    for (size_t i = 0; i < nc.flagged.size(); ++i) {
      const LabelTrigger* l = label_of(nc, nc.flagged[i]);
      out += (i ? ", " : "") + std::string("label ") + std::to_string(nc.flagged[i]) +
             " (anomaly index " + index_text(l->anomaly_index) + ", a trigger mask of " +
             fixed2(l->mask_l1) + " pixels against a median of " + fixed2(nc.median) + ")";
    }
    out += ". ";
  } else {
    out +=
        "Neural Cleanse, from clean validation data alone, flags no label (no label's "
        "reversed trigger is an outlier of anomaly index above 2). ";
  }
  if (r.detection->strip) {
    const StripReport& s = *r.detection->strip;
    out += "STRIP flags " + percent1(s.detection_rate) + " of the poisoned test inputs at " +
           percent1(s.frr) + " false rejections of clean ones. ";
  }
  return out;
}

}  // namespace

std::string detection_conclusion(const RunReport& r) {
  if (!r.detection) return "";
  std::string out;
  if (const nlohmann::json& scan = r.detection->scan; scan.is_object()) {
    out = "`bdguard scan` (MM-BD, K-Arm and Neural Cleanse combined) finds " +
          std::string(scan["backdoored"].get<bool>() ? "the model backdoored" : "no backdoor") +
          " (probability " + fixed2(scan["probability"].get<double>()) + ", suspected target " +
          label_text(scan["target"]) + "). ";
  }
  return out + nc_strip_conclusion(r);
}

nlohmann::json detection_json(const RunReport& r) {
  if (!r.detection) return nullptr;
  const DetectionReport& d = *r.detection;
  nlohmann::json nc = detect_json(d.nc, d.nc_settings, d.trigger_files);
  nlohmann::json out = {{"neural_cleanse", nc}};
  if (d.strip) {
    nlohmann::json s = to_json(*d.strip);
    s["settings"] = d.strip_settings;
    out["strip"] = s;
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& g : d.goodnet_strip) rows.push_back(to_json(g));
    out["goodnet_strip"] = rows;
  } else {
    out["strip"] = nullptr;
  }
  out["scan"] = d.scan;
  out["poisoned_example"] =
      d.poisoned_example.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.poisoned_example);
  return out;
}

void add_detection_section(Document& d, const RunReport& r, const PlotResult& plots) {
  if (!r.detection) return;
  const DetectionReport& det = *r.detection;
  const NeuralCleanseResult& nc = det.nc;
  d.heading(2, "Detection, without the attacker's data");
  if (det.scan.is_object()) add_scan_verdict(d, det.scan);
  d.paragraph(
      "Neural Cleanse (Wang et al., IEEE S&P 2019) reverse-engineers, for each label, the "
      "smallest mask and pattern that send clean validation images to that label; a backdoor "
      "target needs a far smaller mask than the others. A label whose mask norm lies below the "
      "median with an anomaly index |norm - median| / MAD above 2 is flagged (median " +
      fixed2(nc.median) + ", MAD " + fixed2(nc.mad) + " over " +
      (nc.screened ? "a refined reference sample of the labels" : "every label") + ").");
  d.paragraph(std::string("Neural Cleanse's own verdict: ") +
              (nc.backdoored ? "backdoored" : "no backdoor found") + ". " +
              detection_conclusion(r));
  // The flagged labels and the smallest norms.
  std::vector<const LabelTrigger*> rows;
  for (const auto& l : nc.labels) {
    if (l.refined) rows.push_back(&l);
  }
  std::stable_sort(rows.begin(), rows.end(), [](const LabelTrigger* a, const LabelTrigger* b) {
    return a->mask_l1 < b->mask_l1;
  });
  if (rows.size() > 8) rows.resize(8);
  std::vector<std::vector<std::string>> table;
  for (const LabelTrigger* l : rows) {
    const bool flagged =
        std::find(nc.flagged.begin(), nc.flagged.end(), l->label) != nc.flagged.end();
    table.push_back({std::to_string(l->label), fixed2(l->mask_l1), index_text(l->anomaly_index),
                     percent1(100 * l->attack_success), flagged ? "yes" : ""});
  }
  d.table({"label", "mask L1 (pixels)", "anomaly index", "attack success of the reversed trigger",
           "flagged"},
          table, {true, true, true, true, false});
  if (const PlotFile* p = png(plots, "mask_norms")) d.image(p->title, p->file);
  const int64_t shown = nc.flagged.empty() ? (rows.empty() ? -1 : rows[0]->label) : nc.flagged[0];
  if (shown >= 0) {
    const std::string stem = "triggers/label_" + std::to_string(shown);
    d.paragraph("The reversed trigger of label " + std::to_string(shown) +
                (nc.flagged.empty() ? " (the smallest mask)" : "") +
                " (mask times pattern, on black), its mask, and for comparison a poisoned "
                "validation input (the real trigger as the attack stamped it):");
    d.image("reversed trigger of label " + std::to_string(shown), stem + "_trigger.png");
    d.image("reversed mask of label " + std::to_string(shown), stem + "_mask.png");
    if (!det.poisoned_example.empty()) d.image("a poisoned validation input", det.poisoned_example);
  }
  if (!det.strip) return;
  const StripReport& s = *det.strip;
  d.paragraph(
      "STRIP (Gao et al., ACSAC 2019) superimposes each input with clean validation images and "
      "measures the entropy of the model's output: a triggered input stays confidently on the "
      "attacker's label. The threshold is the " +
      fixed2(det.strip_settings.value("frr", 0.05) * 100) +
      " % quantile of the clean validation images' entropies (" + fixed2(s.threshold) + " bits; " +
      percent1(s.valid_frr) + " of them below it); the test files are only reported.");
  d.table({"inputs", "images", "flagged by STRIP"},
          {{"clean test (false rejection rate)", std::to_string(s.n_test), percent1(s.frr)},
           {"poisoned test (detection rate)", std::to_string(s.n_poisoned),
            percent1(s.detection_rate)}},
          {false, true, true});
  if (const PlotFile* p = png(plots, "strip_entropy")) d.image(p->title, p->file);
  if (!det.goodnet_strip.empty()) {
    std::vector<std::vector<std::string>> g;
    for (const auto& row : det.goodnet_strip) {
      g.push_back({"`" + row.pruned.substr(row.pruned.find_last_of('/') + 1) + "` + STRIP",
                   fixed2(row.goodnet_accuracy), fixed2(row.goodnet_asr),
                   fixed2(row.detection_rate), fixed2(row.false_alarm_rate)});
    }
    d.paragraph(
        "GoodNets with STRIP beside them (label N also where STRIP flags the input), on "
        "the test files:");
    d.table({"GoodNet", "accuracy", "ASR", "detection rate", "false-alarm rate"}, g,
            {false, true, true, true, true});
  }
}

}  // namespace bdguard::report
