// NumPy .npy arrays: a strict reader of the format's header (a Python dict literal with
// exactly 'descr', 'fortran_order' and 'shape') and of the bytes it announces.
// Object dtypes (pickled Python objects) and structured dtypes are refused.
#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard {
namespace {

constexpr size_t kMaxNpyRank = 8;

struct DtypeInfo {
  const char* descr;  // without the byte-order character
  const char* name;
  at::ScalarType stored;  // the tensor type the bytes are read as
  int64_t item;
};

// Little-endian (or byte-order-free) numeric dtypes. uint16/uint32 are read into the
// next wider signed type; uint64 as int64, refused per value above INT64_MAX.
constexpr DtypeInfo kDtypes[] = {{"u1", "uint8", at::kByte, 1},    {"i1", "int8", at::kChar, 1},
                                 {"i2", "int16", at::kShort, 2},   {"u2", "uint16", at::kShort, 2},
                                 {"i4", "int32", at::kInt, 4},     {"u4", "uint32", at::kInt, 4},
                                 {"i8", "int64", at::kLong, 8},    {"u8", "uint64", at::kLong, 8},
                                 {"f2", "float16", at::kHalf, 2},  {"f4", "float32", at::kFloat, 4},
                                 {"f8", "float64", at::kDouble, 8}};

// A cursor over the header text; every failure names what was expected.
class HeaderParser {
 public:
  HeaderParser(const std::string& name, const std::string& text) : name_(name), s_(text) {}

  [[noreturn]] void bad(const std::string& expected) const {
    std::string rest = s_.substr(pos_, 24);
    for (char& c : rest) {
      if (c < 32 || c > 126) c = '?';
    }
    fail(name_, "npy header at character " + std::to_string(pos_), expected,
         pos_ >= s_.size() ? "the end of the header" : "'" + rest + "'");
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool take(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) bad(std::string("'") + c + "'");
  }
  std::string string_literal(const std::string& what) {
    skip_ws();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) bad(what);
    const char quote = s_[pos_++];
    size_t end = s_.find(quote, pos_);
    if (end == std::string::npos || end - pos_ > 64) bad("a short quoted string");
    std::string out = s_.substr(pos_, end - pos_);
    for (char c : out) {
      if (c == '\\' || c < 32 || c > 126) bad("a plain quoted string");
    }
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    for (const auto& [word, value] : {std::pair{"False", false}, std::pair{"True", true}}) {
      if (s_.compare(pos_, std::strlen(word), word) == 0) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    bad("True or False");
  }
  int64_t integer() {
    skip_ws();
    size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (INT64_MAX - 9) / 10) bad("a dimension below 2^63");
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == start) bad("a non-negative whole number");
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 longs
    return v;
  }
  Shape tuple() {
    expect('(');
    Shape out;
    if (take(')')) return out;
    while (true) {
      out.push_back(integer());
      if (out.size() > kMaxNpyRank) bad("at most " + std::to_string(kMaxNpyRank) + " dimensions");
      if (take(')')) return out;
      expect(',');
      if (take(')')) return out;
    }
  }
  // Only spaces and one final newline may follow the dict.
  void finish() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '\n') ++pos_;
    if (pos_ != s_.size()) bad("only padding after the header's dict");
  }

 private:
  const std::string& name_;
  const std::string& s_;
  size_t pos_ = 0;
};

struct Header {
  const DtypeInfo* dtype = nullptr;
  Shape shape;
  int64_t data_offset = 0;
  int64_t data_bytes = 0;
};

const DtypeInfo& parse_descr(const std::string& name, const std::string& descr) {
  if (descr.find('O') != std::string::npos) {
    fail(name, "npy dtype", "numbers (object arrays hold pickled Python objects: refused)",
         "'" + descr + "'");
  }
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=')) {
    for (const DtypeInfo& d : kDtypes) {
      if (descr.compare(1, 2, d.descr) == 0) {
        if (descr[0] == '|' && d.item != 1) break;  // '|' is only for single bytes
        return d;
      }
    }
  }
  fail(name, "npy dtype",
       "little-endian uint8, int8..int64, uint16..uint64 or float16/32/64 ('<f4', '|u1', ...)",
       "'" + descr + "'");
}

