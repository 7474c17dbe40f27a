// Image files through stb_image / stb_image_write.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <ATen/ATen.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "image_decode.h"

namespace bdguard {

namespace {

// Opens `path` and reads its size from the header: absurd sizes are refused without
// allocating. stb_image refuses them too, but its message then only says "corrupt"; a
// PNG's size is read from its IHDR chunk to say what was found.
using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;
FilePtr open_image(const std::string& path, int& w, int& h, int& n) {
  require_regular_file(path);
  FilePtr fp(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!fp) fail<IoError>(path, "", "a readable image file", std::strerror(errno));
  unsigned char head[24] = {};
  if (std::fread(head, 1, sizeof head, fp.get()) == sizeof head &&
      std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(head + 12, "IHDR", 4) == 0) {
    auto be32 = [&](int at) {
      return (uint32_t{head[at]} << 24) | (uint32_t{head[at + 1]} << 16) |
             (uint32_t{head[at + 2]} << 8) | uint32_t{head[at + 3]};
    };
    const uint32_t pw = be32(16), ph = be32(20);
    if (pw < 1 || ph < 1 || pw > kMaxImageSide || ph > kMaxImageSide) {
      fail<LimitExceeded>(path, "PNG header", "an image of 1x1 to 16384x16384 pixels",
                          std::to_string(pw) + "x" + std::to_string(ph));
    }
  }
  std::rewind(fp.get());
  if (!stbi_info_from_file(fp.get(), &w, &h, &n)) {
    fail(path, "", "a PNG, JPEG, BMP, GIF, TGA or PNM image", stbi_failure_reason());
  }
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide) {
    fail<LimitExceeded>(path, "image size", "at most 16384x16384 pixels",
                        std::to_string(w) + "x" + std::to_string(h));
  }
  return fp;
}

}  // namespace

Shape image_file_shape(const std::string& path) {
  int w = 0, h = 0, n = 0;
  open_image(path, w, h, n);
  return {n <= 2 ? 1 : 3, h, w};
}

at::Tensor decode_image(const std::string& path, int64_t C, int64_t H, int64_t W, bool resize) {
  if (C != 1 && C != 3) {
    fail<ShapeMismatch>(path, "", "1 (gray) or 3 (RGB) channels", std::to_string(C));
  }
  int w = 0, h = 0, n = 0;
  FilePtr fp = open_image(path, w, h, n);
  if ((h != H || w != W) && !resize) {
    fail<ShapeMismatch>(path, "image size",
                        std::to_string(W) + "x" + std::to_string(H) + " (the model's input)",
                        std::to_string(w) + "x" + std::to_string(h));
  }
  const int file_w = w, file_h = h;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_file(fp.get(), &w, &h, &n, static_cast<int>(C)), stbi_image_free);
  if (!pixels || w != file_w || h != file_h) {
    fail(path, "", "a decodable image", stbi_failure_reason());
  }
  at::Tensor out = at::empty({H, W, C}, at::kByte);
  if (h == H && w == W) {
    std::memcpy(out.data_ptr<uint8_t>(), pixels.get(), static_cast<size_t>(H * W * C));
  } else if (!stbir_resize_uint8(pixels.get(), w, h, 0, out.data_ptr<uint8_t>(),
                                 static_cast<int>(W), static_cast<int>(H), 0,
                                 static_cast<int>(C))) {
    fail(path, "", "an image stb can resize", "stbir_resize_uint8 failed");
  }
  return out;
}

at::Tensor load_image(const std::string& path, const Shape& input_shape) {
  if (input_shape.size() != 3 || (input_shape[0] != 1 && input_shape[0] != 3)) {
    fail<ShapeMismatch>(path, "", "a model taking (1, H, W) or (3, H, W) images",
                        "a model input of shape " + shape_str(input_shape));
  }
  at::Tensor hwc = decode_image(path, input_shape[0], input_shape[1], input_shape[2],
                                /*resize=*/false);
  return hwc.to(at::kFloat).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

void write_png(const std::string& path, const at::Tensor& chw) {
  at::Tensor hwc = chw.clamp(0, 255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  int ok = stbi_write_png(path.c_str(), static_cast<int>(hwc.size(1)),
                          static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(2)),
                          hwc.data_ptr<uint8_t>(), static_cast<int>(hwc.size(1) * hwc.size(2)));
  if (!ok) fail<IoError>(path, "", "a writable PNG file", "stb_image_write failed");
}

}  // namespace bdguard
