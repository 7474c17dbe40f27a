// Writers of the data formats the tests feed to bdguard: .npy bytes, zip archives
// (stored or deflated entries, any name, any announced size), files. Written here, in
// C++, so the tests need neither Python nor NumPy.
#pragma once

#include <ATen/ATen.h>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace bdguard::test {

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A .npy (version 1.0) with header dict `dict` (as NumPy writes it, padded to 64 bytes)
// and `data` after it.
inline std::string npy_with_header(const std::string& dict, const std::string& data) {
  std::string header = dict;
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

inline std::string shape_text(at::IntArrayRef sizes) {
  if (sizes.size() == 1) return "(" + std::to_string(sizes[0]) + ",)";
  std::string s = "(";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + ")";
}

// A C-contiguous uint8, int64 or float32 tensor as .npy bytes.
inline std::string npy_of(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const std::string descr = c.scalar_type() == at::kByte   ? "|u1"
                            : c.scalar_type() == at::kLong ? "<i8"
                                                           : "<f4";
  if (c.scalar_type() != at::kByte && c.scalar_type() != at::kLong) c = c.to(at::kFloat);
  std::string data(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return npy_with_header("{'descr': '" + descr +
                             "', 'fortran_order': False, 'shape': " + shape_text(c.sizes()) + ", }",
                         data);
}

struct ZipEntry {
  std::string name;
  std::string content;
  bool deflate = false;
  int64_t announced_size = -1;  // >= 0: the size the directory claims instead
};

// A zip archive as Python's zipfile writes it (local headers, central directory, end
// record); sizes as given, CRCs correct.
inline std::string zip_bytes(const std::vector<ZipEntry>& entries) {
  auto le16 = [](std::string& s, uint32_t v) {
    s += static_cast<char>(v & 0xFF);
    s += static_cast<char>((v >> 8) & 0xFF);
  };
  auto le32 = [&](std::string& s, uint32_t v) {
    le16(s, v & 0xFFFF);
    le16(s, v >> 16);
  };
  std::string out, cd;
  for (const ZipEntry& e : entries) {
    std::string packed = e.content;
    if (e.deflate) {
      z_stream z{};
      deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      packed.assign(deflateBound(&z, e.content.size()), '\0');
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(e.content.data()));
      z.avail_in = static_cast<uInt>(e.content.size());
      z.next_out = reinterpret_cast<Bytef*>(packed.data());
      z.avail_out = static_cast<uInt>(packed.size());
      deflate(&z, Z_FINISH);
      packed.resize(z.total_out);
      deflateEnd(&z);
    }
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(e.content.data()), e.content.size()));
    const uint32_t size =
        static_cast<uint32_t>(e.announced_size >= 0 ? e.announced_size : e.content.size());
    const uint32_t offset = static_cast<uint32_t>(out.size());
    auto common = [&](std::string& s) {
      le16(s, 20);  // version needed
      le16(s, 0);   // flags
      le16(s, e.deflate ? 8 : 0);
      le32(s, 0);  // time, date
      le32(s, crc);
      le32(s, static_cast<uint32_t>(packed.size()));
      le32(s, size);
      le16(s, static_cast<uint32_t>(e.name.size()));
      le16(s, 0);  // extra
    };
    out += "PK\x03\x04";
    common(out);
    out += e.name + packed;
    cd += "PK\x01\x02";
    le16(cd, 20);  // version made by
    common(cd);
    le16(cd, 0);  // comment
    le16(cd, 0);  // disk
    le16(cd, 0);  // internal attributes
    le32(cd, 0);  // external attributes
    le32(cd, offset);
    cd += e.name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += cd + "PK\x05\x06";
  le16(out, 0);
  le16(out, 0);
  le16(out, static_cast<uint32_t>(entries.size()));
  le16(out, static_cast<uint32_t>(entries.size()));
  le32(out, static_cast<uint32_t>(cd.size()));
  le32(out, cd_offset);
  le16(out, 0);
  return out;
}

// images and labels as an .npz (deflated, as np.savez_compressed writes it).
inline void write_npz(const std::string& path, const at::Tensor& x, const at::Tensor& y,
                      const std::string& x_name = "x", const std::string& y_name = "y") {
  write_bytes(path,
              zip_bytes({{x_name + ".npy", npy_of(x), true}, {y_name + ".npy", npy_of(y), true}}));
}

}  // namespace bdguard::test
