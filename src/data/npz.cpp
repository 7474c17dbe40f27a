// NumPy .npz archives: a zip reader that trusts nothing in the archive. The central
// directory is bounds-checked, every entry's name must be a plain file name, an entry is
// inflated (zlib, raw deflate) only when its announced size is within the limits and its
// compression ratio is one deflate can reach, inflation stops at the announced size, and
// the CRC is checked.
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard {
namespace {

constexpr int64_t kEocdSize = 22;
constexpr int64_t kMaxComment = 65535;
constexpr int64_t kMaxCentralDirectory = int64_t{16} << 20;

uint32_t le16(const unsigned char* p) { return p[0] | (p[1] << 8); }
uint32_t le32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

struct Entry {
  std::string name;
  int method = 0;
  uint32_t crc = 0;
  int64_t compressed = 0, size = 0, local_offset = 0;
};

class ZipFile {
 public:
  explicit ZipFile(const std::string& path)
      : path_(path), f_(std::fopen(path.c_str(), "rb"), std::fclose) {
    if (!f_) fail<IoError>(path, "", "a readable file", std::strerror(errno));
    struct stat st {};
    if (fstat(fileno(f_.get()), &st) != 0) {
      fail<IoError>(path, "", "a readable file", std::strerror(errno));
    }
    size_ = st.st_size;
  }

  std::string read_at(int64_t offset, int64_t n, const std::string& object) {
    if (offset < 0 || n < 0 || offset > size_ || n > size_ - offset) {
      fail(path_, object, "bytes inside the " + std::to_string(size_) + "-byte file",
           "offset " + std::to_string(offset) + " + " + std::to_string(n));
    }
    std::string out(static_cast<size_t>(n), '\0');
    if (n > 0 && (fseeko(f_.get(), offset, SEEK_SET) != 0 ||
                  std::fread(out.data(), 1, out.size(), f_.get()) != out.size())) {
      fail<IoError>(path_, object, "a readable file", "a short read");
    }
    return out;
  }

  std::vector<Entry> entries() {
    const int64_t tail_len = std::min<int64_t>(size_, kEocdSize + kMaxComment);
    const std::string tail = read_at(size_ - tail_len, tail_len, "end of central directory");
    const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
    int64_t at = -1;
    for (int64_t i = tail_len - kEocdSize; i >= 0; --i) {
      if (std::memcmp(t + i, "PK\x05\x06", 4) == 0 &&
          i + kEocdSize + le16(t + i + 20) == tail_len) {
        at = i;
        break;
      }
    }
    if (at < 0) fail(path_, "", "a .npz (zip) archive", "no end of central directory record");
    const unsigned char* e = t + at;
    const int64_t count = le16(e + 10), cd_size = le32(e + 12), cd_offset = le32(e + 16);
    if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != count) {
      fail(path_, "zip archive", "a single-disk archive", "a multi-disk one");
    }
    if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      fail<LimitExceeded>(path_, "zip archive", "an archive under 4 GiB", "a zip64 archive");
    }
    if (count > kMaxZipEntries) {
      fail<LimitExceeded>(path_, "zip archive",
                          "at most " + std::to_string(kMaxZipEntries) + " entries",
                          std::to_string(count));
    }
    if (cd_size > kMaxCentralDirectory) {
      fail<LimitExceeded>(path_, "central directory",
                          "at most " + std::to_string(kMaxCentralDirectory) + " bytes",
                          std::to_string(cd_size) + " bytes");
    }
    const std::string cd = read_at(cd_offset, cd_size, "central directory");
    const auto* c = reinterpret_cast<const unsigned char*>(cd.data());
    std::vector<Entry> out;
    int64_t pos = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (pos + 46 > cd_size || std::memcmp(c + pos, "PK\x01\x02", 4) != 0) {
        fail(path_, "central directory entry " + std::to_string(i), "a file header",
             "damaged bytes");
      }
      const unsigned char* h = c + pos;
      Entry en;
      const uint32_t flags = le16(h + 8);
      en.method = static_cast<int>(le16(h + 10));
      en.crc = le32(h + 16);
      en.compressed = le32(h + 20);
      en.size = le32(h + 24);
      const int64_t name_len = le16(h + 28), extra = le16(h + 30), comment = le16(h + 32);
      en.local_offset = le32(h + 42);
      if (pos + 46 + name_len + extra + comment > cd_size) {
        fail(path_, "central directory entry " + std::to_string(i), "a complete file header",
             "a truncated one");
      }
      en.name.assign(cd, static_cast<size_t>(pos + 46), static_cast<size_t>(name_len));
      pos += 46 + name_len + extra + comment;
      check_name(en.name);
      if (flags & 1) fail(path_, en.name, "an unencrypted entry", "an encrypted one");
      if (en.compressed == 0xFFFFFFFF || en.size == 0xFFFFFFFF) {
        fail<LimitExceeded>(path_, en.name, "an entry under 4 GiB", "a zip64 entry");
      }
      for (const Entry& seen : out) {
        if (seen.name == en.name) fail(path_, en.name, "names used once", "a repeated name");
      }
      out.push_back(en);
    }
    return out;
  }

  // The entry's content, after checking its announced size, ratio and CRC.
  std::string extract(const Entry& en, int64_t max_bytes) {
    if (en.size > max_bytes) {
      fail<LimitExceeded>(path_, en.name, "at most " + std::to_string(max_bytes) + " bytes",
                          std::to_string(en.size) + " bytes announced");
    }
    if (en.method == 0 && en.compressed != en.size) {
      fail(path_, en.name, "a stored entry's sizes to agree",
           std::to_string(en.compressed) + " and " + std::to_string(en.size));
    }
    if (en.method != 0 && en.method != 8) {
      fail(path_, en.name, "stored or deflated (methods 0, 8)",
           "method " + std::to_string(en.method));
    }
    if (en.size > kMaxZipRatio * std::max<int64_t>(en.compressed, 1)) {
      fail<LimitExceeded>(path_, en.name,
                          "a compression ratio of at most " + std::to_string(kMaxZipRatio) + ":1",
                          std::to_string(en.size) + " bytes from " + std::to_string(en.compressed));
    }
    const std::string local = read_at(en.local_offset, 30, en.name + " (local header)");
    const auto* l = reinterpret_cast<const unsigned char*>(local.data());
    if (std::memcmp(l, "PK\x03\x04", 4) != 0) {
      fail(path_, en.name, "a local file header", "damaged bytes");
    }
    const int64_t name_len = le16(l + 26), extra = le16(l + 28);
    if (read_at(en.local_offset + 30, name_len, en.name) != en.name) {
      fail(path_, en.name, "the same name in the local header", "another name");
    }
    const std::string packed =
        read_at(en.local_offset + 30 + name_len + extra, en.compressed, en.name + " (data)");
    std::string out;
    if (en.method == 0) {
      out = packed;
    } else {
      out.assign(static_cast<size_t>(en.size), '\0');
      inflate_into(en, packed, out);
    }
    const uLong crc =
        crc32_z(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(out.data()), out.size());
    if (crc != en.crc) fail(path_, en.name, "the CRC-32 in the directory", "another CRC");
    return out;
  }

 private:
  void check_name(const std::string& name) {
    const bool plain = !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
                       name.find_first_of(std::string("/\\:\0", 4)) == std::string::npos;
    if (!plain) {
      std::string shown = name.substr(0, 80);
      for (char& ch : shown) {
        if (ch < 32 || ch > 126) ch = '?';
      }
      fail(path_, "zip entry name", "a plain file name (no folders, no paths outside the archive)",
           "'" + shown + "'");
    }
  }

  void inflate_into(const Entry& en, const std::string& packed, std::string& out) {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
      fail<IoError>(path_, en.name, "zlib to start", "inflateInit2 failed");
    }
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data()));
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    int64_t in_left = static_cast<int64_t>(packed.size());
    int64_t out_left = static_cast<int64_t>(out.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt in_step = static_cast<uInt>(std::min<int64_t>(in_left, 1 << 30));
      const uInt out_step = static_cast<uInt>(std::min<int64_t>(out_left, 1 << 30));
      z.avail_in = in_step;
      z.avail_out = out_step;
      rc = inflate(&z, Z_NO_FLUSH);
      in_left -= in_step - z.avail_in;
      out_left -= out_step - z.avail_out;
    }
    if (rc != Z_STREAM_END || out_left != 0 || in_left != 0) {
      fail(path_, en.name,
           "deflate data of exactly " + std::to_string(en.size) + " bytes from " +
               std::to_string(en.compressed),
           rc == Z_DATA_ERROR   ? std::string("damaged data: ") + (z.msg ? z.msg : "")
           : rc == Z_STREAM_END ? "bytes after the end of the deflate stream"
           : out_left == 0      ? "more data than announced"
                                : "less data than announced");
    }
  }

  std::string path_;
  std::unique_ptr<FILE, int (*)(FILE*)> f_;
  int64_t size_ = 0;
};

