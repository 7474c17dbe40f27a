// Image folders: torchvision's ImageFolder layout (DIR/<class>/<image>) and a flat
// folder with DIR/labels.csv (`file,label`). The folder is listed and bounded (file count,
// bytes of pixels) before any image is decoded; every image is decoded by stb.
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "image_decode.h"

namespace bdguard {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kMaxLabelsCsvBytes = int64_t{256} << 20;

struct Item {
  std::string path;
  int64_t label = 0;
};

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

bool image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// The folder's entries, sorted by name (hidden ones left out), at most `max` of them.
std::vector<fs::directory_entry> list_sorted(const std::string& dir, int64_t max) {
  std::vector<fs::directory_entry> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) fail<IoError>(dir, "", "a readable folder", ec.message());
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (static_cast<int64_t>(out.size()) >= max) {
      fail<LimitExceeded>(dir, "", "at most " + std::to_string(max) + " files (--max-files)",
                          "more");
    }
    out.push_back(*it);
  }
  if (ec) fail<IoError>(dir, "", "a readable folder", ec.message());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void require_image(const fs::directory_entry& e) {
  std::error_code ec;
  if (!e.is_regular_file(ec) || !image_extension(e.path())) {
    fail(e.path().string(), "", "an image file (.png, .jpg, .jpeg or .bmp)",
         e.is_directory(ec) ? "a folder" : "another kind of file");
  }
}

// DIR/<class>/<image>: classes are the sorted folder names, or their numbers when every
// name is a whole number.
std::vector<Item> list_class_folders(const std::string& dir, int64_t max_files) {
  std::vector<fs::directory_entry> classes = list_sorted(dir, max_files);
  if (classes.empty()) fail(dir, "", "class folders (DIR/<class>/<image>) or labels.csv", "none");
  bool numeric = true;
  for (const auto& c : classes) {
    std::error_code ec;
    if (!c.is_directory(ec)) {
      fail(c.path().string(), "", "a class folder (or DIR/labels.csv for a flat folder)", "a file");
    }
    numeric = numeric && all_digits(c.path().filename().string());
  }
  std::vector<Item> items;
  for (size_t k = 0; k < classes.size(); ++k) {
    const std::string name = classes[k].path().filename().string();
    const int64_t label = numeric ? std::stoll(name) : static_cast<int64_t>(k);
    const auto files =
        list_sorted(classes[k].path().string(), max_files - static_cast<int64_t>(items.size()));
    if (files.empty()) fail(classes[k].path().string(), "", "at least one image", "none");
    for (const auto& f : files) {
      require_image(f);
      items.push_back({f.path().string(), label});
    }
  }
  return items;
}

// DIR/labels.csv: `file,label` rows (an optional `file,label` header), files in DIR.
std::vector<Item> list_labels_csv(const std::string& dir, int64_t max_files) {
  const std::string csv = dir + "/labels.csv";
  std::error_code ec;
  const auto size = fs::file_size(csv, ec);
  if (ec) fail<IoError>(csv, "", "a readable file", ec.message());
  if (static_cast<int64_t>(size) > kMaxLabelsCsvBytes) {
    fail<LimitExceeded>(csv, "", "at most " + std::to_string(kMaxLabelsCsvBytes) + " bytes",
                        std::to_string(size) + " bytes");
  }
  std::ifstream in(csv, std::ios::binary);
  if (!in) fail<IoError>(csv, "", "a readable file", "cannot open");
  std::vector<Item> items;
  std::string line;
  for (int64_t row = 1; std::getline(in, line); ++row) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (row == 1 && line == "file,label")) continue;
    const std::string where = "line " + std::to_string(row);
    const size_t comma = line.rfind(',');
    if (comma == std::string::npos) fail(csv, where, "file,label", "'" + line.substr(0, 80) + "'");
    const std::string file = line.substr(0, comma), label = line.substr(comma + 1);
    if (file.empty() || file == "." || file == ".." ||
        file.find_first_of(std::string("/\\\0", 3)) != std::string::npos) {
      fail(csv, where, "a file name in the folder (no paths)", "'" + file.substr(0, 80) + "'");
    }
    if (!all_digits(label)) {
      fail(csv, where, "a label that is a whole number", "'" + label.substr(0, 20) + "'");
    }
    if (static_cast<int64_t>(items.size()) >= max_files) {
      fail<LimitExceeded>(csv, "", "at most " + std::to_string(max_files) + " files (--max-files)",
                          "more rows");
    }
    const fs::directory_entry e(fs::path(dir) / file, ec);
    if (ec || !e.exists(ec))
      fail<IoError>(csv, where, "an existing file", "no file '" + file + "'");
    require_image(e);
    items.push_back({e.path().string(), std::stoll(label)});
  }
  if (items.empty()) fail(csv, "", "at least one `file,label` row", "none");
  return items;
}

}  // namespace

RawData read_image_folder(const std::string& dir, const ReadOptions& options) {
  std::error_code ec;
  const bool flat = fs::is_regular_file(fs::path(dir) / "labels.csv", ec);
  const std::vector<Item> items = flat ? list_labels_csv(dir, options.limits.max_files)
                                       : list_class_folders(dir, options.limits.max_files);
  Shape chw = options.image_shape;
  if (chw.empty()) chw = image_file_shape(items.front().path);
  if (chw.size() != 3 || (chw[0] != 1 && chw[0] != 3)) {
    fail<ShapeMismatch>(dir, "", "a model taking (1, H, W) or (3, H, W) images",
                        "a model input of shape " + shape_str(chw));
  }
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t C = chw[0], H = chw[1], W = chw[2];
  // As float32 (what LabDataset keeps), the largest form the pixels take.
  if (H * W * C * 4 > options.limits.max_bytes / n) {
    fail<LimitExceeded>(dir, "images",
                        "at most " + std::to_string(options.limits.max_bytes) + " bytes",
                        std::to_string(n) + " images of " + shape_str(chw) + " as float32");
  }
  RawData out;
  out.format = flat ? DataFormat::kImageList : DataFormat::kImageFolder;
  out.dtype = "uint8";
  out.channels_last_hint = true;
  out.images = at::empty({n, H, W, C}, at::kByte);
  out.labels = at::empty({n}, at::kLong);
  int64_t* labels = out.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    out.images[i].copy_(decode_image(items[i].path, C, H, W, options.resize));
    labels[i] = items[i].label;
  }
  return out;
}

}  // namespace bdguard
