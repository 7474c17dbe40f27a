// The checks read_model makes on a parsed model (listed in proto.h), and the
// topological sort of its nodes.
#include <algorithm>
#include <functional>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "bdguard/error.h"
#include "formats/onnx/proto.h"

namespace bdguard::onnx_io {
namespace {

namespace pb = google::protobuf;

// The checks of proto.h, in the order they are listed there.
class Validator {
 public:
  Validator(const std::string& file, const Limits& limits) : file_(file), limits_(limits) {}

  void model(onnx::ModelProto& m) {
    if (!m.has_graph()) fail<FormatError>(file_, "model", "a graph", "none");
    if (m.ir_version() < kMinIrVersion || m.ir_version() > kMaxIrVersion) {
      fail<UnsupportedLayer>(file_, "ir_version", range(kMinIrVersion, kMaxIrVersion),
                             std::to_string(m.ir_version()));
    }
    opsets(m);
    if (m.functions_size() > 0) {
      fail<UnsupportedLayer>(file_, "function " + quote(m.functions(0).name()),
                             "no model-local functions", "one defined in the model");
    }
    if (m.training_info_size() > 0) {
      fail<UnsupportedLayer>(file_, "training_info", "none (an inference model)",
                             std::to_string(m.training_info_size()) +
                                 (m.training_info_size() == 1 ? " entry" : " entries"));
    }
    graph(*m.mutable_graph());
  }

 private:
  enum class Kind { kInput, kInitializer, kNode };
  struct Def {
    Kind kind;
    int index;
  };

  static std::string range(int64_t lo, int64_t hi) {
    return std::to_string(lo) + ".." + std::to_string(hi);
  }
  static bool default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

  void opsets(const onnx::ModelProto& m) const {
    const onnx::OperatorSetIdProto* found = nullptr;
    for (const auto& o : m.opset_import()) {
      if (!default_domain(o.domain())) {
        fail<UnsupportedLayer>(file_, "opset_import", "only the default domain ('' or 'ai.onnx')",
                               "domain " + quote(o.domain()));
      }
      if (found) {
        fail<FormatError>(file_, "opset_import", "one entry for the default domain",
                          "two (versions " + std::to_string(found->version()) + " and " +
                              std::to_string(o.version()) + ")");
      }
      found = &o;
    }
    if (!found) {
      fail<FormatError>(file_, "opset_import", "one entry for the default domain", "none");
    }
    if (found->version() < kMinOpset || found->version() > kMaxOpset) {
      fail<UnsupportedLayer>(file_, "opset_import", "opset " + range(kMinOpset, kMaxOpset),
                             "opset " + std::to_string(found->version()));
    }
  }

  void check_length(const std::string& object, const std::string& what,
                    const std::string& s) const {
    if (static_cast<int64_t>(s.size()) <= kMaxStringBytes) return;
    fail<LimitExceeded>(file_, object,
                        what + " of at most " + std::to_string(kMaxStringBytes) + " bytes",
                        std::to_string(s.size()) + " bytes");
  }

  void value(const onnx::ValueInfoProto& v, const std::string& object) const {
    if (!v.type().has_tensor_type()) {
      const auto* which = onnx::TypeProto::descriptor()->FindFieldByNumber(v.type().value_case());
      fail<UnsupportedLayer>(file_, object, "a tensor type (TypeProto.tensor_type)",
                             which ? "TypeProto." + which->name() : std::string("no type"));
    }
    const auto& dims = v.type().tensor_type().shape().dim();
    if (dims.size() > kMaxRank) {
      fail<LimitExceeded>(file_, object, "at most " + std::to_string(kMaxRank) + " dims",
                          std::to_string(dims.size()));
    }
    for (int i = 0; i < dims.size(); ++i) {
      const std::string dim = object + " dim " + std::to_string(i);
      if (dims[i].dim_value() < 0) {
        fail<FormatError>(file_, dim, "a size >= 0", std::to_string(dims[i].dim_value()));
      }
      check_length(dim, "a dim_param", dims[i].dim_param());
    }
  }

