// Building the layer graph from a Keras model_config, and running it.
#include "bdguard/model.h"

#include <ATen/ATen.h>

#include <deque>
#include <set>

#include "bdguard/error.h"

namespace bdguard {
namespace {

constexpr size_t kMaxLayers = 10000;
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxActivationElements = int64_t{1} << 28;

[[noreturn]] void bad(const std::string& origin, const std::string& object,
                      const std::string& expected, const std::string& found) {
  fail(origin, "model_config: " + object, expected, found);
}

std::string layer_name_of(const nlohmann::json& layer, const std::string& origin, size_t i) {
  const auto* name = layer.contains("name") ? &layer["name"] : nullptr;
  if ((!name || !name->is_string()) && layer.contains("config") && layer["config"].is_object() &&
      layer["config"].contains("name")) {
    name = &layer["config"]["name"];
  }
  if (!name || !name->is_string() || name->get<std::string>().empty() ||
      name->get<std::string>().size() > 256) {
    std::string found = !name                ? "none"
                        : !name->is_string() ? name->dump().substr(0, 60)
                        : name->get<std::string>().empty()
                            ? "an empty name"
                            : std::to_string(name->get<std::string>().size()) + " characters";
    bad(origin, "layers[" + std::to_string(i) + "].name", "a name of 1 to 256 characters", found);
  }
  const std::string n = name->get<std::string>();
  if (n.find('/') != std::string::npos || n == "." || n == "..") {
    bad(origin, "layers[" + std::to_string(i) + "].name", "a name without '/'", "'" + n + "'");
  }
  return n;
}

// "inbound_nodes": [[["conv_1", 0, 0, {}], ...]] (Keras 2.x): the layer's one call.
std::vector<std::string> inbound_names(const nlohmann::json& layer, const std::string& origin,
                                       const std::string& name) {
  std::vector<std::string> out;
  if (!layer.contains("inbound_nodes")) return out;
  const auto& nodes = layer["inbound_nodes"];
  if (!nodes.is_array()) bad(origin, "layer '" + name + "' inbound_nodes", "a list", nodes.dump());
  if (nodes.empty()) return out;
  if (nodes.size() > 1) {
    bad(origin, "layer '" + name + "' inbound_nodes",
        "one call of the layer (shared layers are not supported)",
        std::to_string(nodes.size()) + " calls");
  }
  const auto& node = nodes[0];
  if (!node.is_array()) {
    bad(origin, "layer '" + name + "' inbound_nodes", "Keras 2.x lists of [layer, node, tensor]",
        node.is_object() ? "a Keras 3 node" : node.dump().substr(0, 60));
  }
  for (const auto& in : node) {
    if (!in.is_array() || in.empty() || !in[0].is_string()) {
      bad(origin, "layer '" + name + "' inbound_nodes", "[layer, node, tensor, kwargs] entries",
          in.dump().substr(0, 60));
    }
    if (in.size() > 2 && in[2].is_number_integer() && in[2].get<int64_t>() != 0) {
      bad(origin, "layer '" + name + "' inbound_nodes", "tensor index 0",
          std::to_string(in[2].get<int64_t>()));
    }
    out.push_back(in[0].get<std::string>());
  }
  return out;
}

std::string io_layer_name(const nlohmann::json& v, const std::string& origin, const char* what) {
  // [["input", 0, 0]] or ["input", 0, 0]
  const nlohmann::json* e = &v;
  if (e->is_array() && e->size() == 1 && (*e)[0].is_array()) e = &(*e)[0];
  if (!e->is_array() || e->empty() || !(*e)[0].is_string()) {
    bad(origin, what, "exactly one [layer, node, tensor] entry", v.dump().substr(0, 80));
  }
  return (*e)[0].get<std::string>();
}

Shape input_shape_of(const nlohmann::json& cfg, const std::string& origin,
                     const std::string& name) {
  const nlohmann::json* s = nullptr;
  for (const char* key : {"batch_input_shape", "batch_shape"}) {
    if (cfg.is_object() && cfg.contains(key) && cfg[key].is_array()) s = &cfg[key];
  }
  if (!s) bad(origin, "layer '" + name + "'", "a batch_input_shape", "none");
  if (s->size() < 2 || s->size() > 4) {
    bad(origin, "layer '" + name + "' batch_input_shape", "(None, H, W, C) or (None, features)",
        s->dump());
  }
  Shape shape;
  int64_t total = 1;
  for (size_t i = 1; i < s->size(); ++i) {
    const auto& d = (*s)[i];
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxDim) {
      bad(origin, "layer '" + name + "' batch_input_shape",
          "dimensions in [1, " + std::to_string(kMaxDim) + "]", s->dump());
    }
    shape.push_back(d.get<int64_t>());
    total *= shape.back();
    if (total > kMaxActivationElements) {
      throw LimitExceeded(describe(origin, "model_config: layer '" + name + "' batch_input_shape",
                                   "at most 2^28 elements per image", s->dump()));
    }
  }
  return shape;
}

struct RawLayer {
  std::string name, class_name;
  nlohmann::json config;
  std::vector<std::string> inbound;
};

// Entry `i` of a config's layer list: its name, class and config (not its inputs).
RawLayer raw_layer(const nlohmann::json& l, const std::string& origin, size_t i) {
  if (!l.is_object() || !l.contains("class_name") || !l["class_name"].is_string()) {
    bad(origin, "layers[" + std::to_string(i) + "]", "an object with a class_name",
        l.dump().substr(0, 60));
  }
  RawLayer r;
  r.name = layer_name_of(l, origin, i);
  r.class_name = l["class_name"].get<std::string>();
  r.config = l.contains("config") ? l["config"] : nlohmann::json::object();
  return r;
}

}  // namespace

