// scan's speed (issue 24's targets): `bdguard scan --clean`'s default detectors (K-Arm,
// the shipped calibration's) and MM-BD (what `--no-data` runs) on a Fashion-MNIST CNN
// and on a CIFAR-size PreAct-ResNet18 (10 classes, freshly initialised: the timing does
// not depend on what it learnt, only on how far the early stops let it go); and Neural
// Cleanse alone (`bdguard detect`'s defaults, the plain way scan replaces) on the
// same CNN.
//
// Usage: bench_scan [--model FMNIST.h5] [--clean VALID.h5] [--images N] [--skip-preact]
//                   [--skip-nc] [--skip-mm-bd] [--threads T]
//   --model      a Fashion-MNIST classifier (default: models/fmnist_badnet.h5)
//   --clean      its clean data, lab HDF5 (default: N pseudo-random 28x28 images)
//   --images     clean images of the PreAct-ResNet18 (default 1000, random 32x32x3 in 0..255)
//   --threads    compute threads (default: the cores)
// Prints each detector's seconds and score.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "bdguard/architectures.h"
#include "bdguard/dataset.h"
#include "bdguard/keras.h"
#include "bdguard/model_io.h"
#include "bdguard/scan.h"
#include "bdguard/threads.h"
#include "bdguard/train.h"

namespace {

using namespace bdguard;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TensorData random_images(const Model& m, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const Shape s = m.input_shape();
  at::Tensor x = (at::rand({n, s[0], s[1], s[2]}, gen) * 255).round();
  return {x, at::zeros({n}, at::kLong)};
}

void scan_once(const std::string& what, const Model& m, const TensorData& clean,
               const std::vector<std::string>& detectors) {
  ScanOptions o;
  o.detectors = detectors;
  o.mm_bd.pixel_min = o.k_arm.pixel_min = o.nc.pixel_min = 0;
  o.mm_bd.pixel_max = o.k_arm.pixel_max = o.nc.pixel_max = 255;
  const auto start = Clock::now();
  const ScanResult r = run_detectors(m, &clean, o);
  const double total = seconds_since(start);
  std::printf("%-44s %8.1f s  (", what.c_str(), total);
  for (size_t i = 0; i < r.reports.size(); ++i) {
    const DetectorReport& d = r.reports[i];
    std::printf("%s%s %.1f s, score %.3g, target %lld", i ? "; " : "", d.name.c_str(), d.seconds,
                d.score, static_cast<long long>(d.target));
  }
  if (r.k_arm) std::printf("; k-arm steps %d, arms %zu", r.k_arm->steps, r.k_arm->arms.size());
  std::printf(")\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(BDGUARD_BENCH_SOURCE_DIR) + "/models/fmnist_badnet.h5";
  std::string clean;
  int64_t images = 1000;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  bool preact = true, nc = true, mm = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") {
      model = value();
    } else if (a == "--clean") {
      clean = value();
    } else if (a == "--images") {
      images = std::stoll(value());
    } else if (a == "--threads") {
      threads = std::stoi(value());
    } else if (a == "--skip-preact") {
      preact = false;
    } else if (a == "--skip-nc") {
      nc = false;
    } else if (a == "--skip-mm-bd") {
      mm = false;
    } else {
      std::fprintf(stderr, "error: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    set_compute_threads(threads);
    std::printf("threads: %d\n", threads);
    const Model fm = load_model(model);
    TensorData fm_clean;
    if (clean.empty()) {
      fm_clean = random_images(fm, images, 1);
    } else {
      LabDataset file(clean, fm.input_shape());
      fm_clean = read_tensor_data(file);
    }
    scan_once("fmnist CNN: k-arm (scan's default)", fm, fm_clean, {"k-arm"});
    if (mm) scan_once("fmnist CNN: mm-bd (--no-data)", fm, fm_clean, {"mm-bd"});
    if (nc) scan_once("fmnist CNN: nc (Neural Cleanse alone)", fm, fm_clean, {"nc"});
    if (preact) {
      Model pr = keras_model_from_config(preact_resnet18_architecture({3, 32, 32}, 10), "bench");
      init_weights(pr, 1);
      const TensorData pr_clean = random_images(pr, images, 2);
      scan_once("PreAct-ResNet18: k-arm (scan's default)", pr, pr_clean, {"k-arm"});
      if (mm) scan_once("PreAct-ResNet18: mm-bd (--no-data)", pr, pr_clean, {"mm-bd"});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
