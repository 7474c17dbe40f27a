#include "common.h"

#include "bdguard/error.h"
#include "bdguard/threads.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace bdguard::cli {

void add_model_options(CLI::App& app, ModelOptions& o, const std::string& model_flag) {
  if (!model_flag.empty()) {
    app.add_option(model_flag, o.model, "Keras .h5 (full or weights-only) or ONNX model")
        ->required()
        ->check(CLI::ExistingFile);
  }
  auto* arch =
      app.add_option("--arch", o.arch, "built-in architecture for a weights-only file (deepid)");
  app.add_option("--arch-from", o.arch_from,
                 "architecture from a full model .h5 or a model_config JSON file")
      ->check(CLI::ExistingFile)
      ->excludes(arch);
  app.add_option("--input-scale", o.input_scale, "multiply every input pixel by this")
      ->capture_default_str();
  app.add_option("--mean", o.mean,
                 "subtract from each scaled pixel: one value or one per channel (m,m,m)");
  app.add_option("--std", o.std,
                 "then divide by: one value or one per channel (s,s,s); the model sees "
                 "(pixel * scale - mean) / std");
  add_data_options(app, o);
  app.add_option("--layout", o.layout, "layout of data files and arrays (auto: from the model)")
      ->check(CLI::IsMember({"auto", "nchw", "nhwc"}))
      ->capture_default_str();
  app.add_option("--max-tensor-bytes", o.max_tensor_bytes,
                 "refuse any single tensor larger than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-model-bytes", o.max_model_bytes,
                 "refuse a model file larger than this (before reading it)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

namespace {
// Every command's --data-labels, for the --labels spelling (add_labels_aliases).
std::vector<std::pair<CLI::App*, std::vector<std::string>*>>& data_label_options() {
  static std::vector<std::pair<CLI::App*, std::vector<std::string>*>> options;
  return options;
}
}  // namespace

void add_data_options(CLI::App& app, ModelOptions& o) {
  app.add_option("--data-labels", o.data_labels,
                 "labels of .npy or IDX images: LABELS, or IMAGES=LABELS per input (repeatable)");
  data_label_options().emplace_back(&app, &o.data_labels);
  app.add_flag("--resize", o.resize,
               "resize folder images of another size to the model's input (else refused)");
  app.add_option("--max-files", o.max_files, "refuse an image folder with more images")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void add_labels_aliases() {
  for (auto& [app, labels] : data_label_options()) {
    if (app->get_option_no_throw("--labels") != nullptr) continue;
    app->add_option("--labels", *labels, "the same as --data-labels");
  }
}

void add_global_options(CLI::App& app, GlobalOptions& g) {
  app.add_option("--threads", g.threads, "compute threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_flag("--json", g.json, "print one JSON document on stdout");
  app.add_flag("--quiet,-q", g.quiet, "no progress on stderr");
  app.add_option("--batch", g.batch, "images per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
}

void apply_threads(int threads) { set_compute_threads(threads); }

int at_threads() { return at::get_num_threads(); }

ArchSource arch_source(const ModelOptions& o) { return {o.arch, o.arch_from}; }

std::vector<double> parse_numbers(const std::string& text, const char* flag) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, end - pos);
    char* stop = nullptr;
    const double v = std::strtod(item.c_str(), &stop);
    if (item.empty() || stop != item.c_str() + item.size() || !std::isfinite(v)) {
      fail<InvalidArgument>(flag, "", "numbers separated by commas", "'" + text + "'");
    }
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

namespace {

std::vector<double> number_list(const std::string& text, const char* flag) {
  if (text.empty()) return {};
  std::vector<double> out = parse_numbers(text, flag);
  if (out.size() > 64)
    fail<InvalidArgument>(flag, "", "at most 64 values", std::to_string(out.size()));
  return out;
}

}  // namespace

std::string number_text(const std::vector<double>& v) {
  std::string out;
  for (double x : v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    out += (out.empty() ? "" : ",") + std::string(buf);
  }
  return out;
}

Preprocess preprocess_of(const ModelOptions& o) {
  Preprocess p;
  p.scale = o.input_scale;
  p.mean = number_list(o.mean, "--mean");
  p.std = number_list(o.std, "--std");
  return p;
}

LoadOptions load_options(const ModelOptions& o) {
  LoadOptions l;
  l.preprocess = preprocess_of(o);
  l.max_tensor_bytes = o.max_tensor_bytes;
  l.max_model_bytes = o.max_model_bytes;
  return l;
}

nlohmann::json model_settings(const ModelOptions& o) {
  const Preprocess p = preprocess_of(o);
  return {{"arch", o.arch.empty() ? (o.arch_from.empty() ? nullptr : nlohmann::json(o.arch_from))
                                  : nlohmann::json(o.arch)},
          {"input_scale", p.scale},
          {"mean", p.mean},
          {"std", p.std}};
}

Model load(const ModelOptions& o, const std::string& path) {
  return load_model(path, arch_source(o), load_options(o));
}

DataOptions data_options(const ModelOptions& o) {
  DataOptions d;
  d.layout = parse_layout(o.layout);
  d.max_tensor_bytes = o.max_tensor_bytes;
  d.labels = o.data_labels;
  d.resize = o.resize;
  d.max_files = o.max_files;
  return d;
}

DataOptions data_options(const ModelOptions& o, const Model& m) {
  DataOptions d = data_options(o);
  d.num_classes = m.num_classes();
  return d;
}

ProgressFn progress_bar(const std::string& label, bool quiet) {
  if (quiet || !isatty(STDERR_FILENO)) return {};
  auto start = std::chrono::steady_clock::now();
  return [label, start](int64_t done, int64_t total) {
    double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    int filled = static_cast<int>(frac * 30);
    std::fprintf(stderr, "\r%-12s [%-30s] %lld/%lld  %.1fs  eta %.1fs", label.c_str(),
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), elapsed, eta);
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

void print_json(const nlohmann::json& doc) { std::cout << doc.dump(2) << std::endl; }

void add_force_flag(CLI::App& app, bool& force) {
  app.add_flag("--force", force, "write into an existing non-empty output folder");
}

double read_timeout_seconds() {
  const char* env = std::getenv("BDGUARD_READ_TIMEOUT");
  char* end = nullptr;
  double s = env ? std::strtod(env, &end) : 0;
  return env && end != env && s > 0 ? s : kDefaultReadTimeoutSeconds;
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace bdguard::cli

namespace bdguard::cli {

TrainProgressFn train_progress_bar(const std::string& label, bool quiet) {
  if (quiet) return {};
  const bool tty = isatty(STDERR_FILENO);
  auto start = std::chrono::steady_clock::now();
  return [label, tty, start](const TrainProgress& p) {
    const bool last = p.step >= p.steps;
    if (!tty && !last) return;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double frac = static_cast<double>(p.step) / static_cast<double>(std::max<int64_t>(p.steps, 1));
    int filled = static_cast<int>(frac * 20);
    std::fprintf(stderr, "%s%s epoch %d/%d [%-20s] %lld/%lld  loss %.4f  acc %.2f %%  %.0fs",
                 tty ? "\r" : "", label.c_str(), p.epoch, p.epochs,
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss,
                 p.accuracy, elapsed);
    if (last) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

std::string quote_arg(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_./=,:+") == std::string::npos) {
    return arg;
  }
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace bdguard::cli
