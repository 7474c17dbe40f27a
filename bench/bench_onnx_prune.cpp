// Times `bdguard prune` with a Gemm target (the 512 input features of the classifier of
// a CIFAR-size PreAct-ResNet18 in ONNX, bench/preact_resnet.h: the default target of a
// residual network) against `bdguard eval` on the same two files, both process start to
// exit, and the plain method (zero the feature, run the whole model on all the data)
// for a few steps in the same run.
//
// usage: bench_onnx_prune [--n N] [--runs R] [--threads T] [--plain-steps K]
//                         [--bdguard PATH] [--keep DIR]
//   --n N          clean and poisoned validation images each (default 5000)
//   --runs R       runs of each command, interleaved; the medians count (default 3)
//   --threads T    compute threads (default 2)
//   --plain-steps K  steps of the plain method, timed in-process (default 2)
// Data: random 3x32x32 images labelled with the model's own top-1 (clean), and other
// random images with a 4x4 white square in a corner labelled 0 (poisoned).
#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/memory.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "preact_resnet.h"

using bench::Clock;
using bench::seconds_since;

int main(int argc, char** argv) {
  bdguard::use_caching_cpu_allocator();  // as the bdguard tool does
  int64_t n = 5000;
  int runs = 3, threads = 2, plain_steps = 2;
  std::string tool = "./build/bdguard", keep;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc || a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_onnx_prune [--n N] [--runs R] [--threads T] [--plain-steps K]\n"
          "                        [--bdguard PATH] [--keep DIR]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
    const std::string v = argv[++i];
    if (a == "--n") n = std::stoll(v);
    if (a == "--runs") runs = std::max(1, std::stoi(v));
    if (a == "--threads") threads = std::max(1, std::stoi(v));
    if (a == "--plain-steps") plain_steps = std::max(0, std::stoi(v));
    if (a == "--bdguard") tool = v;
    if (a == "--keep") keep = v;
  }
  try {
    bench::set_threads(threads);
    bench::TempFolder dir(keep);
    auto tg = Clock::now();
    const bench::NamedTensors weights = bench::preact_resnet18_weights(20240601);
    const std::string model = dir.path + "/preact_resnet18.onnx";
    const std::string bytes = bench::preact_resnet18_onnx(weights);
    std::ofstream(model, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bdguard::Model m = bdguard::load_model(model);
    const at::Tensor clean_x = bench::random_images(n, 7);
    const at::Tensor poisoned_x = bench::with_trigger(bench::random_images(n, 8));
    at::Tensor clean_y;
    {
      at::NoGradGuard no_grad;
      clean_y = bdguard::predict_labels(m, clean_x, bdguard::kDefaultBatch);
    }
    const std::string clean = dir.path + "/clean.h5", poisoned = dir.path + "/poisoned.h5";
    bdguard::write_lab_dataset(clean, clean_x, clean_y);
    bdguard::write_lab_dataset(poisoned, poisoned_x, at::zeros({n}, at::kLong));
    std::printf(
        "PreAct-ResNet18 (3x32x32, 10 classes), %lld clean + %lld poisoned images, %d threads; "
        "made in %.1f s\n",
        static_cast<long long>(n), static_cast<long long>(n), threads, seconds_since(tg));
    std::fflush(stdout);

    const std::string common = " --quiet --threads " + std::to_string(threads) + " --model " +
                               model + " --clean " + clean + " --poisoned " + poisoned;
    const std::string eval_cmd = tool + " eval" + common + " > /dev/null";
    const std::string out = dir.path + "/prune-out";
    const std::string prune_cmd = tool + " prune" + common + " --out " + out + " > /dev/null";
    std::vector<double> eval_s, prune_s;
    std::vector<nlohmann::json> docs;
    auto timed = [](const std::string& cmd) {
      auto t = Clock::now();
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
      return seconds_since(t);
    };
    for (int r = 0; r < runs; ++r) {
      eval_s.push_back(timed(eval_cmd));
      std::filesystem::remove_all(out);
      prune_s.push_back(timed(prune_cmd));
      std::ifstream in(out + "/sweep.json");
      docs.push_back(nlohmann::json::parse(in));
    }
    const double e = bench::median(eval_s), p = bench::median(prune_s);
    size_t mid = 0;  // the run whose time is the median's (or nearest)
    for (size_t k = 0; k < prune_s.size(); ++k) {
      if (std::abs(prune_s[k] - p) < std::abs(prune_s[mid] - p)) mid = k;
    }
    const nlohmann::json& doc = docs[mid];
    const auto& t = doc["timings"];
    const int64_t steps = static_cast<int64_t>(doc["steps"].size()) - 1;
    std::printf("\ntarget %s (%s), %lld steps\n", doc["layer"].get<std::string>().c_str(),
                doc["target"]["kind"].get<std::string>().c_str(), static_cast<long long>(steps));
    std::printf("%-44s %8s  %s\n", "median of runs, process start to exit", "seconds", "runs");
    std::printf("%-44s %8.2f ", "bdguard eval (clean + poisoned)", e);
    for (double s : eval_s) std::printf(" %.2f", s);
    std::printf("\n%-44s %8.2f ", "bdguard prune (whole sweep, saving models)", p);
    for (double s : prune_s) std::printf(" %.2f", s);
    std::printf("\nprune / eval: %.2fx (the issue asks for at most 1.3x)\n", p / e);
    std::printf(
        "prune, run of the median: load %.2f s, below the cut %.2f s, sweep %.2f s, save %.2f s; "
        "%lld image-steps re-scored, %lld skipped, %lld ties re-run the plain way\n",
        t["load_s"].get<double>(), t["below_cut_s"].get<double>(), t["sweep_s"].get<double>(),
        t["save_s"].get<double>(), static_cast<long long>(t["images_recomputed"].get<int64_t>()),
        static_cast<long long>(t["images_skipped"].get<int64_t>()),
        static_cast<long long>(t["ties_verified"].get<int64_t>()));
    std::fflush(stdout);

    if (plain_steps > 0) {
      // The plain method in this process, on the same files: each step zeroes one more
      // feature and runs the whole model on all the images.
      bdguard::LabDataset c(clean, m.input_shape()), q(poisoned, m.input_shape());
      const bdguard::ChannelUnit unit = bdguard::default_prune_target(m);
      std::vector<int64_t> order;
      for (const auto& v : doc["pruning_order"]) order.push_back(v.get<int64_t>());
      bdguard::Model work = m.clone();
      const int k = static_cast<int>(std::min<int64_t>(plain_steps, steps + 1));
      double plain_s = 0;
      bool same = true;
      for (int s = 0; s < k; ++s) {
        auto t1 = Clock::now();
        if (s > 0) bdguard::zero_channel(work, unit, order[static_cast<size_t>(s - 1)]);
        auto pc = bdguard::predict_dataset({&work}, c)[0];
        auto pp = bdguard::predict_dataset({&work}, q)[0];
        plain_s += seconds_since(t1);
        const auto& step = doc["steps"][static_cast<size_t>(s)];
        same = same &&
               bdguard::match_rate(pc, c.labels()) == step["valid_accuracy"].get<double>() &&
               bdguard::match_rate(pp, q.labels()) == step["valid_asr"].get<double>();
      }
      const double per_plain = plain_s / k;
      const double per_fast =
          t["sweep_s"].get<double>() / static_cast<double>(std::max<int64_t>(steps, 1));
      std::printf(
          "plain method: %.2f s per step (%d steps; accuracy and ASR equal the fast sweep's: %s)\n",
          per_plain, k, same ? "yes" : "NO");
      std::printf(
          "fast sweep: %.4f s per step (sweep only): %.0fx faster per step; whole sweep, "
          "%lld + 1 steps the plain way, %.0f s: %.0fx bdguard prune's time\n",
          per_fast, per_plain / per_fast, static_cast<long long>(steps),
          per_plain * static_cast<double>(steps + 1),
          per_plain * static_cast<double>(steps + 1) / p);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
