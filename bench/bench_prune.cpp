// Times `bdguard prune` (the fast, exact sweep) on lab-sized data against the plain
// method (zero the channel, re-run the whole model on all the data) in the same run.
//
// usage: bench_prune [--n 11547] [--plain-steps K] [--csaw DIR] [--bdguard PATH] [--keep DIR]
// Data: noisy, shifted, re-lit copies of the fixture faces, in the lab's format.
// The plain method runs K steps (default: all 61) and its time is reported per step
// and for the whole sweep (extrapolated from K steps when K < 61, and said so).
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "../tests/data/synthetic_faces.h"
#include "bdguard/keras.h"
#include "bdguard/memory.h"
#include "bdguard/prune.h"

using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  bdguard::use_caching_cpu_allocator();  // as the bdguard tool does
  int64_t n = 11547;
  int plain_steps = 61;
  std::string csaw = "../shared/fixtures/csaw", bdguard = "./build/bdguard", keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--n") n = std::stoll(argv[i + 1]);
    if (a == "--plain-steps") plain_steps = std::stoi(argv[i + 1]);
    if (a == "--csaw") csaw = argv[i + 1];
    if (a == "--bdguard") bdguard = argv[i + 1];
    if (a == "--keep") keep = argv[i + 1];
  }
  namespace fs = std::filesystem;
  std::string dir =
      keep.empty() ? (fs::temp_directory_path() / "bdguard-bench-prune").string() : keep;
  fs::create_directories(dir);
  std::printf("generating %lld clean + %lld poisoned validation images (55x47x3) in %s\n",
              static_cast<long long>(n), static_cast<long long>(n), dir.c_str());
  auto [clean, poisoned] = bdguard::synthetic::write_pair(csaw, dir, "valid", n, 1);
  const std::string model = csaw + "/lab3_bd_weights.h5";

  // 1. bdguard prune, the whole sweep, as a user runs it (process start to exit).
  std::string out = dir + "/prune-out";
  fs::remove_all(out);
  std::string cmd = bdguard + " prune --quiet --model " + model + " --arch deepid --clean " +
                    clean + " --poisoned " + poisoned + " --out " + out + " > " + dir +
                    "/prune.log";
  auto t0 = Clock::now();
  int rc = std::system(cmd.c_str());
  double fast_s = since(t0);
  if (rc != 0) {
    std::fprintf(stderr, "bdguard prune failed (%d): %s\n", rc, cmd.c_str());
    return 1;
  }
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  std::printf(
      "bdguard prune (fast, 60 steps, load + forward + sweep + save): %.2f s, peak RSS %.0f MiB\n",
      fast_s, static_cast<double>(ru.ru_maxrss) / 1024.0);

  // 2. The plain method, in-process, on the same files.
  bdguard::Model m = bdguard::load_model(model, {"deepid", ""});
  bdguard::LabDataset c(clean, m.input_shape()), p(poisoned, m.input_shape());
  bdguard::SweepOptions so;
  so.stop_drop = std::numeric_limits<double>::infinity();
  // Stop the plain sweep after `plain_steps` steps by bounding its accuracy drop? No:
  // run K steps by pruning a copy ourselves, the way run_sweep_plain does per step.
  auto t1 = Clock::now();
  std::vector<double> mean = bdguard::mean_activations(m, m.find("conv_3"), c, 512);
  auto order = bdguard::pruning_order(mean);
  bdguard::Model work = m.clone();
  int steps = std::min(plain_steps, 61);
  for (int s = 0; s < steps; ++s) {
    if (s > 0)
      bdguard::prune_channel(work.layer(static_cast<size_t>(work.find("conv_3"))),
                             order[static_cast<size_t>(s - 1)]);
    bdguard::predict_dataset({&work}, c, 512);
    bdguard::predict_dataset({&work}, p, 512);
  }
  double plain_s = since(t1);
  double plain_full = steps == 61 ? plain_s : plain_s / steps * 61;
  std::printf("plain method: %d steps in %.2f s (%.2f s/step)%s: %.1f s for the whole sweep\n",
              steps, plain_s, plain_s / steps, steps == 61 ? "" : ", extrapolated to 61 steps",
              plain_full);
  std::printf("speedup: %.1fx\n", plain_full / fast_s);
  if (keep.empty()) fs::remove_all(dir);
  return 0;
}
