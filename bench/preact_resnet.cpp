#include "preact_resnet.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

#include "bdguard/threads.h"

namespace bench {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t k = v.size() / 2;
  return v.size() % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
}

void set_threads(int n) { bdguard::set_compute_threads(n); }

TempFolder::TempFolder(const std::string& dir) {
  if (!dir.empty()) {
    std::filesystem::create_directories(dir);
    path = dir;
    keep = true;
    return;
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "bdguard-bench-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary folder");
  path = tmpl;
}

TempFolder::~TempFolder() {
  if (!keep) std::filesystem::remove_all(path);
}

// ---- The network in the C++ frontend ------------------------------------------------

namespace nn = torch::nn;

PreActBlockImpl::PreActBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  bn1 = register_module("bn1", nn::BatchNorm2d(in_planes));
  conv1 = register_module(
      "conv1",
      nn::Conv2d(nn::Conv2dOptions(in_planes, planes, 3).stride(stride).padding(1).bias(false)));
  bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  conv2 = register_module(
      "conv2", nn::Conv2d(nn::Conv2dOptions(planes, planes, 3).stride(1).padding(1).bias(false)));
  if (stride != 1 || in_planes != planes) {
    shortcut = register_module(
        "shortcut", nn::Sequential(nn::Conv2d(
                        nn::Conv2dOptions(in_planes, planes, 1).stride(stride).bias(false))));
  }
}

torch::Tensor PreActBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = torch::relu(bn1(x));
  torch::Tensor sc = shortcut ? shortcut->forward(out) : x;
  out = conv1(out);
  out = conv2(torch::relu(bn2(out)));
  out += sc;
  return out;
}

PreActResNet18Impl::PreActResNet18Impl(int64_t classes) {
  conv1 = register_module("conv1",
                          nn::Conv2d(nn::Conv2dOptions(3, 64, 3).stride(1).padding(1).bias(false)));
  int64_t in_planes = 64;
  auto layer = [&](int64_t planes, int64_t stride) {
    nn::Sequential s(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1));
    in_planes = planes;
    return s;
  };
  layer1 = register_module("layer1", layer(64, 1));
  layer2 = register_module("layer2", layer(128, 2));
  layer3 = register_module("layer3", layer(256, 2));
  layer4 = register_module("layer4", layer(512, 2));
  linear = register_module("linear", nn::Linear(512, classes));
}

torch::Tensor PreActResNet18Impl::features(const torch::Tensor& x) {
  torch::Tensor out = conv1(x);
  out = layer4->forward(layer3->forward(layer2->forward(layer1->forward(out))));
  out = torch::avg_pool2d(out, {4, 4});
  return out.view({out.size(0), -1});
}

torch::Tensor PreActResNet18Impl::forward(const torch::Tensor& x) { return linear(features(x)); }

