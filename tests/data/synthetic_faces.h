// Lab-format data sets built from the real fixture faces: noisy, shifted and
// re-lit copies of the clean faces (labelled with their person) and of the
// sunglasses faces (labelled with the attack target 0). Shared by tests and bench/.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <string>
#include <vector>

#include "bdguard/dataset.h"

namespace bdguard::synthetic {

struct Face {
  at::Tensor image;  // (1, 3, 55, 47)
  int64_t label;
};

// The fixture faces of one kind ("cl" or "sun"), sorted by file name.
inline std::vector<Face> fixture_faces(const std::string& csaw_dir, const std::string& kind) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(csaw_dir + "/images")) {
    std::string name = e.path().filename().string();
    if (name.rfind(kind + "_", 0) == 0) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<Face> out;
  for (const auto& f : files) {
    auto pos = f.rfind("label=");
    int64_t label = std::stoll(f.substr(pos + 6));
    out.push_back({load_image(f, {3, 55, 47}), label});
  }
  return out;
}

// n variants of `faces` (cycled), deterministic for a seed: brightness x[0.85, 1.15],
// a shift of up to `shift` pixels, Gaussian noise of std `noise`.
inline Batch variants(const std::vector<Face>& faces, int64_t n, uint64_t seed, double noise = 8,
                      int64_t shift = 2) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> xs;
  std::vector<int64_t> ys;
  for (int64_t i = 0; i < n; ++i) {
    const Face& f = faces[static_cast<size_t>(i) % faces.size()];
    double scale = 0.85 + 0.3 * at::rand({1}, gen).item<double>();
    int64_t dy = at::randint(-shift, shift + 1, {1}, gen).item<int64_t>();
    int64_t dx = at::randint(-shift, shift + 1, {1}, gen).item<int64_t>();
    at::Tensor x = at::roll(f.image, {dy, dx}, {2, 3}) * scale;
    x = x + at::randn(x.sizes(), gen) * noise;
    xs.push_back(x.clamp(0, 255));
    ys.push_back(f.label);
  }
  return {at::cat(xs), at::tensor(ys, at::kLong)};
}

// Writes clean and poisoned lab files of n images each into `dir`; returns their paths.
inline std::pair<std::string, std::string> write_pair(const std::string& csaw_dir,
                                                      const std::string& dir,
                                                      const std::string& stem, int64_t n,
                                                      uint64_t seed) {
  std::string clean = dir + "/" + stem + ".h5", poisoned = dir + "/bd_" + stem + ".h5";
  Batch c = variants(fixture_faces(csaw_dir, "cl"), n, seed);
  write_lab_dataset(clean, c.images, c.labels);
  Batch p = variants(fixture_faces(csaw_dir, "sun"), n, seed + 1);
  write_lab_dataset(poisoned, p.images, p.labels);
  return {clean, poisoned};
}

}  // namespace bdguard::synthetic
