#include "strip_cli.h"

#include <cmath>

#include "bdguard/error.h"

namespace bdguard::cli {

void add_strip_options(CLI::App& app, StripFlags& f, const std::string& clean_flag,
                       const std::string& seed_flag, bool required) {
  if (!clean_flag.empty()) {
    auto* c =
        app.add_option(clean_flag, f.clean, "clean validation data: STRIP's overlays and threshold")
            ->check(CLI::ExistingPath);
    if (required) c->required();
  }
  app.add_option("--frr", f.options.frr,
                 "false rejection rate: the threshold is this quantile of the clean validation "
                 "images' entropies")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  app.add_option("--overlays", f.options.overlays, "clean images superimposed on each input")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--strip-alpha", f.options.alpha, "weight of the overlaid image (x + alpha x')")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option(seed_flag, f.options.seed, "seed of the overlays' draws")->capture_default_str();
  if (!app.get_option_no_throw("--pixel-range")) {
    app.add_option(
        "--pixel-range", f.pixel_range,
        "LO,HI: the pixels' range (default: 0,1 if the clean data lies in it, else 0,255)");
  }
}

StripOptions strip_options(const StripFlags& f) {
  StripOptions o = f.options;
  if (!f.pixel_range.empty()) {
    const size_t comma = f.pixel_range.find(',');
    char* end = nullptr;
    const std::string a = f.pixel_range.substr(0, comma);
    o.pixel_min = std::strtod(a.c_str(), &end);
    const std::string b = comma == std::string::npos ? "" : f.pixel_range.substr(comma + 1);
    char* end2 = nullptr;
    o.pixel_max = std::strtod(b.c_str(), &end2);
    if (comma == std::string::npos || end != a.c_str() + a.size() || end2 != b.c_str() + b.size() ||
        !(o.pixel_min < o.pixel_max)) {
      fail<InvalidArgument>("--pixel-range", "", "LO,HI with LO < HI", "'" + f.pixel_range + "'");
    }
  }
  return o;
}

Strip make_strip(const Model& m, const ModelOptions& mo, const StripFlags& f,
                 const GlobalOptions& g) {
  const StripOptions o = strip_options(f);
  LabDataset clean(f.clean, m.input_shape(), data_options(mo, m));
  Strip s(m, read_tensor_data(clean), o);
  s.calibrate(progress_bar("validation", g.quiet));
  return s;
}

Strip make_strip(const Model& m, TensorData clean, const StripFlags& f,
                 const ProgressFn& progress) {
  StripFlags copy = f;
  copy.clean.clear();
  StripOptions o = strip_options(copy);
  Strip s(m, std::move(clean), o);
  s.calibrate(progress);
  return s;
}

nlohmann::json strip_settings(const StripFlags& f, const ModelOptions& mo) {
  nlohmann::json s = to_json(f.options);
  s["model"] = mo.model;
  s["clean"] = f.clean;
  s.update(model_settings(mo));
  return s;
}

}  // namespace bdguard::cli