namespace {

// The state_dict names in order, without num_batches_tracked.
std::vector<std::string> state_dict_names() {
  std::vector<std::string> names{"conv1.weight"};
  const char* stats[] = {"weight", "bias", "running_mean", "running_var"};
  for (int l = 1; l <= 4; ++l) {
    for (int b = 0; b < 2; ++b) {
      const std::string p = "layer" + std::to_string(l) + "." + std::to_string(b) + ".";
      for (const char* s : stats) names.push_back(p + "bn1." + s);
      names.push_back(p + "conv1.weight");
      for (const char* s : stats) names.push_back(p + "bn2." + s);
      names.push_back(p + "conv2.weight");
      if (l > 1 && b == 0) names.push_back(p + "shortcut.0.weight");
    }
  }
  names.push_back("linear.weight");
  names.push_back("linear.bias");
  return names;
}

std::map<std::string, torch::Tensor> tensors_of(nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

// Uniform floats in [lo, hi) from a fixed generator: the same values on every machine.
struct Uniform {
  std::mt19937 rng;
  explicit Uniform(uint64_t seed) : rng(static_cast<std::mt19937::result_type>(seed)) {}
  float next(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(rng() >> 8) * (1.0f / 16777216.0f);
  }
  torch::Tensor tensor(at::IntArrayRef sizes, float lo, float hi) {
    torch::Tensor t = torch::empty(sizes, torch::kFloat);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = next(lo, hi);
    return t;
  }
};

}  // namespace

NamedTensors preact_resnet18_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  Uniform u(seed);
  PreActResNet18 net;
  auto all = tensors_of(*net);
  // PyTorch's default initialisation ranges: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  for (const auto& name : state_dict_names()) {
    torch::Tensor t = all.at(name);
    if (name.find("bn") != std::string::npos) continue;
    const int64_t fan_in = t.dim() > 1 ? t.numel() / t.size(0) : 512;
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    t.copy_(u.tensor(t.sizes(), -bound, bound));
  }
  // BatchNorm statistics: cumulative averages over two batches of random images in
  // training mode, then perturbed, with random scales and shifts.
  for (auto& m : net->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<nn::BatchNorm2d>()) {
      bn->options.momentum(c10::nullopt);
      bn->reset_running_stats();
    }
  }
  net->train();
  for (int b = 0; b < 2; ++b) net->forward(random_images(16, seed + 1 + static_cast<uint64_t>(b)));
  net->eval();
  for (auto& m : net->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<nn::BatchNorm2d>()) {
      const auto sizes = bn->running_mean.sizes();
      bn->running_mean += 0.3 * bn->running_var.sqrt() * u.tensor(sizes, -1, 1);
      bn->running_var *= u.tensor(sizes, 0.5f, 2.0f);
      bn->weight.copy_(u.tensor(sizes, 0.5f, 1.5f));
      bn->bias.copy_(u.tensor(sizes, -0.3f, 0.3f));
      bn->options.momentum(0.1);
    }
  }
  // The Linear layer: logits of spread ~1.5 around zero, so that the top-1 varies.
  torch::Tensor f = net->features(random_images(64, seed + 3));
  const double spread = f.std(0).mean().item<double>() + 1e-6;
  torch::Tensor w = u.tensor(net->linear->weight.sizes(), -1.7320508f, 1.7320508f);
  net->linear->weight.copy_(w / spread / std::sqrt(512.0) * 1.5);
  net->linear->bias.copy_(-at::mm(f, net->linear->weight.t()).mean(0) +
                          0.2 * u.tensor({net->linear->bias.size(0)}, -1.7320508f, 1.7320508f));

  NamedTensors out;
  all = tensors_of(*net);
  for (const auto& name : state_dict_names()) out.emplace_back(name, all.at(name).detach().clone());
  return out;
}

PreActResNet18 preact_resnet18_module(const NamedTensors& w) {
  torch::NoGradGuard no_grad;
  PreActResNet18 net;
  auto all = tensors_of(*net);
  for (const auto& [name, t] : w) all.at(name).copy_(t);
  net->eval();
  return net;
}

// ---- The ONNX file --------------------------------------------------------------------

namespace {

onnx::TensorProto tensor_proto(const std::string& name, const torch::Tensor& value) {
  onnx::TensorProto t;
  for (int64_t d : value.sizes()) t.add_dims(d);
  t.set_data_type(value.scalar_type() == torch::kLong ? onnx::TensorProto::INT64
                                                      : onnx::TensorProto::FLOAT);
  if (!name.empty()) t.set_name(name);
  torch::Tensor c = value.contiguous();
  t.set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
  return t;
}

void value_info(onnx::ValueInfoProto* v, const std::string& name,
                const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) {
    if (d < 0) {
      t->mutable_shape()->add_dim()->set_dim_param("N");
    } else {
      t->mutable_shape()->add_dim()->set_dim_value(d);
    }
  }
}

