// Keras model_config documents: parsing them safely and building the graph.
#include <fstream>
#include <map>
#include <set>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "hdf5/h5.h"
#include "layers.h"

namespace bdguard {
namespace {

constexpr size_t kMaxLayers = 10000;
constexpr size_t kMaxConfigBytes = size_t{16} << 20;
constexpr int kMaxJsonDepth = 64;

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

struct RawLayer {
  keras::LayerDoc doc;
  std::vector<std::string> inbound;
};

// Entry `i` of a config's layer list: its name, class and config (not its inputs).
RawLayer raw_layer(const nlohmann::json& l, const std::string& origin, size_t i) {
  if (!l.is_object() || !l.contains("class_name") || !l["class_name"].is_string()) {
    bad(origin, "layers[" + std::to_string(i) + "]", "an object with a class_name",
        l.dump().substr(0, 60));
  }
  RawLayer r;
  r.doc.name = layer_name_of(l, origin, i);
  r.doc.class_name = l["class_name"].get<std::string>();
  r.doc.config = l.contains("config") ? l["config"] : nlohmann::json::object();
  r.doc.origin = origin;
  return r;
}

}  // namespace

Model keras_model_from_config(const nlohmann::json& doc, const std::string& origin) {
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
      r.inbound = inbound_names(cfg["layers"][i], origin, r.doc.name);
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
      if (i == 0 && r.doc.class_name != "InputLayer") {
        RawLayer in;
        in.doc.name = r.doc.name + "_input";
        in.doc.class_name = "InputLayer";
        in.doc.origin = origin;
        in.doc.config = {{"batch_input_shape", r.doc.config.contains("batch_input_shape")
                                                   ? r.doc.config["batch_input_shape"]
                                                   : nlohmann::json()}};
        prev = in.doc.name;
        raw.push_back(std::move(in));
      }
      if (!prev.empty()) r.inbound = {prev};
      prev = r.doc.name;
      raw.push_back(std::move(r));
    }
    input_name = raw.front().doc.name;
    output_name = raw.back().doc.name;
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
    if (!by_name.emplace(raw[i].doc.name, i).second) {
      bad(origin, "layers", "unique layer names", "'" + raw[i].doc.name + "' twice");
    }
  }
  for (const auto& r : raw) {
    for (const auto& in : r.inbound) {
      if (!by_name.count(in)) {
        bad(origin, "layer '" + r.doc.name + "' inbound_nodes", "the name of a layer",
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
        bad(origin, "layer '" + raw[i].doc.name + "'", "an acyclic graph", "a cycle");
    }
  }

  Model m;
  m.origin = origin;
  m.keras_config = doc;
  std::map<std::string, int> output_of;
  for (size_t i : order) {
    const RawLayer& r = raw[i];
    const keras::LayerDoc& l = r.doc;
    if (l.name == input_name && l.class_name != "InputLayer") {
      bad(origin, "input_layers", "an InputLayer", "'" + l.name + "' (" + l.class_name + ")");
    }
    if (l.class_name == "InputLayer") {
      if (!r.inbound.empty()) bad(origin, "layer '" + l.name + "'", "no inputs", "some");
      if (l.name != input_name) {
        bad(origin, "layer '" + l.name + "'", "a single model input", "a second input");
      }
      const int node = m.add_input(l.name, keras::input_dims(l));
      m.node(static_cast<size_t>(node)).layer_class = "InputLayer";
      output_of[l.name] = node;
      continue;
    }
    if (r.inbound.empty()) {
      // Refuse an unknown class (a Lambda above all) before complaining about inputs.
      keras::require_known(l);
      bad(origin, "layer '" + l.name + "' inbound_nodes", "at least one input", "none");
    }
    std::vector<int> in;
    for (const auto& name : r.inbound) in.push_back(output_of.at(name));
    output_of[l.name] = keras::add_layer(m, l, in);
  }
  m.set_outputs({output_of.at(output_name)});
  return m;
}

nlohmann::json parse_model_config(const std::string& text, const std::string& origin) {
  if (text.size() > kMaxConfigBytes) {
    fail<LimitExceeded>(origin, "model_config", "at most 16 MiB of JSON",
                        std::to_string(text.size()) + " bytes");
  }
  // `depth` counts the containers around the event: an object or array opened at
  // depth d is the (d + 1)-th level of nesting.
  auto depth_guard = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth) {
      fail<LimitExceeded>(origin, "model_config", "JSON nested at most 64 deep", "deeper nesting");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, depth_guard);
  } catch (const nlohmann::json::exception& e) {
    fail(origin, "model_config", "valid JSON", e.what());
  }
}

nlohmann::json read_config_attr(const h5::File& f) {
  std::string text = h5::read_string_attr(f, "/", "model_config", kMaxConfigBytes);
  return parse_model_config(text, f.path());
}

nlohmann::json read_architecture(const ArchSource& arch) {
  if (!arch.builtin.empty()) return builtin_architecture(arch.builtin);
  require_regular_file(arch.file);  // opening a FIFO would block; /dev/zero has no end
  std::ifstream in(arch.file, std::ios::binary);
  if (!in) fail<IoError>(arch.file, "", "a readable file", std::strerror(errno));
  char magic[8] = {};
  in.read(magic, 8);
  if (std::string(magic, 8) == std::string("\x89HDF\r\n\x1a\n", 8)) {
    h5::File f = h5::File::open(arch.file);
    if (!h5::has_attr(f, "/", "model_config")) {
      fail(arch.file, "/@model_config", "a full Keras model (model.save)", "a weights-only file");
    }
    return read_config_attr(f);
  }
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  if (size > kMaxConfigBytes) {
    fail<LimitExceeded>(arch.file, "", "at most 16 MiB of JSON", std::to_string(size) + " bytes");
  }
  in.seekg(0);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  nlohmann::json doc = parse_model_config(text, arch.file);
  // A file holding the model_config attribute's text, or a to_json() document.
  if (doc.is_object() && doc.contains("model_config") && doc["model_config"].is_object()) {
    return doc["model_config"];
  }
  return doc;
}

}  // namespace bdguard
