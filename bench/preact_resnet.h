// What bench_onnx_eval and bench_onnx_prune share: a CIFAR-size PreAct-ResNet18
// (BackdoorBench's PreActResNet18 as kuangliu/pytorch-cifar wrote it: pre-activation
// BasicBlocks 64-128-256-512, BatchNorm and ReLU before each convolution, a 1x1
// shortcut convolution where the shape changes, F.avg_pool2d(out, 4), out.view(N, -1),
// a Linear layer to 10 classes) with deterministic weights, written as ONNX the way
// torch.onnx.export(..., opset_version=13, training=TrainingMode.PRESERVE, dynamic
// batch) writes it; the same network in LibTorch's C++ frontend (PyTorch eager's
// kernels without Python); and a Python script that times PyTorch eager itself.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t);
double median(std::vector<double> v);
// LibTorch's and OpenBLAS' thread counts.
void set_threads(int n);

// A temporary folder, removed with everything in it when the object goes (unless `keep`).
struct TempFolder {
  std::string path;
  bool keep = false;
  explicit TempFolder(const std::string& dir = "");
  ~TempFolder();
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
};

// The network in LibTorch's C++ frontend, modules named as in PyTorch, so that
// named_parameters() and named_buffers() give the state_dict names ("layer2.0.bn1.weight").
struct PreActBlockImpl : torch::nn::Module {
  PreActBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Sequential shortcut{nullptr};  // null where the block adds its input
};
TORCH_MODULE(PreActBlock);

struct PreActResNet18Impl : torch::nn::Module {
  explicit PreActResNet18Impl(int64_t classes = 10);
  torch::Tensor features(const torch::Tensor& x);  // the Linear layer's input (N, 512)
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(PreActResNet18);

// Parameters and BatchNorm statistics in PyTorch's state_dict order (without
// num_batches_tracked), which is also the order of torch.onnx.export's initializers.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Deterministic weights from `seed` (std::mt19937): PyTorch's default uniform ranges
// for the convolutions; BatchNorm statistics measured on random images (as a trained
// net's are, so activations stay of order 1), then perturbed, with scales in 0.5..1.5
// and shifts in -0.3..0.3; the Linear layer scaled so that the top-1 varies.
NamedTensors preact_resnet18_weights(uint64_t seed);
// The C++ frontend network holding `w`, in eval mode.
PreActResNet18 preact_resnet18_module(const NamedTensors& w);
// The ONNX file's bytes, node for node, name for name what PyTorch 1.13's exporter
// writes for this network (Conv without bias, BatchNormalization, Relu, Add, Pad with
// zero pads and AveragePool 4x4 for F.avg_pool2d, the Shape / Gather / Unsqueeze /
// Concat / Reshape chain of out.view(out.size(0), -1), Gemm transB = 1).
std::string preact_resnet18_onnx(const NamedTensors& w);

// `n` images (n, 3, 32, 32) of pixels k / 255, k in 0..255, from `seed`.
torch::Tensor random_images(int64_t n, uint64_t seed);
// The images with a 4x4 white square in the bottom-right corner (a BadNets trigger).
torch::Tensor with_trigger(const torch::Tensor& images);

// Labels of `images` by the C++ frontend network, in batches of `batch`.
std::vector<int64_t> eager_labels(PreActResNet18& net, const torch::Tensor& images, int64_t batch,
                                  bool channels_last);

// PyTorch eager from Python (a Python with torch), for comparison only. `python` is
// tried first, then python3 and /usr/bin/python3; empty when none imports torch.
std::string find_python_with_torch(const std::string& python);
// Writes what the Python script reads into `dir`: weights.txt (name and size per
// line), weights.bin, images.bin (float32, native order) and the script itself.
void write_python_inputs(const std::string& dir, const NamedTensors& w,
                         const torch::Tensor& images);
// Runs the script: PyTorch eager, torch.no_grad(), batches of `batch`, NCHW or
// channels-last (the model and each batch converted). Returns the forward passes'
// seconds (after one untimed warm-up batch) and the labels; a negative time if it failed.
double run_python(const std::string& python, const std::string& dir, int threads, int64_t n,
                  int64_t batch, bool channels_last, std::vector<int64_t>* labels);

// Has the script export the network with torch.onnx.export (opset 13, PRESERVE, dynamic
// batch) into DIR/torch_export.onnx; false if that failed.
bool export_with_python(const std::string& python, const std::string& dir);

// How many entries differ.
int64_t count_differences(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

}  // namespace bench