// Nodes named as PyTorch 1.13 names them: the module path and the op type; every
// output "<name>_output_0".
class GraphWriter {
 public:
  explicit GraphWriter(onnx::GraphProto* g) : g_(g) {}
  onnx::NodeProto* node(const std::string& op, const std::string& name,
                        const std::vector<std::string>& inputs, std::string output = "") {
    onnx::NodeProto* n = g_->add_node();
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output.empty() ? name + "_output_0" : output);
    n->set_name(name);
    n->set_op_type(op);
    return n;
  }
  static void ints(onnx::NodeProto* n, const char* name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    for (int64_t x : v) a->add_ints(x);
    a->set_type(onnx::AttributeProto::INTS);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_i(v);
    a->set_type(onnx::AttributeProto::INT);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_f(v);
    a->set_type(onnx::AttributeProto::FLOAT);
  }
  static void text(onnx::NodeProto* n, const char* name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_s(v);
    a->set_type(onnx::AttributeProto::STRING);
  }
  static void tensor(onnx::NodeProto* n, const torch::Tensor& v) {
    auto* a = n->add_attribute();
    a->set_name("value");
    *a->mutable_t() = tensor_proto("", v);
    a->set_type(onnx::AttributeProto::TENSOR);
  }
  // Conv without bias: returns its output.
  std::string conv(const std::string& name, const std::string& x, const std::string& w, int64_t k,
                   int64_t stride) {
    onnx::NodeProto* n = node("Conv", name, {x, w});
    ints(n, "dilations", {1, 1});
    integer(n, "group", 1);
    ints(n, "kernel_shape", {k, k});
    const int64_t p = k / 2;
    ints(n, "pads", {p, p, p, p});
    ints(n, "strides", {stride, stride});
    return n->output(0);
  }
  std::string batch_norm(const std::string& name, const std::string& x, const std::string& p) {
    onnx::NodeProto* n =
        node("BatchNormalization", name,
             {x, p + ".weight", p + ".bias", p + ".running_mean", p + ".running_var"});
    real(n, "epsilon", 1e-5f);
    real(n, "momentum", 0.9f);
    return n->output(0);
  }
  std::string unary(const std::string& op, const std::string& name, const std::string& x) {
    return node(op, name, {x})->output(0);
  }

 private:
  onnx::GraphProto* g_;
};

}  // namespace