  void attribute(const onnx::AttributeProto& a, const std::string& object) const {
    using A = onnx::AttributeProto;
    // Each attribute type and the field that carries it.
    struct Field {
      A::AttributeType type;
      const char* name;
      bool (*present)(const A&);
    };
    static constexpr Field kFields[] = {
        {A::FLOAT, "f", [](const A& x) { return x.has_f(); }},
        {A::INT, "i", [](const A& x) { return x.has_i(); }},
        {A::STRING, "s", [](const A& x) { return x.has_s(); }},
        {A::TENSOR, "t", [](const A& x) { return x.has_t(); }},
        {A::GRAPH, "g", [](const A& x) { return x.has_g(); }},
        {A::SPARSE_TENSOR, "sparse_tensor", [](const A& x) { return x.has_sparse_tensor(); }},
        {A::TYPE_PROTO, "tp", [](const A& x) { return x.has_tp(); }},
        {A::FLOATS, "floats", [](const A& x) { return x.floats_size() > 0; }},
        {A::INTS, "ints", [](const A& x) { return x.ints_size() > 0; }},
        {A::STRINGS, "strings", [](const A& x) { return x.strings_size() > 0; }},
        {A::TENSORS, "tensors", [](const A& x) { return x.tensors_size() > 0; }},
        {A::GRAPHS, "graphs", [](const A& x) { return x.graphs_size() > 0; }},
        {A::SPARSE_TENSORS, "sparse_tensors",
         [](const A& x) { return x.sparse_tensors_size() > 0; }},
        {A::TYPE_PROTOS, "type_protos", [](const A& x) { return x.type_protos_size() > 0; }},
    };
    if (a.has_ref_attr_name()) {
      fail<UnsupportedLayer>(file_, object, "a value",
                             "a reference to the function attribute " + quote(a.ref_attr_name()));
    }
    switch (a.type()) {
      case A::FLOAT:
      case A::INT:
      case A::STRING:
      case A::TENSOR:
      case A::FLOATS:
      case A::INTS:
      case A::STRINGS:
      case A::TENSORS:
        break;
      case A::UNDEFINED:
        fail<FormatError>(file_, object, "an attribute type", "none (UNDEFINED)");
      default:
        fail<UnsupportedLayer>(
            file_, object,
            "an attribute of type FLOAT, INT, STRING, TENSOR, FLOATS, INTS, "
            "STRINGS or TENSORS",
            A::AttributeType_Name(a.type()) + (a.type() == A::GRAPH || a.type() == A::GRAPHS
                                                   ? " (a subgraph, as If, Loop and Scan carry)"
                                                   : ""));
    }
    for (const Field& f : kFields) {
      if (f.type != a.type() && f.present(a)) {
        fail<FormatError>(file_, object,
                          "only the field of its type " + A::AttributeType_Name(a.type()),
                          std::string("also '") + f.name + "'");
      }
    }
    if (a.type() == A::TENSOR && !a.has_t()) {
      fail<FormatError>(file_, object, "a tensor in field 't'", "none");
    }
    check_length(object, "a string", a.s());
    for (const std::string& s : a.strings()) check_length(object, "strings", s);
    if (a.has_t()) check_tensor(a.t(), file_, object, limits_.max_tensor_bytes);
    for (int i = 0; i < a.tensors_size(); ++i) {
      check_tensor(a.tensors(i), file_, object + " tensor " + std::to_string(i),
                   limits_.max_tensor_bytes);
    }
  }

