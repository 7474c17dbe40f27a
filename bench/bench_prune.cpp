// Times `bdguard prune` (the fast, exact sweep) on lab-sized data against the plain
// method (zero the channel, re-run the whole model on all the data) in the same run.
//
// usage: bench_prune [--n 11547] [--plain-steps K] [--runs R] [--csaw DIR] [--bdguard PATH]
//                    [--keep DIR]
// Data: noisy, shifted, re-lit copies of the fixture faces, in the lab's format.
// The plain method runs K steps (default: all 61) and its time is reported per step
// and for the whole sweep (extrapolated from K steps when K < 61, and said so).
// `bdguard prune` runs R times (default 5), spread over the plain method's run, and
// the median counts: a shared VM's speed wanders by 10-20 % over minutes.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

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
  int plain_steps = 61, runs = 5;
  std::string csaw = "../shared/fixtures/csaw", bdguard = "./build/bdguard", keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--n") n = std::stoll(argv[i + 1]);
    if (a == "--plain-steps") plain_steps = std::stoi(argv[i + 1]);
    if (a == "--runs") runs = std::max(1, std::stoi(argv[i + 1]));
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
  ::sync();  // the 716 MB just written are not flushed to disk during the timed runs

  // 1. bdguard prune, the whole sweep, as a user runs it (process start to exit).
  std::string out = dir + "/prune-out";
  std::string cmd = bdguard + " prune --quiet --model " + model + " --arch deepid --clean " +
                    clean + " --poisoned " + poisoned + " --out " + out + " > " + dir +
                    "/prune.log";
  std::vector<double> fast_runs;
  auto run_fast = [&] {
    fs::remove_all(out);
    ::sleep(1);  // this process' BLAS and OpenMP threads stop spinning after a plain step
    auto t0 = Clock::now();
    int rc = std::system(cmd.c_str());
    fast_runs.push_back(since(t0));
    if (rc != 0) {
      std::fprintf(stderr, "bdguard prune failed (%d): %s\n", rc, cmd.c_str());
      std::exit(1);
    }
  };

  // 2. The plain method, in-process, on the same files. The runs of bdguard prune are
  // spread over it (the first before its first step, the last after its last), so both
  // see the machine in the same state: a shared VM's speed wanders over minutes.
  bdguard::Model m = bdguard::load_model(model, {"deepid", ""});
  bdguard::LabDataset c(clean, m.input_shape()), p(poisoned, m.input_shape());
  const int steps = std::min(plain_steps, 61);
  std::vector<int> fast_before;  // plain step before which a run happens (steps: after)
  for (int r = 0; r < runs; ++r) fast_before.push_back(runs == 1 ? 0 : r * steps / (runs - 1));
  size_t next = 0;
  auto fast_runs_due = [&](int s) {
    while (next < fast_before.size() && fast_before[next] == s) {
      run_fast();
      ++next;
    }
  };
  fast_runs_due(0);
  auto t1 = Clock::now();
  const bdguard::ChannelUnit conv3 = bdguard::conv_unit(m, m.find("conv_3"));
  std::vector<double> mean = bdguard::mean_activations(m, conv3, c, 512);
  auto order = bdguard::pruning_order(mean);
  bdguard::Model work = m.clone();
  double plain_s = 0;
  for (int s = 0; s < steps; ++s) {
    if (s > 0) {
      fast_runs_due(s);
      t1 = Clock::now();
      bdguard::zero_channel(work, conv3, order[static_cast<size_t>(s - 1)]);
    }
    bdguard::predict_dataset({&work}, c, 512);
    bdguard::predict_dataset({&work}, p, 512);
    plain_s += since(t1);
  }
  fast_runs_due(steps);

  std::vector<double> sorted = fast_runs;
  std::sort(sorted.begin(), sorted.end());
  const double fast_s = sorted[sorted.size() / 2];
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  std::printf("bdguard prune (fast, 60 steps, load + forward + sweep + save): %.2f s", fast_s);
  if (runs > 1) {
    std::printf(" (median of %d runs:", runs);
    for (double s : fast_runs) std::printf(" %.2f", s);
    std::printf(")");
  }
  std::printf(", peak RSS %.0f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  double plain_full = steps == 61 ? plain_s : plain_s / steps * 61;
  std::printf("plain method: %d steps in %.2f s (%.2f s/step)%s: %.1f s for the whole sweep\n",
              steps, plain_s, plain_s / steps, steps == 61 ? "" : ", extrapolated to 61 steps",
              plain_full);
  std::printf("speedup: %.1fx\n", plain_full / fast_s);
  if (keep.empty()) fs::remove_all(dir);
  return 0;
}