// Parses the magic, version and header dict from the first bytes of the content.
Header parse_header(const std::string& name, const std::string& bytes, const DataLimits& limits) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    fail(name, "", "a .npy file (\\x93NUMPY)", "other content");
  }
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = b[6];
  int64_t len = 0, start = 0;
  if (major == 1) {
    len = b[8] | (b[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(name, "npy header", "a 4-byte header length", "a truncated file");
    len = int64_t{b[8]} | (int64_t{b[9]} << 8) | (int64_t{b[10]} << 16) | (int64_t{b[11]} << 24);
    start = 12;
  } else {
    fail(name, "npy version", "1.0, 2.0 or 3.0",
         std::to_string(major) + "." + std::to_string(b[7]));
  }
  if (len > kMaxNpyHeaderBytes) {
    fail<LimitExceeded>(name, "npy header",
                        "at most " + std::to_string(kMaxNpyHeaderBytes) + " bytes",
                        std::to_string(len) + " bytes");
  }
  if (start + len > static_cast<int64_t>(bytes.size())) {
    fail(name, "npy header", std::to_string(len) + " bytes", "a truncated file");
  }
  const std::string text = bytes.substr(start, len);
  HeaderParser p(name, text);
  Header h;
  bool seen[3] = {false, false, false};
  bool fortran = false;
  std::string descr;
  p.expect('{');
  while (!p.take('}')) {
    std::string key = p.string_literal("a key: 'descr', 'fortran_order' or 'shape'");
    p.expect(':');
    int k = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
    if (k < 0 || seen[k]) {
      fail(name, "npy header", "the keys 'descr', 'fortran_order' and 'shape' once each",
           "'" + key + "'" + (k >= 0 ? " twice" : ""));
    }
    seen[k] = true;
    if (k == 0) descr = p.string_literal("a dtype string such as '<f4' (not a structured dtype)");
    if (k == 1) fortran = p.boolean();
    if (k == 2) h.shape = p.tuple();
    if (p.take('}')) break;
    p.expect(',');
  }
  p.finish();
  if (!seen[0] || !seen[1] || !seen[2]) {
    fail(name, "npy header", "the keys 'descr', 'fortran_order' and 'shape'", "'" + text + "'");
  }
  h.dtype = &parse_descr(name, descr);
  if (fortran) fail(name, "npy fortran_order", "False (C order)", "True");
  int64_t bytes_needed = h.dtype->item;
  for (int64_t d : h.shape) {
    if (d != 0 && bytes_needed > limits.max_bytes / d) {
      fail<LimitExceeded>(name, "npy shape " + shape_str(h.shape),
                          "at most " + std::to_string(limits.max_bytes) + " bytes of data", "more");
    }
    bytes_needed *= d;
  }
  if (bytes_needed > limits.max_bytes) {
    fail<LimitExceeded>(name, "npy shape " + shape_str(h.shape),
                        "at most " + std::to_string(limits.max_bytes) + " bytes of data",
                        std::to_string(bytes_needed) + " bytes");
  }
  h.data_offset = start + len;
  h.data_bytes = bytes_needed;
  return h;
}

}  // namespace

NpyArray parse_npy(const std::string& name, const std::string& bytes, const DataLimits& limits) {
  Header h = parse_header(name, bytes, limits);
  const int64_t have = static_cast<int64_t>(bytes.size()) - h.data_offset;
  if (have != h.data_bytes) {
    fail(name, "npy data",
         std::to_string(h.data_bytes) + " bytes for shape " + shape_str(h.shape) + " " +
             h.dtype->name,
         std::to_string(have) + " bytes" + (have < h.data_bytes ? " (truncated)" : ""));
  }
  NpyArray out;
  out.dtype = h.dtype->name;
  out.shape = h.shape;
  at::Tensor t = at::empty(at::IntArrayRef(h.shape), at::TensorOptions().dtype(h.dtype->stored));
  if (h.data_bytes > 0) std::memcpy(t.data_ptr(), bytes.data() + h.data_offset, h.data_bytes);
  // Unsigned 16/32/64-bit values were read into signed slots of the same width.
  if (out.dtype == "uint16") t = t.to(at::kInt).bitwise_and(0xFFFF);
  if (out.dtype == "uint32") t = t.to(at::kLong).bitwise_and(int64_t{0xFFFFFFFF});
  if (out.dtype == "uint64" && t.numel() > 0 && t.lt(0).any().item<bool>()) {
    fail<LimitExceeded>(name, "npy data", "uint64 values below 2^63", "a larger value");
  }
  out.data = t;
  return out;
}

NpyArray read_npy_file(const std::string& path, const DataLimits& limits) {
  require_regular_file(path);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(f.get()), &st) != 0) {
    fail<IoError>(path, "", "a readable file", std::strerror(errno));
  }
  const int64_t size = st.st_size;
  // The header is checked (and the data's size with it) before the whole file is read.
  std::string head(static_cast<size_t>(std::min<int64_t>(size, kMaxNpyHeaderBytes + 12)), '\0');
  if (std::fread(head.data(), 1, head.size(), f.get()) != head.size()) {
    fail<IoError>(path, "", "a readable file", "a short read");
  }
  Header h = parse_header(path, head, limits);
  if (size - h.data_offset != h.data_bytes) {
    fail(path, "npy data",
         std::to_string(h.data_bytes) + " bytes for shape " + shape_str(h.shape) + " " +
             h.dtype->name,
         std::to_string(size - h.data_offset) + " bytes" +
             (size - h.data_offset < h.data_bytes ? " (truncated)" : ""));
  }
  std::string all(static_cast<size_t>(size), '\0');
  std::rewind(f.get());
  if (std::fread(all.data(), 1, all.size(), f.get()) != all.size()) {
    fail<IoError>(path, "", "a readable file", "a short read");
  }
  return parse_npy(path, all, limits);
}

}  // namespace bdguard
