// Throughput of `bdguard eval` on a CIFAR-size PreAct-ResNet18 in ONNX (bench/
// preact_resnet.h) against PyTorch eager in the same run: the same network in LibTorch's
// C++ frontend (PyTorch eager's kernels without Python, NCHW and channels-last) and,
// where a Python with torch is installed, PyTorch eager itself under torch.no_grad().
//
// usage: bench_onnx_eval [--images N] [--runs R] [--threads LIST] [--batch B]
//                        [--bdguard PATH] [--python PY] [--no-python] [--keep DIR]
//   --images N     images of 3x32x32 (default 10000)
//   --runs R       timed runs of each way, interleaved; the median counts (default 3)
//   --threads LIST thread counts, comma-separated (default 2,1)
//   --batch B      images per forward pass, for every way (default 512, bdguard's)
//   --bdguard PATH the tool, for the process-level time (default ./build/bdguard)
//   --python PY    a Python with torch (default: python3, then /usr/bin/python3)
//   --keep DIR     write the model and data there and keep them (default: a temporary folder)
// The model (45 MB) and the data (a lab-format HDF5 file, 123 MB for 10,000 images) are
// generated first and not timed. bdguard's time is what `bdguard eval` does: load the
// model, open the file, predict_dataset in batches; the eager ways get the images in
// memory and the network already built. One warm-up batch of each precedes the runs.
#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/memory.h"
#include "bdguard/model_io.h"
#include "preact_resnet.h"