std::string array_name(const std::string& entry) {
  const std::string ext = ".npy";
  if (entry.size() > ext.size() && entry.compare(entry.size() - ext.size(), ext.size(), ext) == 0)
    return entry.substr(0, entry.size() - ext.size());
  return entry;
}

}  // namespace

NpzData read_npz(const std::string& path, const DataLimits& limits) {
  require_regular_file(path);
  ZipFile zip(path);
  const std::vector<Entry> entries = zip.entries();
  NpzData out;
  for (const Entry& e : entries) out.names.push_back(array_name(e.name));
  auto find = [&](const std::string& name) -> const Entry* {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (out.names[i] == name) return &entries[i];
    }
    return nullptr;
  };
  const Entry *x = find("x"), *y = find("y");
  out.images_name = "x";
  out.labels_name = "y";
  if (!x || !y) {
    x = find("data");
    y = find("label");
    out.images_name = "data";
    out.labels_name = "label";
  }
  if (!x || !y) {
    std::string names;
    for (const std::string& n : out.names) names += (names.empty() ? "" : ", ") + n;
    fail(path, "npz arrays", "arrays 'x' and 'y', or 'data' and 'label'",
         names.empty() ? "no arrays" : "the arrays " + names);
  }
  // Room for the .npy header beside the array.
  const int64_t entry_max =
      std::min<int64_t>(limits.max_bytes, INT64_MAX - kMaxNpyHeaderBytes - 12) +
      kMaxNpyHeaderBytes + 12;
  out.images = parse_npy(path + ":" + x->name, zip.extract(*x, entry_max), limits);
  out.labels = parse_npy(path + ":" + y->name, zip.extract(*y, entry_max), limits);
  return out;
}

}  // namespace bdguard
