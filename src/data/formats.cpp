// Recognising a data path's format by its content, and reading the formats other than
// lab HDF5 into RawData.
#include <ATen/ATen.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "bdguard/badnets.h"
#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard {
namespace {

// The first 4 bytes after gzip decompression ("" when the file is not gzip or shorter).
std::string gzip_head(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return "";
  char buf[4];
  const int got = gzread(f, buf, sizeof buf);
  gzclose(f);
  return got == 4 ? std::string(buf, 4) : "";
}

RawData from_npy(DataFormat format, const NpyArray& images, const NpyArray& labels) {
  RawData out;
  out.format = format;
  out.images = images.data;
  out.labels = labels.data;
  out.dtype = images.dtype;
  return out;
}

// The regular files under `dir`, relative to it, sorted.
std::vector<std::string> files_under(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) out.push_back(fs::relative(it->path(), dir, ec).string());
  }
  if (ec) fail<IoError>(dir, "", "a readable folder", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string labels_file_for(const std::string& path, const std::vector<std::string>& specs) {
  std::string plain;
  int plain_count = 0;
  for (const std::string& s : specs) {
    const size_t eq = s.rfind('=');
    if (eq == std::string::npos) {
      plain = s;
      ++plain_count;
      continue;
    }
    std::error_code ec;
    const std::string key = s.substr(0, eq);
    if (key == path || std::filesystem::equivalent(key, path, ec)) return s.substr(eq + 1);
  }
  if (plain_count > 1) {
    fail<InvalidArgument>(path, "--data-labels", "one LABELS file, or IMAGES=LABELS pairs",
                          std::to_string(plain_count) + " plain LABELS files");
  }
  return plain;
}

std::string sha256_data(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return sha256_file(path);
  std::string listing;
  for (const std::string& rel : files_under(path)) {
    listing += rel + "\t" + sha256_file(path + "/" + rel) + "\n";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(listing.data(), listing.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

int64_t data_bytes(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail<IoError>(path, "", "a readable file", ec.message());
    return static_cast<int64_t>(size);
  }
  int64_t total = 0;
  for (const std::string& rel : files_under(path)) {
    total += static_cast<int64_t>(std::filesystem::file_size(path + "/" + rel, ec));
  }
  return total;
}

std::string data_format_name(DataFormat f) {
  switch (f) {
    case DataFormat::kLabHdf5:
      return "hdf5";
    case DataFormat::kIdx:
      return "idx";
    case DataFormat::kNpz:
      return "npz";
    case DataFormat::kNpy:
      return "npy";
    case DataFormat::kImageFolder:
      return "image-folder";
    case DataFormat::kImageList:
      return "image-list";
  }
  return "unknown";
}

DataFormat detect_data_format(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return std::filesystem::is_regular_file(std::filesystem::path(path) / "labels.csv", ec)
               ? DataFormat::kImageList
               : DataFormat::kImageFolder;
  }
  require_regular_file(path);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return DataFormat::kLabHdf5;  // its reader reports why
  unsigned char head[8] = {};
  const size_t got = std::fread(head, 1, sizeof head, f.get());
  if (got >= 4 &&
      (std::memcmp(head, "PK\x03\x04", 4) == 0 || std::memcmp(head, "PK\x05\x06", 4) == 0))
    return DataFormat::kNpz;
  if (got >= 6 && std::memcmp(head, "\x93NUMPY", 6) == 0) return DataFormat::kNpy;
  if (got >= 4 && std::memcmp(head, "\x00\x00\x08\x03", 4) == 0) return DataFormat::kIdx;
  if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b &&
      gzip_head(path) == std::string("\x00\x00\x08\x03", 4)) {
    return DataFormat::kIdx;
  }
  return DataFormat::kLabHdf5;
}

RawData read_raw_data(const std::string& path, const ReadOptions& options) {
  const DataFormat format = detect_data_format(path);
  switch (format) {
    case DataFormat::kImageFolder:
    case DataFormat::kImageList:
      return read_image_folder(path, options);
    case DataFormat::kNpz: {
      NpzData z = read_npz(path, options.limits);
      return from_npy(format, z.images, z.labels);
    }
    case DataFormat::kNpy: {
      if (options.labels.empty()) {
        fail<InvalidArgument>(path, "", "its labels: --data-labels LABELS.npy", "no --data-labels");
      }
      return from_npy(format, read_npy_file(path, options.limits),
                      read_npy_file(options.labels, options.limits));
    }
    case DataFormat::kIdx: {
      if (options.labels.empty()) {
        fail<InvalidArgument>(path, "", "its labels: --data-labels LABELS-idx1-ubyte[.gz]",
                              "no --data-labels");
      }
      TensorData d = read_idx(path, options.labels);
      RawData out;
      out.format = format;
      out.images = d.images;
      out.labels = d.labels;
      out.dtype = "uint8";
      return out;
    }
    case DataFormat::kLabHdf5:
      break;
  }
  fail<InvalidArgument>(path, "", "a data set other than lab HDF5", "an HDF5 file");
}

}  // namespace bdguard
