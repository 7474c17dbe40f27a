// Fashion-MNIST's IDX files (declared in badnets.h, the attack that reads them).
#include <ATen/ATen.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "bdguard/badnets.h"
#include "bdguard/error.h"

namespace bdguard {
namespace {

constexpr int64_t kMaxIdxItems = 10'000'000;
constexpr int64_t kMaxIdxSide = 4096;
constexpr int64_t kMaxIdxBytes = int64_t{2} << 30;

// A gzip (or plain) file read through zlib; closed on destruction.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  void read(void* out, int64_t bytes, const std::string& object) {
    auto* p = static_cast<char*>(out);
    while (bytes > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<int64_t>(bytes, 1 << 30));
      int got = gzread(f_, p, chunk);
      if (got <= 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        fail(path_, object, "the bytes the header announces",
             err != Z_OK && err != Z_BUF_ERROR ? msg : "a truncated file");
      }
      p += got;
      bytes -= got;
    }
  }
  uint32_t be32(const std::string& object) {
    unsigned char b[4];
    read(b, 4, object);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }
  bool at_end() {
    char c;
    return gzread(f_, &c, 1) == 0;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_;
};

void check_idx_magic(GzReader& in, uint32_t want, const char* what) {
  uint32_t magic = in.be32("header");
  if (magic != want) {
    char buf[2][16];
    std::snprintf(buf[0], sizeof buf[0], "0x%08x", want);
    std::snprintf(buf[1], sizeof buf[1], "0x%08x", magic);
    fail(in.path(), "magic number", std::string(buf[0]) + " (" + what + ")", buf[1]);
  }
}

int64_t checked_dim(GzReader& in, const char* object, int64_t hi) {
  int64_t d = in.be32(object);
  if (d < 1 || d > hi) {
    fail<LimitExceeded>(in.path(), object, "a value in [1, " + std::to_string(hi) + "]",
                        std::to_string(d));
  }
  return d;
}

}  // namespace

std::string idx_file(const std::string& dir, const std::string& name) {
  for (const std::string& p : {dir + "/" + name + ".gz", dir + "/" + name}) {
    if (std::filesystem::exists(p)) return p;
  }
  fail<IoError>(dir, name + "[.gz]", "a Fashion-MNIST IDX file (package dataset-fashion-mnist)",
                "no such file");
}

TensorData read_idx(const std::string& images_path, const std::string& labels_path) {
  GzReader img(images_path);
  check_idx_magic(img, 0x00000803, "IDX uint8 images, 3 dimensions");
  const int64_t n = checked_dim(img, "image count", kMaxIdxItems);
  const int64_t rows = checked_dim(img, "rows", kMaxIdxSide);
  const int64_t cols = checked_dim(img, "columns", kMaxIdxSide);
  if (n * rows * cols > kMaxIdxBytes) {
    fail<LimitExceeded>(images_path, "images", "at most 2 GiB of pixels",
                        std::to_string(n * rows * cols) + " bytes");
  }
  GzReader lab(labels_path);
  check_idx_magic(lab, 0x00000801, "IDX uint8 labels, 1 dimension");
  const int64_t n_labels = checked_dim(lab, "label count", kMaxIdxItems);
  if (n_labels != n) {
    fail<ShapeMismatch>(labels_path, "label count", std::to_string(n) + " (as " + images_path + ")",
                        std::to_string(n_labels));
  }
  at::Tensor images = at::empty({n, 1, rows, cols}, at::kByte);
  img.read(images.data_ptr<uint8_t>(), n * rows * cols, "pixels");
  if (!img.at_end()) fail(images_path, "", "no bytes after the last image", "trailing data");
  at::Tensor raw = at::empty({n}, at::kByte);
  lab.read(raw.data_ptr<uint8_t>(), n, "labels");
  if (!lab.at_end()) fail(labels_path, "", "no bytes after the last label", "trailing data");
  return {images, raw.to(at::kLong)};
}

TrainTestData read_fashion_mnist(const std::string& dir) {
  TrainTestData d;
  d.train =
      read_idx(idx_file(dir, "train-images-idx3-ubyte"), idx_file(dir, "train-labels-idx1-ubyte"));
  d.test =
      read_idx(idx_file(dir, "t10k-images-idx3-ubyte"), idx_file(dir, "t10k-labels-idx1-ubyte"));
  return d;
}

}  // namespace bdguard
