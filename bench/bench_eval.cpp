// Throughput of `bdguard eval`'s work: load the BadNet, then predict_dataset over a
// lab-sized data file (11,547 images of 55x47x3, the lab's NCHW float layout), with
// one thread and with every core, so the speedup is a ratio measured in one run.
//
// Usage: bench_eval [FIXTURES_DIR] [--images N]
//   FIXTURES_DIR  folder with lab3_bd_weights.h5 (default ../shared/fixtures/csaw)
//   --images N    number of generated images (default 11547, the lab's validation set)
// The data (deterministic pseudo-random pixels 0..255 and labels) is written to a
// temporary folder, removed at the end. A warm-up pass over one batch precedes each
// timed run and is not timed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/keras.h"
#include "bdguard/memory.h"
#include "bdguard/threads.h"

namespace {

constexpr int64_t kLabImages = 11547;
constexpr int64_t kClasses = 1283;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void set_threads(int n) { bdguard::set_compute_threads(n); }

// Removes the folder (and the generated data) when the program leaves main.
struct TempFolder {
  std::string path;
  TempFolder() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bdguard-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary folder");
    path = tmpl;
  }
  ~TempFolder() { std::filesystem::remove_all(path); }
};

// `n` images (N, 3, 55, 47) of pixels 0..255 and labels 0..1282, from a fixed seed
// (std::mt19937's sequence is the same everywhere).
std::string write_data(const std::string& path, int64_t n) {
  std::mt19937 rng(20240601);
  at::Tensor x = at::empty({n, 3, 55, 47}, at::kFloat);
  float* px = x.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) px[i] = static_cast<float>(rng() % 256);
  at::Tensor y = at::empty({n}, at::kLong);
  int64_t* py = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) py[i] = static_cast<int64_t>(rng() % kClasses);
  bdguard::write_lab_dataset(path, x, y);
  return path;
}

struct Run {
  double load_s = 0, predict_s = 0;
  std::vector<int64_t> labels;
};

// What `bdguard eval` does: load the model, open the file, predict every image.
Run timed_eval(const std::string& model, const std::string& data, int threads) {
  set_threads(threads);
  {  // warm-up: one batch, untimed
    bdguard::Model m = bdguard::load_model(model, bdguard::ArchSource{"deepid", ""});
    bdguard::LabDataset d(data, m.input_shape());
    at::NoGradGuard no_grad;
    m.forward(d.read(0, std::min<int64_t>(bdguard::kDefaultBatch, d.size())).images);
  }
  Run r;
  auto t0 = Clock::now();
  bdguard::Model m = bdguard::load_model(model, bdguard::ArchSource{"deepid", ""});
  r.load_s = seconds_since(t0);
  auto t1 = Clock::now();
  bdguard::LabDataset d(data, m.input_shape());
  r.labels = bdguard::predict_dataset({&m}, d)[0];
  r.predict_s = seconds_since(t1);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bdguard::use_caching_cpu_allocator();  // as the bdguard tool does
  std::string fixtures = "../shared/fixtures/csaw";
  int64_t n = kLabImages;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--images" && i + 1 < argc) {
      n = std::stoll(argv[++i]);
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_eval [FIXTURES_DIR] [--images N]\n");
      return 0;
    } else {
      fixtures = a;
    }
  }
  const std::string model = fixtures + "/lab3_bd_weights.h5";
  if (!std::filesystem::exists(model)) {
    std::fprintf(stderr, "error: %s: expected the fixture BadNet, found nothing\n", model.c_str());
    return 1;
  }
  try {
    TempFolder tmp;
    auto tg = Clock::now();
    const std::string data = write_data(tmp.path + "/valid.h5", n);
    std::printf("generated %lld images (55x47x3, NCHW float32, %.0f MB) in %.1f s\n",
                static_cast<long long>(n),
                static_cast<double>(std::filesystem::file_size(data)) / 1e6, seconds_since(tg));

    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<int> settings = {1};
    if (cores > 1) settings.push_back(cores);
    std::vector<Run> runs;
    std::printf("%8s %10s %12s %12s\n", "threads", "load s", "predict s", "images/s");
    for (int threads : settings) {
      Run r = timed_eval(model, data, threads);
      double total = r.load_s + r.predict_s;
      std::printf("%8d %10.3f %12.2f %12.0f\n", threads, r.load_s, r.predict_s,
                  static_cast<double>(n) / total);
      std::fflush(stdout);
      runs.push_back(std::move(r));
    }
    if (runs.size() == 2) {
      double t1 = runs[0].load_s + runs[0].predict_s, tn = runs[1].load_s + runs[1].predict_s;
      std::printf("speedup with %d threads: %.2fx; same labels: %s\n", settings[1], t1 / tn,
                  runs[0].labels == runs[1].labels ? "yes" : "NO");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