std::string preact_resnet18_onnx(const NamedTensors& w) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.set_producer_name("pytorch");
  m.set_producer_version("1.13.0");
  onnx::GraphProto* g = m.mutable_graph();
  GraphWriter gw(g);
  std::string x = gw.conv("/conv1/Conv", "input", "conv1.weight", 3, 1);
  for (int l = 1; l <= 4; ++l) {
    for (int b = 0; b < 2; ++b) {
      const std::string mod = "layer" + std::to_string(l) + "." + std::to_string(b);
      const std::string path = "/layer" + std::to_string(l) + "/" + mod;
      const int64_t stride = l > 1 && b == 0 ? 2 : 1;
      std::string out = gw.unary("Relu", path + "/Relu",
                                 gw.batch_norm(path + "/bn1/BatchNormalization", x, mod + ".bn1"));
      std::string shortcut = x;
      if (l > 1 && b == 0) {
        shortcut =
            gw.conv(path + "/shortcut/shortcut.0/Conv", out, mod + ".shortcut.0.weight", 1, stride);
      }
      out = gw.conv(path + "/conv1/Conv", out, mod + ".conv1.weight", 3, stride);
      out = gw.unary("Relu", path + "/Relu_1",
                     gw.batch_norm(path + "/bn2/BatchNormalization", out, mod + ".bn2"));
      out = gw.conv(path + "/conv2/Conv", out, mod + ".conv2.weight", 3, 1);
      x = gw.node("Add", path + "/Add", {out, shortcut})->output(0);
    }
  }
  // F.avg_pool2d(out, 4): count_include_pad makes the exporter pad by the (zero) padding.
  GraphWriter::tensor(gw.node("Constant", "/Constant", {}), torch::zeros({8}, torch::kLong));
  onnx::NodeProto* pad = gw.node("Pad", "/Pad", {x, "/Constant_output_0"});
  GraphWriter::text(pad, "mode", "constant");
  onnx::NodeProto* pool = gw.node("AveragePool", "/AveragePool", {"/Pad_output_0"});
  GraphWriter::integer(pool, "ceil_mode", 0);
  GraphWriter::ints(pool, "kernel_shape", {4, 4});
  GraphWriter::ints(pool, "pads", {0, 0, 0, 0});
  GraphWriter::ints(pool, "strides", {4, 4});
  // out.view(out.size(0), -1) with a dynamic batch.
  gw.node("Shape", "/Shape", {"/AveragePool_output_0"});
  GraphWriter::tensor(gw.node("Constant", "/Constant_1", {}), torch::zeros({}, torch::kLong));
  GraphWriter::integer(gw.node("Gather", "/Gather", {"/Shape_output_0", "/Constant_1_output_0"}),
                       "axis", 0);
  GraphWriter::tensor(gw.node("Constant", "Constant_66", {}, "onnx::Unsqueeze_170"),
                      torch::zeros({1}, torch::kLong));
  gw.node("Unsqueeze", "/Unsqueeze", {"/Gather_output_0", "onnx::Unsqueeze_170"});
  GraphWriter::tensor(gw.node("Constant", "/Constant_2", {}), torch::full({1}, -1, torch::kLong));
  GraphWriter::integer(
      gw.node("Concat", "/Concat", {"/Unsqueeze_output_0", "/Constant_2_output_0"}), "axis", 0);
  gw.node("Reshape", "/Reshape", {"/AveragePool_output_0", "/Concat_output_0"});
  onnx::NodeProto* gemm = gw.node("Gemm", "/linear/Gemm",
                                  {"/Reshape_output_0", "linear.weight", "linear.bias"}, "output");
  GraphWriter::real(gemm, "alpha", 1.0f);
  GraphWriter::real(gemm, "beta", 1.0f);
  GraphWriter::integer(gemm, "transB", 1);

  g->set_name("torch_jit");
  for (const auto& [name, t] : w) *g->add_initializer() = tensor_proto(name, t);
  value_info(g->add_input(), "input", {-1, 3, 32, 32});
  value_info(g->add_output(), "output", {-1, 10});
  m.add_opset_import()->set_version(13);

  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    if (!m.SerializeToCodedStream(&out)) throw std::runtime_error("cannot serialize the model");
  }
  return bytes;
}

// ---- Data ---------------------------------------------------------------------------

torch::Tensor random_images(int64_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  torch::Tensor x = torch::empty({n, 3, 32, 32}, torch::kFloat);
  float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = static_cast<float>(rng() % 256) / 255.0f;
  return x;
}

torch::Tensor with_trigger(const torch::Tensor& images) {
  torch::Tensor x = images.clone();
  x.narrow(2, 28, 4).narrow(3, 28, 4).fill_(1.0f);
  return x;
}

std::vector<int64_t> eager_labels(PreActResNet18& net, const torch::Tensor& images, int64_t batch,
                                  bool channels_last) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(images.size(0)));
  for (int64_t s = 0; s < images.size(0); s += batch) {
    torch::Tensor x = images.narrow(0, s, std::min(batch, images.size(0) - s));
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    torch::Tensor y = net->forward(x).argmax(1).contiguous();
    out.insert(out.end(), y.data_ptr<int64_t>(), y.data_ptr<int64_t>() + y.numel());
  }
  return out;
}

int64_t count_differences(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::max(a.size(), b.size()));
  int64_t d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += a[i] != b[i];
  return d;
}

// ---- PyTorch eager from Python --------------------------------------------------------