  void node(const onnx::NodeProto& n) const {
    const std::string object = node_object(n);
    check_length(object, "a name", n.name());
    check_length(object, "an op_type", n.op_type());
    check_length(object, "a domain", n.domain());
    if (n.op_type().empty()) fail<FormatError>(file_, object, "an op_type", "none");
    if (!default_domain(n.domain())) {
      fail<UnsupportedLayer>(file_, object, "an op of the default domain ('' or 'ai.onnx')",
                             "domain " + quote(n.domain()));
    }
    for (const std::string& s : n.input()) check_length(object, "input names", s);
    for (const std::string& s : n.output()) check_length(object, "output names", s);
    std::unordered_set<std::string_view> names;
    for (const onnx::AttributeProto& a : n.attribute()) {
      const std::string attr = object + " attribute " + quote(a.name());
      check_length(attr, "a name", a.name());
      if (a.name().empty()) fail<FormatError>(file_, attr, "a name", "none");
      if (!names.insert(a.name()).second) {
        fail<FormatError>(file_, attr, "attribute names unique in the node", "a second one");
      }
      attribute(a, attr);
    }
  }

  std::string def_object(const onnx::GraphProto& g, Def d) const {
    switch (d.kind) {
      case Kind::kInput:
        return "graph input " + quote(g.input(d.index).name());
      case Kind::kInitializer:
        return "initializer " + quote(g.initializer(d.index).name());
      case Kind::kNode:
        break;
    }
    return node_object(g.node(d.index));
  }

  void graph(onnx::GraphProto& g) const {
    if (g.sparse_initializer_size() > 0) {
      fail<UnsupportedLayer>(file_,
                             "sparse_initializer " + quote(g.sparse_initializer(0).values().name()),
                             "dense initializers only", "a sparse one");
    }
    if (g.node_size() > kMaxNodes) {
      fail<LimitExceeded>(file_, "graph", "at most " + std::to_string(kMaxNodes) + " nodes",
                          std::to_string(g.node_size()));
    }
    if (g.initializer_size() > kMaxInitializers) {
      fail<LimitExceeded>(file_, "graph",
                          "at most " + std::to_string(kMaxInitializers) + " initializers",
                          std::to_string(g.initializer_size()));
    }
    // Every name a node input or graph output may refer to, and what defines it.
    std::unordered_map<std::string_view, Def> defs;
    for (int i = 0; i < g.initializer_size(); ++i) {
      const onnx::TensorProto& t = g.initializer(i);
      const std::string object = "initializer " + quote(t.name());
      check_length(object, "a name", t.name());
      if (t.name().empty()) fail<FormatError>(file_, object, "a name", "none");
      if (!defs.try_emplace(t.name(), Def{Kind::kInitializer, i}).second) {
        fail<FormatError>(file_, object, "a unique name", "a second initializer of that name");
      }
      check_tensor(t, file_, object, limits_.max_tensor_bytes);
    }
    std::unordered_set<std::string_view> inputs;
    for (int i = 0; i < g.input_size(); ++i) {
      const std::string object = "graph input " + quote(g.input(i).name());
      check_length(object, "a name", g.input(i).name());
      if (g.input(i).name().empty()) fail<FormatError>(file_, object, "a name", "none");
      if (!inputs.insert(g.input(i).name()).second) {
        fail<FormatError>(file_, object, "a unique name", "a second graph input of that name");
      }
      value(g.input(i), object);
      defs.try_emplace(g.input(i).name(), Def{Kind::kInput, i});  // may repeat an initializer
    }
    for (const onnx::ValueInfoProto& v : g.output()) {
      const std::string object = "graph output " + quote(v.name());
      check_length(object, "a name", v.name());
      value(v, object);
    }
    for (int i = 0; i < g.node_size(); ++i) {
      node(g.node(i));
      // Every op bdguard runs has a first output; a node without one computes nothing.
      if (g.node(i).output_size() < 1 || g.node(i).output(0).empty()) {
        fail<FormatError>(file_, node_object(g.node(i)), "an output", "none");
      }
      for (const std::string& out : g.node(i).output()) {
        if (out.empty()) continue;  // an optional output left out
        const auto [it, added] = defs.try_emplace(out, Def{Kind::kNode, i});
        if (!added) {
          fail<FormatError>(file_, node_object(g.node(i)) + " output " + quote(out),
                            "a unique name",
                            "a name that " + def_object(g, it->second) + " already defines");
        }
      }
    }
    // The node that makes each node input (once per input; graph inputs and
    // initializers make no edges).
    std::vector<std::vector<int>> producers(g.node_size());
    for (int i = 0; i < g.node_size(); ++i) {
      for (const std::string& in : g.node(i).input()) {
        if (in.empty()) continue;  // an optional input left out
        const auto it = defs.find(in);
        if (it == defs.end()) {
          fail<FormatError>(file_, node_object(g.node(i)) + " input " + quote(in),
                            "the name of a graph input, initializer or node output",
                            "a name nothing defines");
        }
        if (it->second.kind == Kind::kNode) producers[i].push_back(it->second.index);
      }
    }
    for (const onnx::ValueInfoProto& v : g.output()) {
      if (!defs.count(v.name())) {
        fail<FormatError>(file_, "graph output " + quote(v.name()),
                          "the name of a graph input, initializer or node output",
                          "a name nothing defines");
      }
    }
    reorder(*g.mutable_node(), sorted(g, producers));
  }

