// summary.json and the plain-language conclusion of a defense run (see report.h).
#include <optional>
#include <sstream>

#include "bdguard/report.h"
#include "report/compare_section.h"
#include "report/detect_section.h"
#include "report/document.h"
#include "report/model_view.h"

namespace bdguard {
namespace {

using report::percent1;

std::optional<report::ModelView> largest_reached(const RunReport& r) {
  std::optional<report::ModelView> best;
  for (const auto& s : report::model_views(r)) {
    if (s.reached && (!best || s.drop > best->drop)) best = s;
  }
  return best;
}

nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json split_json(const SplitMetrics& m) {
  return {{"clean_accuracy", m.accuracy},
          {"attack_success_rate", m.asr},
          {"n_clean", m.n_clean},
          {"n_poisoned", m.n_poisoned}};
}

}  // namespace

std::string conclusion(const RunReport& r) {
  const auto& sw = r.sweep;
  std::ostringstream out;
  out << report::detection_conclusion(r);
  if (r.valid.asr < kNoBackdoorAsr) {
    out << "The BadNet's attack success rate on the poisoned validation data is only "
        << percent1(r.valid.asr) << ": these inputs do not trigger a working backdoor, so the "
        << "pruning curves say little about removing one. ";
  }
  const std::optional<report::ModelView> s = largest_reached(r);
  const bool on_test = s && s->test_asr.has_value();
  if (!s) {
    double last_acc = sw.steps.empty() ? r.valid.accuracy : sw.steps.back().valid_accuracy;
    double last_asr = sw.steps.empty() ? r.valid.asr : sw.steps.back().valid_asr;
    out << "Pruning " << (sw.steps.empty() ? 0 : sw.steps.back().step) << " of the " << sw.channels
        << " channels of `" << sw.layer << "` never cost the smallest accuracy "
        << "loss asked for (validation accuracy " << percent1(last_acc) << ", baseline "
        << percent1(r.valid.accuracy) << "), so no pruned model was saved; the attack success rate "
        << "there is " << percent1(last_asr) << ".";
    return out.str();
  }
  const double asr = on_test ? *s->test_asr : s->valid_asr;
  const std::string data = on_test ? "test" : "validation";
  out << "At a " << report::formatted("%g", s->drop) << "-point accuracy loss (" << s->step
      << " of the " << sw.channels << " channels of `" << sw.layer
      << "` pruned, validation accuracy " << percent1(s->valid_accuracy) << " against "
      << percent1(r.valid.accuracy) << "), ";
  if (asr >= kBackdoorSurvivesAsr) {
    out << "the attack still succeeds " << percent1(asr) << " of the time on " << data
        << " data: pruning alone did not remove this backdoor.";
  } else if (asr >= kBackdoorRemovedAsr) {
    out << "the attack succeeds " << percent1(asr) << " of the time on " << data
        << " data: pruning weakened this backdoor but did not remove it.";
  } else {
    out << "the attack succeeds only " << percent1(asr) << " of the time on " << data
        << " data: pruning removed this backdoor, at a cost of "
        << report::formatted("%.1f", s->valid_drop) << " points of clean accuracy.";
  }
  // Where, if anywhere, the validation ASR collapses.
  const SweepStep* collapse = nullptr;
  for (const auto& st : sw.steps) {
    if (st.valid_asr < kBackdoorRemovedAsr) {
      collapse = &st;
      break;
    }
  }
  if (collapse && collapse->step > s->step) {
    out << " The validation attack success rate falls below " << percent1(kBackdoorRemovedAsr)
        << " only after " << collapse->step
        << " channels are pruned, when clean accuracy is down to "
        << percent1(collapse->valid_accuracy) << ".";
  } else if (!collapse && !sw.steps.empty()) {
    const SweepStep* lowest = &sw.steps[0];
    for (const auto& st : sw.steps) {
      if (st.valid_asr < lowest->valid_asr) lowest = &st;
    }
    out << " In the whole sweep (" << sw.steps.back().step << " channels) the validation attack "
        << "success rate never falls below " << percent1(kBackdoorRemovedAsr)
        << " (lowest: " << percent1(lowest->valid_asr) << ", after " << lowest->step
        << " channels).";
  }
  if (s->goodnet) {
    const GoodNetRow& gn = *s->goodnet;
    out << " The GoodNet built from this pruned net flags " << percent1(gn.detection_rate)
        << " of the poisoned test inputs as backdoored, with " << percent1(gn.false_alarm_rate)
        << " false alarms on clean ones; its clean accuracy is " << percent1(gn.goodnet_accuracy)
        << " and its attack success rate " << percent1(gn.goodnet_asr) << ".";
  }
  // Fine-pruning of the same saved model, when it was run.
  for (const auto& m : r.saved) {
    if (!m.fine_pruned || m.saved.step != s->step) continue;
    const FinePrunedModel& f = *m.fine_pruned;
    out << " Fine-tuning that pruned net on the clean validation data (fine-pruning) gives "
        << percent1(f.test_accuracy) << " test accuracy and " << percent1(f.test_asr)
        << " attack success";
    if (f.test_asr < kBackdoorRemovedAsr) {
      out << ": fine-pruning removed the backdoor";
    } else if (f.test_asr < kBackdoorSurvivesAsr) {
      out << ": fine-pruning weakened the backdoor but did not remove it";
    } else {
      out << ": the backdoor survived fine-pruning too";
    }
    if (r.test) {
      out << " (the BadNet: " << percent1(r.test->accuracy) << " accuracy, "
          << percent1(r.test->asr) << " ASR).";
    } else {
      out << ".";
    }
    break;
  }
  if (r.comparison && r.comparison->best >= 0) {
    out << " Of the defenses compared, the best by DER is " << compare_verdict(*r.comparison)
        << ".";
  }
  if (r.repair) {
    out << " Repaired from clean data alone: " << repair_reason(*r.repair);
    if (!r.repair->output.empty()) out << "; saved as " << r.repair->output;
    out << ".";
  }
  return out.str();
}

nlohmann::json summary_json(const RunReport& r, const PlotResult& plots) {
  nlohmann::json doc;
  doc["tool"] = {{"name", "bdguard"}, {"version", r.tool_version}};
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [key, value] : r.settings) settings[key] = value;
  doc["settings"] = settings;
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& in : r.inputs) {
    inputs.push_back(
        {{"role", in.role}, {"path", in.path}, {"sha256", in.sha256}, {"bytes", in.bytes}});
  }
  doc["inputs"] = inputs;
  doc["model"] = {{"name", r.model_name}, {"num_classes", r.num_classes}};
  doc["baseline"] = {{"valid", split_json(r.valid)},
                     {"test", r.test ? split_json(*r.test) : nlohmann::json(nullptr)}};
  const auto& sw = r.sweep;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& st : sw.steps) {
    steps.push_back(
        {{"step", st.step},
         {"channel", st.channel < 0 ? nlohmann::json(nullptr) : nlohmann::json(st.channel)},
         {"fraction_pruned", st.fraction_pruned},
         {"valid_accuracy", st.valid_accuracy},
         {"valid_asr", st.valid_asr},
         {"test_accuracy", opt(st.test_accuracy)},
         {"test_asr", opt(st.test_asr)}});
  }
  doc["sweep"] = {{"layer", sw.layer},
                  {"cut_layer", sw.cut_layer},
                  {"channels", sw.channels},
                  {"order", sw.order},
                  {"mean_activation", sw.mean_activation},
                  {"n_clean", sw.n_clean},
                  {"n_poisoned", sw.n_poisoned},
                  {"n_test", sw.n_test},
                  {"n_poisoned_test", sw.n_poisoned_test},
                  {"steps", steps}};
  nlohmann::json saved = nlohmann::json::array();
  for (const auto& s : report::model_views(r)) {
    nlohmann::json e = {{"drop", s.drop}, {"reached", s.reached}};
    if (s.reached) {
      e.update({{"step", s.step},
                {"channels_pruned", s.step},
                {"file", s.file.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.file)},
                {"sha256", s.sha256},
                {"fraction_pruned", s.fraction_pruned},
                {"valid_accuracy", s.valid_accuracy},
                {"valid_asr", s.valid_asr},
                {"valid_drop", s.valid_drop},
                {"test_accuracy", opt(s.test_accuracy)},
                {"test_asr", opt(s.test_asr)},
                {"goodnet", s.goodnet ? to_json(*s.goodnet) : nlohmann::json(nullptr)}});
    } else {
      for (const char* k :
           {"step", "channels_pruned", "file", "sha256", "fraction_pruned", "valid_accuracy",
            "valid_asr", "valid_drop", "test_accuracy", "test_asr", "goodnet"}) {
        e[k] = nullptr;
      }
    }
    saved.push_back(e);
  }
  doc["saved_models"] = saved;
  nlohmann::json fine = nlohmann::json::array();
  for (const auto& m : r.saved) {
    if (m.fine_pruned) fine.push_back(to_json(*m.fine_pruned));
  }
  doc["fine_pruned_models"] = fine;
  nlohmann::json plot_files = nlohmann::json::array();
  for (const auto& p : plots.files) {
    plot_files.push_back({{"name", p.name},
                          {"title", p.title},
                          {"file", p.file},
                          {"format", p.format},
                          {"width", p.width},
                          {"height", p.height}});
  }
  doc["plots"] = plot_files;
  nlohmann::json timings = nlohmann::json::array();
  double total = 0;
  for (const auto& t : r.timings) {
    timings.push_back({{"stage", t.stage}, {"seconds", t.seconds}});
    total += t.seconds;
  }
  doc["timings"] = timings;
  doc["total_seconds"] = total;
  doc["sweep_timings"] = {{"below_cut_s", sw.timings.below_cut_s},
                          {"sweep_s", sw.timings.sweep_s},
                          {"images_recomputed", sw.timings.images_recomputed},
                          {"images_skipped", sw.timings.images_skipped},
                          {"images_certified", sw.timings.images_certified},
                          {"ties_verified", sw.timings.ties_verified}};
  doc["thresholds"] = {{"backdoor_removed_asr", kBackdoorRemovedAsr},
                       {"backdoor_survives_asr", kBackdoorSurvivesAsr},
                       {"no_backdoor_asr", kNoBackdoorAsr}};
  doc["detection"] = report::detection_json(r);
  doc["comparison"] = r.comparison ? to_json(*r.comparison) : nlohmann::json();
  doc["repair"] = r.repair ? to_json(*r.repair) : nlohmann::json();
  doc["conclusion"] = conclusion(r);
  doc["warnings"] = r.warnings;
  return doc;
}

}  // namespace bdguard
