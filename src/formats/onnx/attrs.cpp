// Node attributes read with type checks.
#include <algorithm>
#include <cstring>

#include "bdguard/error.h"
#include "formats/onnx/proto.h"

namespace bdguard::onnx_io {
namespace {

using onnx::AttributeProto;

std::string type_name(AttributeProto::AttributeType type) {
  const std::string& name = AttributeProto::AttributeType_Name(type);
  return name.empty() ? "type " + std::to_string(type) : name;
}

template <class T, class Field>
std::vector<T> list(const Field& values, const std::string& file, const std::string& what,
                    int max_size) {
  if (values.size() > max_size) {
    fail<LimitExceeded>(file, what, "at most " + std::to_string(max_size) + " values",
                        std::to_string(values.size()));
  }
  return {values.begin(), values.end()};
}

}  // namespace

Attrs::Attrs(const onnx::NodeProto& node, std::string file) : node_(node), file_(std::move(file)) {}

std::string Attrs::object(const std::string& name) const {
  return node_object(node_) + " attribute " + quote(name);
}

const AttributeProto* Attrs::find(const std::string& name,
                                  AttributeProto::AttributeType type) const {
  for (const AttributeProto& a : node_.attribute()) {
    if (a.name() != name) continue;
    if (a.type() != type) {
      fail<FormatError>(file_, object(name), "an attribute of type " + type_name(type),
                        type_name(a.type()));
    }
    return &a;
  }
  return nullptr;
}

bool Attrs::has(const std::string& name) const {
  return std::any_of(node_.attribute().begin(), node_.attribute().end(),
                     [&](const AttributeProto& a) { return a.name() == name; });
}

int64_t Attrs::get_int(const std::string& name, int64_t default_value) const {
  const AttributeProto* a = find(name, AttributeProto::INT);
  return a ? a->i() : default_value;
}

double Attrs::get_float(const std::string& name, double default_value) const {
  const AttributeProto* a = find(name, AttributeProto::FLOAT);
  return a ? a->f() : default_value;
}

std::string Attrs::get_string(const std::string& name, const std::string& default_value) const {
  const AttributeProto* a = find(name, AttributeProto::STRING);
  return a ? a->s() : default_value;
}

std::vector<int64_t> Attrs::get_ints(const std::string& name,
                                     const std::vector<int64_t>& default_value,
                                     int max_size) const {
  const AttributeProto* a = find(name, AttributeProto::INTS);
  return a ? list<int64_t>(a->ints(), file_, object(name), max_size) : default_value;
}

std::vector<double> Attrs::get_floats(const std::string& name,
                                      const std::vector<double>& default_value,
                                      int max_size) const {
  const AttributeProto* a = find(name, AttributeProto::FLOATS);
  return a ? list<double>(a->floats(), file_, object(name), max_size) : default_value;
}

const onnx::TensorProto* Attrs::get_tensor(const std::string& name) const {
  const AttributeProto* a = find(name, AttributeProto::TENSOR);
  return a ? &a->t() : nullptr;
}

void Attrs::allow_only(std::initializer_list<const char*> names) const {
  for (const AttributeProto& a : node_.attribute()) {
    if (std::any_of(names.begin(), names.end(), [&](const char* n) { return a.name() == n; })) {
      continue;
    }
    std::string known;
    for (const char* n : names) known += (known.empty() ? "" : ", ") + std::string(n);
    const std::string op = escaped(node_.op_type());
    fail<UnsupportedLayer>(
        file_, object(a.name()),
        known.empty() ? "no attributes (bdguard implements none for " + op + ")"
                      : "only the attributes bdguard implements for " + op + " (" + known + ")",
        quote(a.name()));
  }
}

}  // namespace bdguard::onnx_io