  // Kahn's algorithm, taking the ready node that comes first in the file.
  std::vector<int> sorted(const onnx::GraphProto& g,
                          const std::vector<std::vector<int>>& producers) const {
    const int n = g.node_size();
    std::vector<std::vector<int>> consumers(n);
    std::vector<size_t> waiting(n);
    std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
    for (int i = 0; i < n; ++i) {
      for (int p : producers[i]) consumers[p].push_back(i);
      waiting[i] = producers[i].size();
      if (waiting[i] == 0) ready.push(i);
    }
    std::vector<int> order;
    order.reserve(n);
    while (!ready.empty()) {
      const int i = ready.top();
      ready.pop();
      order.push_back(i);
      for (int c : consumers[i]) {
        if (--waiting[c] == 0) ready.push(c);
      }
    }
    if (static_cast<int>(order.size()) < n) cycle(g, producers, waiting);
    return order;
  }

  // Every node left waiting has a producer left waiting: walking from one to a waiting
  // producer, and on, must come back to a node already seen, which lies on a cycle.
  [[noreturn]] void cycle(const onnx::GraphProto& g, const std::vector<std::vector<int>>& producers,
                          const std::vector<size_t>& waiting) const {
    int u = static_cast<int>(
        std::find_if(waiting.begin(), waiting.end(), [](size_t w) { return w > 0; }) -
        waiting.begin());
    std::vector<int> seen_at(g.node_size(), -1), path;
    while (seen_at[u] < 0) {
      seen_at[u] = static_cast<int>(path.size());
      path.push_back(u);
      u = *std::find_if(producers[u].begin(), producers[u].end(),
                        [&](int p) { return waiting[p] > 0; });
    }
    // path[seen_at[u]..] walks the cycle against its edges; print it along them.
    std::string found = "a cycle ";
    const std::vector<int> ring(path.rbegin(), path.rend() - seen_at[u]);
    constexpr size_t kShown = 8;
    for (size_t k = 0; k < ring.size() && k < kShown; ++k) {
      found += node_object(g.node(ring[k])) + " -> ";
    }
    found += ring.size() > kShown ? "..." : node_object(g.node(ring[0]));
    fail<FormatError>(file_, node_object(g.node(ring[0])), "an acyclic graph", found);
  }

  static void reorder(pb::RepeatedPtrField<onnx::NodeProto>& nodes, const std::vector<int>& order) {
    if (std::is_sorted(order.begin(), order.end())) return;
    std::vector<onnx::NodeProto*> owned(nodes.size());
    for (int i = nodes.size() - 1; i >= 0; --i) owned[i] = nodes.ReleaseLast();
    for (int i : order) nodes.AddAllocated(owned[i]);
  }

  const std::string& file_;
  const Limits& limits_;
};

}  // namespace

void validate_model(onnx::ModelProto& m, const std::string& file, const Limits& limits) {
  Validator(file, limits).model(m);
}

}  // namespace bdguard::onnx_io
