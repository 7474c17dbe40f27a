// Neural Cleanse's files: detect.json, the trigger images and the mask-norm plot.
#include "bdguard/detect_files.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "bdguard/config.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "report/gnuplot.h"

namespace bdguard {

namespace fs = std::filesystem;

std::vector<int64_t> trigger_labels(const NeuralCleanseResult& r) {
  std::vector<const LabelTrigger*> by_norm;
  for (const auto& l : r.labels) {
    if (l.refined) by_norm.push_back(&l);
  }
  std::stable_sort(
      by_norm.begin(), by_norm.end(),
      [](const LabelTrigger* a, const LabelTrigger* b) { return a->mask_l1 < b->mask_l1; });
  std::vector<int64_t> out = r.flagged;
  for (size_t i = 0; i < by_norm.size() && i < 3; ++i) {
    if (std::find(out.begin(), out.end(), by_norm[i]->label) == out.end()) {
      out.push_back(by_norm[i]->label);
    }
  }
  return out;
}

std::vector<std::string> write_trigger_images(const LabelTrigger& t, double lo, double hi,
                                              const std::string& dir, const std::string& stem) {
  fs::create_directories((fs::path(dir) / stem).parent_path());
  const std::pair<const char*, at::Tensor> images[] = {{"_mask.png", mask_image(t)},
                                                       {"_pattern.png", pattern_image(t, lo, hi)},
                                                       {"_trigger.png", trigger_image(t, lo, hi)}};
  std::vector<std::string> files;
  for (const auto& [suffix, img] : images) {
    const std::string rel = stem + suffix;
    AtomicOutput out((fs::path(dir) / rel).string());
    write_png(out.path(), img);
    out.commit();
    files.push_back(rel);
  }
  return files;
}

std::vector<std::string> write_triggers(const NeuralCleanseResult& r,
                                        const std::vector<int64_t>& labels,
                                        const std::string& dir) {
  fs::create_directories(fs::path(dir) / "triggers");
  std::vector<std::string> files;
  for (int64_t label : labels) {
    const LabelTrigger* t = nullptr;
    for (const auto& l : r.labels) {
      if (l.label == label) t = &l;
    }
    if (!t) continue;
    for (auto& f : write_trigger_images(*t, r.pixel_min, r.pixel_max, dir,
                                        "triggers/label_" + std::to_string(label))) {
      files.push_back(std::move(f));
    }
  }
  return files;
}

std::vector<std::string> write_k_arm_trigger(const KArmResult& r, const std::string& dir) {
  LabelTrigger t;
  t.label = r.target;
  t.mask = r.mask;
  t.pattern = r.pattern;
  std::string stem = "triggers/k-arm_label_" + std::to_string(r.target);
  if (r.source >= 0) stem += "_from_" + std::to_string(r.source);
  std::vector<std::string> files = write_trigger_images(t, r.pixel_min, r.pixel_max, dir, stem);
  const std::string rel = stem + "_example.png";
  AtomicOutput out((fs::path(dir) / rel).string());
  write_png(out.path(),
            (r.example.to(at::kFloat) - r.pixel_min) * (255.0 / (r.pixel_max - r.pixel_min)));
  out.commit();
  files.push_back(rel);
  return files;
}

std::string mask_norm_data(const NeuralCleanseResult& r) {
  std::ostringstream gp;
  const std::set<int64_t> flagged(r.flagged.begin(), r.flagged.end());
  gp << "$norms << EOD\nlabel,mask_l1,flagged,refined\n";
  for (const auto& l : r.labels) {
    gp << l.label << ',' << report::num(l.mask_l1) << ',' << flagged.count(l.label) << ','
       << (l.refined ? 1 : 0) << '\n';
  }
  gp << "EOD\n";
  return gp.str();
}

PlotSpec mask_norm_plot(const NeuralCleanseResult& r) {
  std::ostringstream gp;
  const double threshold = r.median - 2 * r.mad;
  int64_t first = 0, last = 0;
  for (size_t i = 0; i < r.labels.size(); ++i) {
    first = i ? std::min(first, r.labels[i].label) : r.labels[i].label;
    last = i ? std::max(last, r.labels[i].label) : r.labels[i].label;
  }
  gp << "set title 'Neural Cleanse: L1 norm of the reversed mask of each label'\n";
  gp << "set xrange [" << first - 1 << ":" << last + 1 << "]\n";
  gp << "set xlabel 'label'\nset ylabel 'mask L1 norm (pixels)'\nset key below horizontal\n";
  gp << "set grid ytics\nset yrange [0:*]\nset offsets 0, 0, graph 0.08, 0\n"
     << "set style fill solid 0.6 border -1\n";
  gp << "set boxwidth 0.8\n";
  if (r.labels.size() > 40) gp << "set xtics out\n";
  gp << "plot $norms using (column('label')):(column('flagged') > 0 ? NaN : column('mask_l1')) "
        "with "
        "boxes lc rgb '#1f77b4' title 'mask L1 norm', \\\n"
     << "     $norms using (column('label')):(column('flagged') > 0 ? column('mask_l1') : NaN) "
        "with "
        "boxes lc rgb '#d62728' title 'flagged (anomaly index > 2)', \\\n"
     << "     " << report::num(std::max(threshold, 0.0))
     << " with lines dt 2 lw 2 lc rgb '#d62728' title 'median - 2 MAD', \\\n"
     << "     " << report::num(r.median)
     << " with lines dt 3 lw 1 lc rgb '#555555' title 'median'\n";
  return {"mask_norms", "Neural Cleanse: L1 norm of each label's reversed trigger mask", gp.str()};
}

PlotResult write_detect_plots(const NeuralCleanseResult& r, const std::string& dir,
                              const ReportOptions& options) {
  return report::draw_plots(dir, "plots.gp", mask_norm_data(r), {mask_norm_plot(r)}, options);
}

nlohmann::json detect_json(const NeuralCleanseResult& r, const nlohmann::json& settings,
                           const std::vector<std::string>& trigger_files) {
  nlohmann::json doc = to_json(r);
  doc["settings"] = settings;
  doc["triggers"] = trigger_files;
  doc["timings"] = {{"seconds", r.seconds},
                    {"screen_s", r.screen_s},
                    {"refine_s", r.refine_s},
                    {"image_passes", r.image_passes}};
  return doc;
}

std::string detect_verdict(const NeuralCleanseResult& r, const std::string& dir) {
  char buf[256];
  if (r.backdoored) {
    std::string out = "backdoored: yes (";
    for (size_t i = 0; i < r.flagged.size(); ++i) {
      for (const auto& l : r.labels) {
        if (l.label != r.flagged[i]) continue;
        std::snprintf(buf, sizeof buf, "%slabel %lld: anomaly index %.2f, mask L1 %.1f",
                      i ? "; " : "", static_cast<long long>(l.label), l.anomaly_index, l.mask_l1);
        out += buf;
      }
    }
    return out + "; trigger " +
           (fs::path(dir) / ("triggers/label_" + std::to_string(r.flagged[0]) + "_trigger.png"))
               .string() +
           ")";
  }
  const LabelTrigger* top = nullptr;
  for (const auto& l : r.labels) {
    if (l.refined && l.mask_l1 < r.median && (!top || l.anomaly_index > top->anomaly_index))
      top = &l;
  }
  if (!top) return "backdoored: no (no label's mask is smaller than the median)";
  std::snprintf(buf, sizeof buf, "backdoored: no (largest anomaly index %.2f, label %lld)",
                top->anomaly_index, static_cast<long long>(top->label));
  return buf;
}

NeuralCleanseResult read_detect_dir(const std::string& dir, const Shape& input_shape,
                                    int64_t num_classes) {
  const std::string path = (fs::path(dir) / "detect.json").string();
  const nlohmann::json doc = read_json_file(path, 64u << 20, "a bdguard detect.json");
  auto bad = [&](const std::string& object, const std::string& expected) {
    fail(path, object, expected, "something else");
  };
  if (!doc.is_object() || !doc.contains("method") || doc["method"] != "neural-cleanse") {
    bad("method", "\"neural-cleanse\"");
  }
  NeuralCleanseResult r;
  try {
    const auto& range = doc.value("pixel_range", nlohmann::json());
    if (!range.is_array() || range.size() != 2 || !range[0].is_number() || !range[1].is_number() ||
        !(range[0].get<double>() < range[1].get<double>())) {
      bad("pixel_range", "[low, high] with low < high");
    }
    r.pixel_min = range[0].get<double>();
    r.pixel_max = range[1].get<double>();
    for (const char* key : {"median", "mad"}) {
      if (!doc.contains(key) || !doc[key].is_number()) bad(key, "a number");
    }
    r.median = doc["median"].get<double>();
    r.mad = doc["mad"].get<double>();
    if (!doc.contains("backdoored") || !doc["backdoored"].is_boolean())
      bad("backdoored", "a boolean");
    r.backdoored = doc["backdoored"].get<bool>();
    const auto& flagged = doc.value("flagged", nlohmann::json());
    if (!flagged.is_array()) bad("flagged", "an array of labels");
    for (const auto& f : flagged) {
      if (!f.is_number_integer() || f.get<int64_t>() < 0 || f.get<int64_t>() >= num_classes) {
        fail(path, "flagged", "labels in [0, " + std::to_string(num_classes) + ")", f.dump());
      }
      r.flagged.push_back(f.get<int64_t>());
    }
    if (r.backdoored != !r.flagged.empty())
      bad("backdoored", "true exactly when a label is flagged");
    const Shape mask_shape{1, input_shape[1], input_shape[2]};
    for (int64_t label : r.flagged) {
      LabelTrigger t;
      t.label = label;
      t.refined = true;
      const std::string stem =
          (fs::path(dir) / ("triggers/label_" + std::to_string(label))).string();
      t.mask = load_image(stem + "_mask.png", mask_shape)[0][0] / 255.0;
      t.pattern = load_image(stem + "_pattern.png", input_shape)[0] *
                      ((r.pixel_max - r.pixel_min) / 255.0) +
                  r.pixel_min;
      t.mask_l1 = t.mask.sum().item<double>();
      const nlohmann::json labels =
          doc.contains("labels") ? doc["labels"] : nlohmann::json::array();
      for (const auto& l : labels) {
        if (l.is_object() && l.contains("label") && l["label"].is_number_integer() &&
            l["label"].get<int64_t>() == label) {
          const auto& ai = l.value("anomaly_index", nlohmann::json());
          t.anomaly_index = ai.is_number() ? ai.get<double>() : INFINITY;
          if (l.contains("attack_success") && l["attack_success"].is_number()) {
            t.attack_success = l["attack_success"].get<double>() / 100;
          }
        }
      }
      r.labels.push_back(std::move(t));
    }
    if (doc.contains("timings") && doc["timings"].is_object() &&
        doc["timings"].contains("seconds") && doc["timings"]["seconds"].is_number()) {
      r.seconds = doc["timings"]["seconds"].get<double>();
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", "a bdguard detect.json", e.what());
  }
  return r;
}

}  // namespace bdguard
