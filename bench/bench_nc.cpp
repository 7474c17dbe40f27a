// Neural Cleanse's speed: labels optimised together (label_batch 10) against the plain
// way, one label after another (label_batch 1), with the same steps, on a Fashion-MNIST
// CNN; then the screened run on a 1,283-class DeepID with 1,000 face-shaped images.
//
// Usage: bench_nc [--model FMNIST.h5] [--clean VALID.h5] [--steps N] [--deepid WEIGHTS.h5]
//   --model   a Fashion-MNIST classifier (default: models/fmnist_badnet.h5)
//   --clean   its clean data, lab HDF5 (default: 1,000 pseudo-random 28x28 images)
//   --steps   steps per label of both runs (default 20; early stop off, so every label
//             runs exactly this many and the two runs do the same work)
//   --deepid  the lab's weights-only DeepID (default ../shared/fixtures/csaw/
//             lab3_bd_weights.h5; skipped when absent); its images are pseudo-random
//             55x47x3 pixels, so the time is that of the algorithm's default settings.
// Prints seconds, images through the model per second and the speedup, and checks that
// both runs give the same steps and norms (within float tolerance).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "bdguard/dataset.h"
#include "bdguard/detect.h"
#include "bdguard/model_io.h"
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
  at::NoGradGuard no_grad;
  return {x, predict_labels(m, x)};
}

NeuralCleanseResult timed(const Model& m, const TensorData& clean, NeuralCleanseOptions o,
                          const char* what, double& seconds) {
  const auto t = Clock::now();
  NeuralCleanseResult r = neural_cleanse(m, clean, o);
  seconds = seconds_since(t);
  std::printf("%-34s %8.1f s  %10.0f images/s  flagged %zu\n", what, seconds,
              static_cast<double>(r.image_passes) / seconds, r.flagged.size());
  std::fflush(stdout);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(BDGUARD_BENCH_SOURCE_DIR) + "/models/fmnist_badnet.h5";
  std::string clean_path;
  std::string deepid =
      std::string(BDGUARD_BENCH_SOURCE_DIR) + "/../shared/fixtures/csaw/lab3_bd_weights.h5";
  int steps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    if (!std::strcmp(argv[i], "--clean")) clean_path = argv[i + 1];
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--deepid")) deepid = argv[i + 1];
  }
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  std::printf("threads: %d\n", at::get_num_threads());

  Model m = load_model(model);
  TensorData clean = clean_path.empty() ? random_images(m, 1000, 1)
                                        : read_tensor_data(LabDataset(clean_path, m.input_shape()));
  NeuralCleanseOptions o;
  o.max_steps = steps;
  o.early_stop = false;
  o.eval_images = 200;
  double batched_s = 0, plain_s = 0;
  o.label_batch = 10;
  NeuralCleanseResult a = timed(m, clean, o, "fmnist, 10 labels together", batched_s);
  o.label_batch = 1;
  NeuralCleanseResult b = timed(m, clean, o, "fmnist, one label at a time", plain_s);
  double worst = 0;
  for (size_t k = 0; k < a.labels.size(); ++k) {
    worst = std::max(worst, std::abs(a.labels[k].mask_l1 - b.labels[k].mask_l1) /
                                std::max(1e-9, b.labels[k].mask_l1));
  }
  std::printf("speedup %.1fx; largest relative norm difference %.2g\n", plain_s / batched_s, worst);

  if (!std::filesystem::exists(deepid)) {
    std::printf("DeepID: %s absent, skipped\n", deepid.c_str());
    return 0;
  }
  Model d = load_model(deepid, {"deepid", ""});
  TensorData faces = random_images(d, 1000, 2);
  NeuralCleanseOptions od;  // the defaults: screening, as bdguard detect runs it
  double deepid_s = 0;
  timed(d, faces, od, "DeepID 1283 classes, screened", deepid_s);
  return 0;
}
