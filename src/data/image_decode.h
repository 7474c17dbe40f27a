// Image decoding shared by load_image (dataset.h) and the image-folder reader.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

#include "bdguard/model.h"

namespace bdguard {

constexpr int kMaxImageSide = 16384;

// (C, H, W) of an image file from its header, without decoding it: C = 1 for a gray
// image (with or without alpha), 3 otherwise.
Shape image_file_shape(const std::string& path);

// The file's pixels as (H, W, C) uint8, C = 1 (gray) or 3 (RGB), converted from what the
// file holds. An image whose size is not H x W is refused naming the file, unless
// `resize` (then it is resized, bilinear, and rounded to uint8 as PIL's resize does).
at::Tensor decode_image(const std::string& path, int64_t C, int64_t H, int64_t W, bool resize);

}  // namespace bdguard