Model::Model() = default;
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Model Model::clone() const {
  Model m;
  m.config_ = config_;
  for (const auto& l : layers_) m.layers_.push_back(l->clone());
  m.input_ = input_;
  m.output_ = output_;
  m.input_scale = input_scale;
  m.source_path = source_path;
  m.weights_only = weights_only;
  return m;
}

Model Model::from_config(const nlohmann::json& doc, const std::string& origin) {
  if (!doc.is_object() || !doc.contains("class_name") || !doc["class_name"].is_string() ||
      !doc.contains("config")) {
    bad(origin, "top level", "{\"class_name\": ..., \"config\": ...}", "another document");
  }
  const std::string cls = doc["class_name"].get<std::string>();
  const auto& cfg = doc["config"];
  std::vector<RawLayer> raw;
  std::string input_name, output_name;

  if (cls == "Functional" || cls == "Model") {
    if (!cfg.is_object() || !cfg.contains("layers") || !cfg["layers"].is_array()) {
      bad(origin, "config", "an object with a list of layers", "none");
    }
    for (size_t i = 0; i < cfg["layers"].size(); ++i) {
      RawLayer r = raw_layer(cfg["layers"][i], origin, i);
      r.inbound = inbound_names(cfg["layers"][i], origin, r.name);
      raw.push_back(std::move(r));
    }
    if (!cfg.contains("input_layers") || !cfg.contains("output_layers")) {
      bad(origin, "config", "input_layers and output_layers", "none");
    }
    input_name = io_layer_name(cfg["input_layers"], origin, "input_layers");
    output_name = io_layer_name(cfg["output_layers"], origin, "output_layers");
  } else if (cls == "Sequential") {
    const nlohmann::json* layers = cfg.is_array() ? &cfg : nullptr;
    if (cfg.is_object() && cfg.contains("layers") && cfg["layers"].is_array()) {
      layers = &cfg["layers"];
    }
    if (!layers || layers->empty()) bad(origin, "config", "a list of layers", "none");
    std::string prev;
    for (size_t i = 0; i < layers->size(); ++i) {
      RawLayer r = raw_layer((*layers)[i], origin, i);
      if (i == 0 && r.class_name != "InputLayer") {
        RawLayer in;
        in.name = r.name + "_input";
        in.class_name = "InputLayer";
        in.config = {{"batch_input_shape", r.config.contains("batch_input_shape")
                                               ? r.config["batch_input_shape"]
                                               : nlohmann::json()}};
        prev = in.name;
        raw.push_back(std::move(in));
      }
      if (!prev.empty()) r.inbound = {prev};
      prev = r.name;
      raw.push_back(std::move(r));
    }
    input_name = raw.front().name;
    output_name = raw.back().name;
  } else {
    bad(origin, "class_name", "Functional, Model or Sequential", "'" + cls + "'");
  }
  if (raw.size() > kMaxLayers) {
    throw LimitExceeded(
        describe(origin, "model_config", "at most 10000 layers", std::to_string(raw.size())));
  }

  // Names: unique, every inbound name known.
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (!by_name.emplace(raw[i].name, i).second) {
      bad(origin, "layers", "unique layer names", "'" + raw[i].name + "' twice");
    }
  }
  for (const auto& r : raw) {
    for (const auto& in : r.inbound) {
      if (!by_name.count(in)) {
        bad(origin, "layer '" + r.name + "' inbound_nodes", "the name of a layer",
            "'" + in + "', which no layer has");
      }
    }
  }
  for (const auto& n : {input_name, output_name}) {
    if (!by_name.count(n)) bad(origin, "input_layers/output_layers", "a layer name", "'" + n + "'");
  }

  // Topological order (Kahn), keeping the file's order among ready layers.
  std::vector<int> indegree(raw.size(), 0);
  std::vector<std::vector<size_t>> out_edges(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    for (const auto& in : raw[i].inbound) {
      out_edges[by_name[in]].push_back(i);
      ++indegree[i];
    }
  }
  std::set<size_t> ready;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (indegree[i] == 0) ready.insert(i);
  }
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (size_t j : out_edges[i]) {
      if (--indegree[j] == 0) ready.insert(j);
    }
  }
  if (order.size() != raw.size()) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (indegree[i] > 0)
        bad(origin, "layer '" + raw[i].name + "'", "an acyclic graph", "a cycle");
    }
  }

  Model m;
  m.config_ = doc;
  std::map<std::string, int> index;
  for (size_t i : order) {
    const RawLayer& r = raw[i];
    if (r.name == input_name && r.class_name != "InputLayer") {
      bad(origin, "input_layers", "an InputLayer", "'" + r.name + "' (" + r.class_name + ")");
    }
    std::unique_ptr<Layer> layer;
    try {
      layer = make_layer(r.class_name, r.name);
    } catch (const UnsupportedLayer& e) {
      throw UnsupportedLayer(origin + ": " + e.what());  // the registry does not know the file
    }
    layer->config = r.config;
    std::vector<Shape> in_shapes;
    if (r.class_name == "InputLayer") {
      if (!r.inbound.empty()) bad(origin, "layer '" + r.name + "'", "no inputs", "some");
      in_shapes.push_back(input_shape_of(r.config, origin, r.name));
    } else if (r.inbound.empty()) {
      bad(origin, "layer '" + r.name + "' inbound_nodes", "at least one input", "none");
    }
    for (const auto& in : r.inbound) {
      layer->inputs.push_back(index.at(in));
      in_shapes.push_back(m.layers_[static_cast<size_t>(index.at(in))]->output_shape);
    }
    try {
      layer->output_shape = layer->build(in_shapes);
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind("model_config", 0) == 0) msg = origin + ": " + msg;
      if (dynamic_cast<const ShapeMismatch*>(&e)) throw ShapeMismatch(msg);
      throw UnsupportedLayer(msg);
    }
    int64_t total = 1;
    for (int64_t d : layer->output_shape) {
      if (d < 1 || d > kMaxDim || total > kMaxActivationElements / d) {
        throw LimitExceeded(describe(origin, "model_config: layer '" + r.name + "' output",
                                     "a shape of positive dimensions, at most 2^28 elements",
                                     shape_str(layer->output_shape)));
      }
      total *= d;
    }
    index[r.name] = static_cast<int>(m.layers_.size());
    m.layers_.push_back(std::move(layer));
  }
  m.input_ = index.at(input_name);
  m.output_ = index.at(output_name);
  for (size_t i = 0; i < m.layers_.size(); ++i) {
    if (m.layers_[i]->class_name == "InputLayer" && static_cast<int>(i) != m.input_) {
      bad(origin, "layer '" + m.layers_[i]->name + "'", "a single model input", "a second input");
    }
  }
  return m;
}