namespace {

const char* kPythonScript =
    R"PY(# PyTorch eager on the bench's weights and images (written by bench/preact_resnet.cpp).
# usage: eager.py DIR THREADS N BATCH nchw|channels_last|export
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class PreActBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet18(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, 1)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes, stride):
        layers = []
        for s in [stride, 1]:
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


d, threads, n, batch, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
m = PreActResNet18().eval()
sd = m.state_dict()
entries = [line.split() for line in open(d + "/weights.txt")]
flat = torch.from_file(d + "/weights.bin", size=sum(int(k) for _, k in entries), dtype=torch.float32)
off = 0
for name, k in entries:
    sd[name].copy_(flat[off:off + int(k)].view_as(sd[name]))
    off += int(k)
if mode == "export":  # what the exporter itself writes for these weights
    torch.onnx.export(m, torch.zeros(1, 3, 32, 32), d + "/torch_export.onnx", opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    sys.exit(0)
x = torch.from_file(d + "/images.bin", size=n * 3 * 32 * 32, dtype=torch.float32).view(n, 3, 32, 32)
fmt = torch.channels_last if mode == "channels_last" else torch.contiguous_format
m = m.to(memory_format=fmt)
with torch.no_grad():
    m(x[:batch].contiguous(memory_format=fmt))  # warm-up
    t = time.perf_counter()
    labels = [m(x[s:s + batch].contiguous(memory_format=fmt)).argmax(1) for s in range(0, n, batch)]
    seconds = time.perf_counter() - t
open(d + "/labels.bin", "wb").write(torch.cat(labels).to(torch.int64).numpy().tobytes())
print(json.dumps({"seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads()}))
)PY";

void write_bytes(const std::string& path, const void* data, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

std::string find_python_with_torch(const std::string& python) {
  std::vector<std::string> candidates;
  if (!python.empty()) candidates.push_back(python);
  candidates.push_back("python3");
  candidates.push_back("/usr/bin/python3");
  for (const auto& py : candidates) {
    const std::string cmd = py + " -c 'import torch' > /dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

void write_python_inputs(const std::string& dir, const NamedTensors& w,
                         const torch::Tensor& images) {
  std::ostringstream names;
  std::vector<float> flat;
  for (const auto& [name, t] : w) {
    names << name << " " << t.numel() << "\n";
    torch::Tensor c = t.contiguous();
    flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  const std::string text = names.str();
  write_bytes(dir + "/weights.txt", text.data(), text.size());
  write_bytes(dir + "/weights.bin", flat.data(), flat.size() * sizeof(float));
  torch::Tensor x = images.contiguous();
  write_bytes(dir + "/images.bin", x.data_ptr<float>(), x.nbytes());
  write_bytes(dir + "/eager.py", kPythonScript, std::strlen(kPythonScript));
}

double run_python(const std::string& python, const std::string& dir, int threads, int64_t n,
                  int64_t batch, bool channels_last, std::vector<int64_t>* labels) {
  const std::string out = dir + "/python.json";
  const std::string cmd = python + " " + dir + "/eager.py " + dir + " " + std::to_string(threads) +
                          " " + std::to_string(n) + " " + std::to_string(batch) + " " +
                          (channels_last ? "channels_last" : "nchw") + " > " + out;
  if (std::system(cmd.c_str()) != 0) return -1;
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  const auto at = line.find("\"seconds\": ");
  if (at == std::string::npos) return -1;
  const double seconds = std::stod(line.substr(at + 11));
  if (labels != nullptr) {
    labels->assign(static_cast<size_t>(n), -1);
    std::ifstream lb(dir + "/labels.bin", std::ios::binary);
    lb.read(reinterpret_cast<char*>(labels->data()),
            static_cast<std::streamsize>(sizeof(int64_t) * labels->size()));
  }
  return seconds;
}

bool export_with_python(const std::string& python, const std::string& dir) {
  const std::string cmd =
      python + " " + dir + "/eager.py " + dir + " 1 0 1 export > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace bench
