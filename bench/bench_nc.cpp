// Neural Cleanse's speed: labels optimised together (label_batch 10) against the plain
// way, one label after another (label_batch 1), with the same steps, on a Fashion-MNIST
// CNN; the verdict of the screened run against the full run's on that CNN (the screen
// forced on its 10 labels); then the screened run on the lab's 1,283-class DeepID with
// 1,000 faces.
//
// Usage: bench_nc [--model FMNIST.h5] [--clean VALID.h5] [--steps N] [--deepid WEIGHTS.h5]
//                 [--skip-fmnist] [--write-faces FILE]
//   --model   a Fashion-MNIST classifier (default: models/fmnist_badnet.h5)
//   --clean   its clean data, lab HDF5 (default: 1,000 pseudo-random 28x28 images)
//   --steps   steps per label of both timed runs (default 20; early stop off, so every
//             label runs exactly this many and the two runs do the same work)
//   --deepid  the lab's weights-only BadNet DeepID (default ../shared/fixtures/csaw/
//             lab3_bd_weights.h5; skipped when absent). Its clean images: 1,000 noisy,
//             shifted, re-lit copies of the fixture's clean faces (bench_prune's data);
//             its settings: bdguard detect's defaults.
//   --write-faces  write those 1,000 faces to FILE (lab HDF5) and exit, to time the
//             same run through `bdguard campaign task` (README, "Scale, measured")
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

#include "../tests/data/synthetic_faces.h"
#include "bdguard/dataset.h"
#include "bdguard/detect.h"
#include "bdguard/memory.h"
#include "bdguard/model_io.h"
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
  at::NoGradGuard no_grad;
  return {x, predict_labels(m, x)};
}

NeuralCleanseResult timed(const Model& m, const TensorData& clean, NeuralCleanseOptions o,
                          const char* what, double& seconds) {
  const auto t = Clock::now();
  NeuralCleanseResult r = neural_cleanse(m, clean, o);
  seconds = seconds_since(t);
  std::printf("%-34s %8.1f s  %10.0f images/s  flagged", what, seconds,
              static_cast<double>(r.image_passes) / seconds);
  for (int64_t l : r.flagged) std::printf(" %lld", static_cast<long long>(l));
  if (r.screened) std::printf("  (screen %.1f s, refine %.1f s)", r.screen_s, r.refine_s);
  std::printf("\n");
  std::fflush(stdout);
  return r;
}

// The batched and the plain run on the Fashion-MNIST CNN, and the screened verdict.
void fmnist(const std::string& model, const std::string& clean_path, int steps) {
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

  // The screen forced on 10 labels (2 candidates, 4 reference labels) against the full
  // run, both with detect's defaults otherwise.
  NeuralCleanseOptions full;
  double full_s = 0, screened_s = 0;
  NeuralCleanseResult f = timed(m, clean, full, "fmnist, detect defaults, full", full_s);
  NeuralCleanseOptions sc;
  sc.full_below = 0;
  sc.refine = 2;
  sc.reference = 4;
  NeuralCleanseResult g = timed(m, clean, sc, "fmnist, screened (2 + 4 refined)", screened_s);
  std::printf("verdict: full %s, screened %s: %s\n", f.backdoored ? "yes" : "no",
              g.backdoored ? "yes" : "no", f.flagged == g.flagged ? "same labels" : "DIFFERENT");
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(BDGUARD_BENCH_SOURCE_DIR) + "/models/fmnist_badnet.h5";
  std::string clean_path;
  std::string deepid =
      std::string(BDGUARD_BENCH_SOURCE_DIR) + "/../shared/fixtures/csaw/lab3_bd_weights.h5";
  int steps = 20;
  bool skip_fmnist = false;
  std::string write_faces;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--skip-fmnist")) {
      skip_fmnist = true;
    } else if (has_value && !std::strcmp(argv[i], "--model")) {
      model = argv[++i];
    } else if (has_value && !std::strcmp(argv[i], "--clean")) {
      clean_path = argv[++i];
    } else if (has_value && !std::strcmp(argv[i], "--steps")) {
      steps = std::atoi(argv[++i]);
    } else if (has_value && !std::strcmp(argv[i], "--deepid")) {
      deepid = argv[++i];
    } else if (has_value && !std::strcmp(argv[i], "--write-faces")) {
      write_faces = argv[++i];
    } else {
      std::fprintf(stderr, "bench_nc: unknown or incomplete option %s\n", argv[i]);
      return 2;
    }
  }
  use_caching_cpu_allocator();  // as the bdguard tool does
  set_compute_threads(0);       // as the bdguard tool does
  std::printf("threads: %d\n", at::get_num_threads());

  if (!skip_fmnist && write_faces.empty()) fmnist(model, clean_path, steps);
  if (!std::filesystem::exists(deepid)) {
    std::printf("DeepID: %s absent, skipped\n", deepid.c_str());
    return 0;
  }
  const std::string csaw = std::filesystem::path(deepid).parent_path().string();
  Batch faces = synthetic::variants(synthetic::fixture_faces(csaw, "cl"), 1000, 1);
  if (!write_faces.empty()) {
    write_lab_dataset(write_faces, faces.images, faces.labels);
    std::printf("wrote %s: the 1,000 faces, lab format (N, 3, 55, 47)\n", write_faces.c_str());
    return 0;
  }
  Model d = load_model(deepid, {"deepid", ""});
  NeuralCleanseOptions od;  // the defaults: screening, as bdguard detect runs it
  double deepid_s = 0;
  NeuralCleanseResult r =
      timed(d, {faces.images, faces.labels}, od, "DeepID 1283 classes, screened", deepid_s);
  std::printf(
      "DeepID: %lld labels refined; median %.1f, MAD %.1f; label 0 (the attack's "
      "target): norm %.1f, anomaly index %.2f\n",
      static_cast<long long>(std::count_if(r.labels.begin(), r.labels.end(),
                                           [](const LabelTrigger& l) { return l.refined; })),
      r.median, r.mad, r.labels[0].mask_l1, r.labels[0].anomaly_index);
  return 0;
}