int Model::find(const std::string& name) const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<int> Model::consumers(int i) const {
  std::vector<int> out;
  for (size_t j = 0; j < layers_.size(); ++j) {
    for (int in : layers_[j]->inputs) {
      if (in == i) {
        out.push_back(static_cast<int>(j));
        break;
      }
    }
  }
  return out;
}

int64_t Model::num_classes() const {
  const Shape& s = output_shape();
  return s.empty() ? 1 : s.back();
}

std::vector<at::Tensor> Model::run(const at::Tensor& x, const std::vector<int>& wanted,
                                   const std::map<int, at::Tensor>& given) const {
  std::vector<char> needed(layers_.size(), 0);
  std::deque<int> todo(wanted.begin(), wanted.end());
  while (!todo.empty()) {
    int i = todo.front();
    todo.pop_front();
    if (needed[static_cast<size_t>(i)]) continue;
    needed[static_cast<size_t>(i)] = 1;
    if (given.count(i)) continue;
    for (int in : layers_[static_cast<size_t>(i)]->inputs) todo.push_back(in);
  }
  std::vector<at::Tensor> values(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!needed[i]) continue;
    auto g = given.find(static_cast<int>(i));
    if (g != given.end()) {
      values[i] = g->second;
      continue;
    }
    if (static_cast<int>(i) == input_) {
      values[i] = input_scale == 1.0 ? x : x * input_scale;
      continue;
    }
    std::vector<at::Tensor> ins;
    for (int in : layers_[i]->inputs) ins.push_back(values[static_cast<size_t>(in)]);
    values[i] = layers_[i]->forward(ins);
  }
  std::vector<at::Tensor> out;
  for (int w : wanted) out.push_back(values[static_cast<size_t>(w)]);
  return out;
}

at::Tensor Model::forward(const at::Tensor& x) const { return run(x, {output_})[0]; }

std::vector<at::Tensor> Model::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& l : layers_) {
    for (const auto& w : l->weights) out.push_back(w.value);
  }
  return out;
}

at::Tensor predict_labels(const Model& m, const at::Tensor& x, int64_t batch) {
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < x.size(0); s += batch) {
    parts.push_back(m.forward(x.narrow(0, s, std::min(batch, x.size(0) - s))).argmax(1));
  }
  if (parts.empty()) return at::empty({0}, at::kLong);
  return at::cat(parts);
}

}  // namespace bdguard
