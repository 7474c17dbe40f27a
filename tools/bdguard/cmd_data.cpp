// bdguard data inspect: what bdguard sees in a data path (format, images, layout, dtype,
// value range, labels); bdguard data take: a run of its images as a lab HDF5 file.
#include <cstdio>
#include <filesystem>
#include <string>

#include "bdguard/error.h"
#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

struct DataInspectOptions {
  ModelOptions data;  // --layout, --max-tensor-bytes and the data options only
  GlobalOptions global;
  std::string path;
};

void run_data_inspect(const DataInspectOptions& o) {
  apply_threads(o.global.threads);
  const DataSummary s = inspect_data(o.path, data_options(o.data));
  nlohmann::json hist = nlohmann::json::object();
  for (const auto& [label, count] : s.histogram) hist[std::to_string(label)] = count;
  if (o.global.json) {
    print_json({{"path", o.path},
                {"format", data_format_name(s.format)},
                {"images", s.size},
                {"shape", s.shape},
                {"layout", s.layout},
                {"dtype", s.dtype},
                {"min", s.min},
                {"max", s.max},
                {"classes", s.histogram.size()},
                {"labels", hist}});
    return;
  }
  std::printf("path:    %s\n", o.path.c_str());
  std::printf("format:  %s\n", data_format_name(s.format).c_str());
  std::printf("images:  %lld\n", static_cast<long long>(s.size));
  std::printf("shape:   %s\n", shape_str(s.shape).c_str());
  std::printf("layout:  %s\n", s.layout.c_str());
  std::printf("dtype:   %s\n", s.dtype.c_str());
  std::printf("range:   %g .. %g\n", s.min, s.max);
  std::printf("labels:  %zu classes\n", s.histogram.size());
  for (const auto& [label, count] : s.histogram) {
    std::printf("  %6lld  %lld\n", static_cast<long long>(label), static_cast<long long>(count));
  }
}

struct DataTakeOptions {
  ModelOptions data;
  GlobalOptions global;
  std::string path, out;
  int64_t skip = 0, first = -1;
};

void run_data_take(const DataTakeOptions& o) {
  apply_threads(o.global.threads);
  if (std::filesystem::path(o.out).extension() != ".h5") {
    fail<InvalidArgument>(o.out, "--out", "a lab HDF5 file name ending in .h5", o.out);
  }
  const int64_t n = take_data(o.path, data_options(o.data), o.skip, o.first, o.out);
  if (o.global.json) {
    print_json({{"path", o.path}, {"out", o.out}, {"skip", o.skip}, {"images", n}});
    return;
  }
  std::printf("Wrote %s: %lld images of %s from row %lld\n", o.out.c_str(),
              static_cast<long long>(n), o.path.c_str(), static_cast<long long>(o.skip));
}

void add_layout_options(CLI::App& sub, ModelOptions& data) {
  sub.add_option("--layout", data.layout, "layout of the images (auto: guessed)")
      ->check(CLI::IsMember({"auto", "nchw", "nhwc"}))
      ->capture_default_str();
  sub.add_option("--max-tensor-bytes", data.max_tensor_bytes,
                 "refuse any single tensor larger than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

// The DATA argument of every `data` subcommand.
void add_data_path(CLI::App& sub, std::string& path) {
  sub.add_option("data", path, "lab HDF5, .npz, .npy (with --data-labels), IDX, or an image folder")
      ->required()
      ->check(CLI::ExistingPath);
}

}  // namespace

void setup_data(CLI::App& app) {
  auto* group = app.add_subcommand("data", "inspect data sets (docs/data.md)");
  group->require_subcommand(1);
  auto opt = std::make_shared<DataInspectOptions>();
  auto* sub =
      group->add_subcommand("inspect", "format, images, shape, layout, dtype, range, labels");
  add_global_options(*sub, opt->global);
  add_data_options(*sub, opt->data);
  add_layout_options(*sub, opt->data);
  add_data_path(*sub, opt->path);
  sub->callback([opt] { run_data_inspect(*opt); });

  auto take = std::make_shared<DataTakeOptions>();
  auto* tsub = group->add_subcommand(
      "take", "a run of images (--skip, --first) written as a lab HDF5 file, in any input format");
  add_global_options(*tsub, take->global);
  add_data_options(*tsub, take->data);
  add_layout_options(*tsub, take->data);
  add_data_path(*tsub, take->path);
  tsub->add_option("--out", take->out, "the lab HDF5 file to write (.h5)")->required();
  tsub->add_option("--skip", take->skip, "rows to skip first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  tsub->add_option("--first", take->first, "how many rows to take (default: to the end)")
      ->check(CLI::PositiveNumber);
  tsub->callback([take] { run_data_take(*take); });
}

}  // namespace bdguard::cli
