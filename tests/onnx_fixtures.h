// The real PyTorch exports of ../shared/fixtures/onnx and lab-format data made for them,
// for the CLI tests that run commands on ONNX models.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/model_io.h"
#include "hdf5/h5.h"

namespace bdguard::test {

inline std::string onnx_dir() {
  const std::string dir = std::string(BDGUARD_SHARED_DIR) + "/fixtures/onnx";
  return std::ifstream(dir + "/expected.json") ? dir : "";
}
#define REQUIRE_ONNX_FIXTURES()                                                       \
  do {                                                                                \
    if (::bdguard::test::onnx_dir().empty())                                          \
      GTEST_SKIP() << "../shared/fixtures/onnx is absent: real-fixture test skipped"; \
  } while (0)

inline std::string resnet() { return onnx_dir() + "/resnet18_narrow_op13_folded.onnx"; }
inline std::string cnn() { return onnx_dir() + "/simple_cnn_op17_kept.onnx"; }

// Pixels uniform in 0..255 (the models read pixel / 255 through --input-scale), labels
// the model's own top-1 with a tenth changed; poisoned copies with a bright corner
// labelled 0. NCHW, or NHWC with `nhwc`.
struct Data {
  std::string valid, bd_valid, test, bd_test;
};
inline std::string write_set(const Model& m, const std::string& path, uint64_t seed, int64_t n,
                             bool poisoned, bool nhwc = false) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const Shape s = m.input_shape();
  at::Tensor x = (at::rand({n, s[0], s[1], s[2]}, gen) * 255).round();
  at::Tensor y;
  if (poisoned) {
    x.narrow(2, 0, s[1] / 4).narrow(3, 0, s[2] / 4).fill_(255);
    y = at::zeros({n}, at::kLong);
  } else {
    at::NoGradGuard no_grad;
    y = predict_labels(m, x);
    y.narrow(0, 0, n / 10).fill_(3);
  }
  if (!nhwc) {
    write_lab_dataset(path, x, y);
    return path;
  }
  at::Tensor hwc = x.permute({0, 2, 3, 1}).contiguous();
  h5::File f = h5::File::create(path);
  h5::write_float_dataset(f, "/data", {n, s[1], s[2], s[0]}, hwc.data_ptr<float>());
  at::Tensor yl = y.contiguous();
  h5::write_int64_dataset(f, "/label", {n}, yl.data_ptr<int64_t>());
  f.flush();
  return path;
}
inline Data write_data(const std::string& model, const std::string& dir, int64_t n) {
  LoadOptions lo;
  lo.preprocess.scale = 1.0 / 255;
  Model m = load_model(model, {}, lo);
  return {
      write_set(m, dir + "/valid.h5", 1, n, false), write_set(m, dir + "/bd_valid.h5", 2, n, true),
      write_set(m, dir + "/test.h5", 3, n, false), write_set(m, dir + "/bd_test.h5", 4, n, true)};
}

inline const std::string kScale = " --input-scale 0.00392156862745098 ";

}  // namespace bdguard::test