namespace {

using bench::Clock;
using bench::seconds_since;

struct Way {
  std::string name;
  std::vector<double> seconds;
  std::vector<int64_t> labels;
  bool skipped = false;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoi(item));
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  bdguard::use_caching_cpu_allocator();  // as the bdguard tool does
  int64_t n = 10000, batch = bdguard::kDefaultBatch;
  int runs = 3;
  std::vector<int> thread_counts{2, 1};
  std::string tool = "./build/bdguard", python, keep;
  bool no_python = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--images") {
      n = std::stoll(value());
    } else if (a == "--runs") {
      runs = std::max(1, std::stoi(value()));
    } else if (a == "--threads") {
      thread_counts = parse_list(value());
    } else if (a == "--batch") {
      batch = std::stoll(value());
    } else if (a == "--bdguard") {
      tool = value();
    } else if (a == "--python") {
      python = value();
    } else if (a == "--no-python") {
      no_python = true;
    } else if (a == "--keep") {
      keep = value();
    } else {
      std::printf(
          "usage: bench_onnx_eval [--images N] [--runs R] [--threads LIST] [--batch B]\n"
          "                       [--bdguard PATH] [--python PY] [--no-python] [--keep DIR]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  try {
    bench::TempFolder dir(keep);
    auto tg = Clock::now();
    const bench::NamedTensors weights = bench::preact_resnet18_weights(20240601);
    const std::string model = dir.path + "/preact_resnet18.onnx";
    const std::string bytes = bench::preact_resnet18_onnx(weights);
    std::ofstream(model, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const at::Tensor images = bench::random_images(n, 7);
    at::Tensor labels = at::empty({n}, at::kLong);
    std::mt19937 rng(11);
    for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int64_t>(rng() % 10);
    const std::string data = dir.path + "/valid.h5";
    bdguard::write_lab_dataset(data, images, labels);
    std::printf(
        "PreAct-ResNet18 (3x32x32, 10 classes): %s, %.1f MB; %lld images, %.0f MB; made in %.1f "
        "s\n",
        model.c_str(), static_cast<double>(bytes.size()) / 1e6, static_cast<long long>(n),
        static_cast<double>(std::filesystem::file_size(data)) / 1e6, seconds_since(tg));

    if (!no_python) python = bench::find_python_with_torch(python);
    if (no_python || python.empty()) {
      std::printf("Python PyTorch eager: skipped (%s)\n",
                  no_python ? "--no-python" : "no python3 that imports torch");
      python.clear();
    } else {
      bench::write_python_inputs(dir.path, weights, images);
      const bool exported = bench::export_with_python(python, dir.path);
      const bool same = exported && read_file(dir.path + "/torch_export.onnx") == bytes;
      std::printf("Python PyTorch eager: %s; its torch.onnx.export of the same weights: %s\n",
                  python.c_str(),
                  !exported ? "failed"
                  : same    ? "byte-identical to the bench's file"
                            : "DIFFERS from the bench's file");
    }
    std::fflush(stdout);

    bench::PreActResNet18 nchw = bench::preact_resnet18_module(weights);
    bench::PreActResNet18 cl = bench::preact_resnet18_module(weights);
    {
      at::NoGradGuard no_grad;
      for (auto& p : cl->parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
      }
    }

    for (int threads : thread_counts) {
      bench::set_threads(threads);
      std::vector<Way> ways(6);
      ways[0].name = "bdguard (load_model + predict_dataset)";
      ways[1].name = "bdguard eval, process start to exit";
      ways[2].name = "LibTorch eager, NCHW";
      ways[3].name = "LibTorch eager, channels-last";
      ways[4].name = "Python PyTorch eager, NCHW";
      ways[5].name = "Python PyTorch eager, channels-last";
      if (python.empty()) ways[4].skipped = ways[5].skipped = true;
      {  // warm-up: one batch each, untimed
        bdguard::Model m = bdguard::load_model(model);
        bdguard::LabDataset d(data, m.input_shape());
        at::NoGradGuard no_grad;
        m.forward(d.read(0, std::min(batch, n)).images);
        bench::eager_labels(nchw, images.narrow(0, 0, std::min(batch, n)), batch, false);
        bench::eager_labels(cl, images.narrow(0, 0, std::min(batch, n)), batch, true);
      }
      const std::string cli = tool + " eval --quiet --model " + model + " --clean " + data +
                              " --batch " + std::to_string(batch) + " --threads " +
                              std::to_string(threads) + " > /dev/null";
      for (int r = 0; r < runs; ++r) {
        auto t = Clock::now();
        {
          bdguard::Model m = bdguard::load_model(model);
          bdguard::LabDataset d(data, m.input_shape());
          ways[0].labels = bdguard::predict_dataset({&m}, d, batch)[0];
        }
        ways[0].seconds.push_back(seconds_since(t));
        t = Clock::now();
        if (std::system(cli.c_str()) != 0) throw std::runtime_error("failed: " + cli);
        ways[1].seconds.push_back(seconds_since(t));
        t = Clock::now();
        ways[2].labels = bench::eager_labels(nchw, images, batch, false);
        ways[2].seconds.push_back(seconds_since(t));
        t = Clock::now();
        ways[3].labels = bench::eager_labels(cl, images, batch, true);
        ways[3].seconds.push_back(seconds_since(t));
        for (int k = 4; k < 6 && !python.empty(); ++k) {
          const double s =
              bench::run_python(python, dir.path, threads, n, batch, k == 5, &ways[k].labels);
          if (s < 0) throw std::runtime_error("the Python script failed");
          ways[k].seconds.push_back(s);
        }
      }
      std::printf("\n%d thread%s, %lld images, batches of %lld, median of %d run%s:\n", threads,
                  threads == 1 ? "" : "s", static_cast<long long>(n), static_cast<long long>(batch),
                  runs, runs == 1 ? "" : "s");
      std::printf("%-42s %9s %9s %8s  %s\n", "", "seconds", "images/s", "vs eager",
                  "labels unlike bdguard's; runs");
      const double eager = bench::median(ways[2].seconds);
      for (const auto& w : ways) {
        if (w.skipped) {
          std::printf("%-42s %9s\n", w.name.c_str(), "skipped");
          continue;
        }
        const double s = bench::median(w.seconds);
        const std::string differ =
            w.labels.empty() ? "-"
                             : std::to_string(bench::count_differences(w.labels, ways[0].labels));
        std::printf("%-42s %9.2f %9.1f %7.2fx  %s;", w.name.c_str(), s, static_cast<double>(n) / s,
                    eager / s, differ.c_str());
        for (double x : w.seconds) std::printf(" %.2f", x);
        std::printf("\n");
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
