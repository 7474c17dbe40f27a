// Image files through stb_image / stb_image_write.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <ATen/ATen.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard {

constexpr int kMaxImageSide = 16384;

at::Tensor load_image(const std::string& path, const Shape& input_shape) {
  if (input_shape.size() != 3 || (input_shape[0] != 1 && input_shape[0] != 3)) {
    fail<ShapeMismatch>(path, "", "a model taking (1, H, W) or (3, H, W) images",
                        "a model input of shape " + shape_str(input_shape));
  }
  require_regular_file(path);
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) fail<IoError>(path, "", "a readable image file", std::strerror(errno));
  int w = 0, h = 0, n = 0;
  // Check the header before decoding: absurd sizes are refused without allocating.
  // stb_image refuses them too, but its message then only says "corrupt"; read a PNG's
  // size from its IHDR chunk to say what was found.
  unsigned char head[24] = {};
  if (std::fread(head, 1, sizeof head, fp) == sizeof head &&
      std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(head + 12, "IHDR", 4) == 0) {
    auto be32 = [&](int at) {
      return (uint32_t{head[at]} << 24) | (uint32_t{head[at + 1]} << 16) |
             (uint32_t{head[at + 2]} << 8) | uint32_t{head[at + 3]};
    };
    const uint32_t pw = be32(16), ph = be32(20);
    if (pw < 1 || ph < 1 || pw > kMaxImageSide || ph > kMaxImageSide) {
      std::fclose(fp);
      fail<LimitExceeded>(path, "PNG header", "an image of 1x1 to 16384x16384 pixels",
                          std::to_string(pw) + "x" + std::to_string(ph));
    }
  }
  std::rewind(fp);
  if (!stbi_info_from_file(fp, &w, &h, &n)) {
    std::fclose(fp);
    fail(path, "", "a PNG, JPEG, BMP, GIF, TGA or PNM image", stbi_failure_reason());
  }
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide) {
    std::fclose(fp);
    fail<LimitExceeded>(path, "image size", "at most 16384x16384 pixels",
                        std::to_string(w) + "x" + std::to_string(h));
  }
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  if (h != H || w != W) {
    std::fclose(fp);
    fail<ShapeMismatch>(path, "image size",
                        std::to_string(W) + "x" + std::to_string(H) + " (the model's input)",
                        std::to_string(w) + "x" + std::to_string(h));
  }
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_file(fp, &w, &h, &n, static_cast<int>(C)), stbi_image_free);
  std::fclose(fp);
  if (!pixels || w != W || h != H) fail(path, "", "a decodable image", stbi_failure_reason());
  at::Tensor hwc = at::from_blob(pixels.get(), {H, W, C}, at::kByte).to(at::kFloat);
  return hwc.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

void write_png(const std::string& path, const at::Tensor& chw) {
  at::Tensor hwc = chw.clamp(0, 255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  int ok = stbi_write_png(path.c_str(), static_cast<int>(hwc.size(1)),
                          static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(2)),
                          hwc.data_ptr<uint8_t>(), static_cast<int>(hwc.size(1) * hwc.size(2)));
  if (!ok) fail<IoError>(path, "", "a writable PNG file", "stb_image_write failed");
}

}  // namespace bdguard
