// TensorProto payloads: checked without allocating, converted to ATen and back.
#include <ATen/Dispatch.h>
#include <c10/util/irange.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "bdguard/error.h"
#include "formats/onnx/proto.h"

// raw_data is little-endian by the ONNX spec and is copied byte for byte.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data is read as native bytes");

namespace bdguard::onnx_io {
namespace {

using onnx::TensorProto;

// The element types bdguard reads, and the typed field that holds them without raw_data.
// int32_data holds every type up to 32 bits (FLOAT16 as its bit patterns); its values
// must lie in [lo, hi], or the cast to the type would silently change them.
struct DType {
  int32_t onnx;
  at::ScalarType aten;
  int64_t size;
  const char* field;
  int64_t lo = 0, hi = 0;
};
constexpr DType kDTypes[] = {
    {TensorProto::FLOAT, at::kFloat, 4, "float_data"},
    {TensorProto::DOUBLE, at::kDouble, 8, "double_data"},
    {TensorProto::FLOAT16, at::kHalf, 2, "int32_data", 0, UINT16_MAX},
    {TensorProto::INT64, at::kLong, 8, "int64_data"},
    {TensorProto::INT32, at::kInt, 4, "int32_data", INT32_MIN, INT32_MAX},
    {TensorProto::INT16, at::kShort, 2, "int32_data", INT16_MIN, INT16_MAX},
    {TensorProto::INT8, at::kChar, 1, "int32_data", INT8_MIN, INT8_MAX},
    {TensorProto::UINT8, at::kByte, 1, "int32_data", 0, UINT8_MAX},
    {TensorProto::BOOL, at::kBool, 1, "int32_data", 0, 1},
};

const DType* find_dtype(int32_t data_type) {
  for (const DType& d : kDTypes) {
    if (d.onnx == data_type) return &d;
  }
  return nullptr;
}

// Every typed payload field of TensorProto, so that a stray one is refused too.
struct TypedField {
  const char* name;
  int (*size)(const TensorProto&);
};
constexpr TypedField kTypedFields[] = {
    {"float_data", [](const TensorProto& t) { return t.float_data_size(); }},
    {"int32_data", [](const TensorProto& t) { return t.int32_data_size(); }},
    {"string_data", [](const TensorProto& t) { return t.string_data_size(); }},
    {"int64_data", [](const TensorProto& t) { return t.int64_data_size(); }},
    {"double_data", [](const TensorProto& t) { return t.double_data_size(); }},
    {"uint64_data", [](const TensorProto& t) { return t.uint64_data_size(); }},
};

std::string dims_text(const google::protobuf::RepeatedField<int64_t>& dims) {
  std::string s = "[";
  for (int i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

struct TensorInfo {
  const DType* type;
  std::vector<int64_t> sizes;
  int64_t numel;
  int64_t bytes;
  bool raw;  // the payload is in raw_data (else in the typed field, or empty)
};

TensorInfo inspect(const TensorProto& t, const std::string& file, const std::string& what,
                   int64_t max_bytes) {
  if (t.data_location() == TensorProto::EXTERNAL || t.external_data_size() > 0) {
    const auto& entries = t.external_data();
    auto location = std::find_if(entries.begin(), entries.end(),
                                 [](const auto& e) { return e.key() == "location"; });
    fail<UnsupportedLayer>(
        file, what, "the payload inside the model file (bdguard never opens a path a model names)",
        "external data" +
            (location != entries.end() ? " at location " + quote(location->value()) : ""));
  }
  if (t.has_segment()) {
    fail<UnsupportedLayer>(file, what, "a whole tensor", "a segment of one (TensorProto.segment)");
  }
  const DType* type = find_dtype(t.data_type());
  if (!type) {
    fail<UnsupportedLayer>(file, what,
                           "data_type FLOAT, DOUBLE, FLOAT16, INT64, INT32, INT16, INT8, UINT8 "
                           "or BOOL",
                           data_type_name(t.data_type()));
  }
  if (t.dims_size() > kMaxRank) {
    fail<LimitExceeded>(file, what, "at most " + std::to_string(kMaxRank) + " dims",
                        std::to_string(t.dims_size()));
  }
  const std::string shape = "dims " + dims_text(t.dims()) + " of " + data_type_name(t.data_type());
  TensorInfo info{type, {t.dims().begin(), t.dims().end()}, 1, 0, false};
  for (int64_t d : info.sizes) {
    if (d < 0) fail<FormatError>(file, what, "dims >= 0", shape);
  }
  // Overflow-checked: dims of 2^40 x 2^40 must not wrap around to a small size.
  bool overflow = false;
  for (int64_t d : info.sizes) {
    overflow = overflow || __builtin_mul_overflow(info.numel, d, &info.numel);
  }
  overflow = overflow || __builtin_mul_overflow(info.numel, type->size, &info.bytes);
  if (overflow || info.bytes > max_bytes) {
    fail<LimitExceeded>(
        file, what, "a tensor of at most " + std::to_string(max_bytes) + " bytes",
        shape + (overflow ? ", over 2^63 bytes" : ", " + std::to_string(info.bytes) + " bytes"));
  }
  const TypedField* typed = nullptr;
  for (const TypedField& f : kTypedFields) {
    if (f.size(t) == 0) continue;
    if (std::strcmp(f.name, type->field) != 0) {
      fail<FormatError>(file, what,
                        std::string("the payload in raw_data or ") + type->field + " for " + shape,
                        f.name);
    }
    typed = &f;
  }
  info.raw = t.has_raw_data() && !t.raw_data().empty();
  if (info.raw && typed) {
    fail<FormatError>(file, what, "the payload in one field",
                      std::string("both raw_data and ") + typed->name);
  }
  if (info.raw && static_cast<int64_t>(t.raw_data().size()) != info.bytes) {
    fail<FormatError>(file, what, std::to_string(info.bytes) + " bytes of raw_data for " + shape,
                      std::to_string(t.raw_data().size()));
  }
  if (typed && typed->size(t) != info.numel) {
    fail<FormatError>(file, what,
                      std::to_string(info.numel) + " values in " + typed->name + " for " + shape,
                      std::to_string(typed->size(t)));
  }
  if (!info.raw && !typed && info.numel > 0) {
    fail<FormatError>(file, what,
                      std::to_string(info.bytes) + " bytes of raw_data or " +
                          std::to_string(info.numel) + " values in " + type->field + " for " +
                          shape,
                      "no payload");
  }
  if (typed && type->aten != at::kInt && std::strcmp(typed->name, "int32_data") == 0) {
    for (const int i : c10::irange(t.int32_data_size())) {
      const int32_t v = t.int32_data(i);
      if (v >= type->lo && v <= type->hi) continue;
      fail<FormatError>(file, what,
                        "int32_data values in [" + std::to_string(type->lo) + ", " +
                            std::to_string(type->hi) + "] for " + data_type_name(t.data_type()),
                        std::to_string(v) + " at element " + std::to_string(i));
    }
  }
  // A bool byte other than 0 or 1 is undefined behaviour in C++ (and in ATen's kernels).
  if (info.raw && type->aten == at::kBool) {
    const auto* p = reinterpret_cast<const uint8_t*>(t.raw_data().data());
    const auto* bad = std::find_if(p, p + info.numel, [](uint8_t b) { return b > 1; });
    if (bad != p + info.numel) {
      fail<FormatError>(file, what, "raw_data bytes 0 or 1 for BOOL",
                        std::to_string(*bad) + " at element " + std::to_string(bad - p));
    }
  }
  return info;
}

// Casts int32_data (checked by inspect) to the type's own width.
template <class T>
void narrow(const TensorProto& t, void* dst) {
  std::transform(t.int32_data().begin(), t.int32_data().end(), static_cast<T*>(dst),
                 [](int32_t v) { return static_cast<T>(v); });
}

}  // namespace

std::string data_type_name(int32_t data_type) {
  const std::string& name = onnx::TensorProto_DataType_Name(data_type);
  return name.empty() ? "data_type " + std::to_string(data_type) : name;
}

void check_tensor(const TensorProto& t, const std::string& file, const std::string& what,
                  int64_t max_bytes) {
  (void)inspect(t, file, what, max_bytes);
}

at::Tensor to_tensor(const TensorProto& t, const std::string& file, const std::string& what,
                     int64_t max_bytes) {
  const TensorInfo info = inspect(t, file, what, max_bytes);
  at::Tensor out = at::empty(info.sizes, at::TensorOptions().dtype(info.type->aten));
  if (info.numel == 0) return out;
  void* dst = out.data_ptr();
  const auto bytes = static_cast<size_t>(info.bytes);
  if (info.raw) {
    std::memcpy(dst, t.raw_data().data(), bytes);
    return out;
  }
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      std::memcpy(dst, t.float_data().data(), bytes);
      break;
    case TensorProto::DOUBLE:
      std::memcpy(dst, t.double_data().data(), bytes);
      break;
    case TensorProto::INT64:
      std::memcpy(dst, t.int64_data().data(), bytes);
      break;
    case TensorProto::INT32:
      std::memcpy(dst, t.int32_data().data(), bytes);
      break;
    case TensorProto::INT16:
      narrow<int16_t>(t, dst);
      break;
    case TensorProto::INT8:
      narrow<int8_t>(t, dst);
      break;
    case TensorProto::UINT8:
      narrow<uint8_t>(t, dst);
      break;
    case TensorProto::BOOL:
      narrow<uint8_t>(t, dst);
      break;  // 0 or 1: a valid bool byte
    case TensorProto::FLOAT16:
      narrow<uint16_t>(t, dst);
      break;
    default:
      break;  // inspect() refused every other type
  }
  return out;
}

void set_tensor(TensorProto& t, const at::Tensor& value) {
  const DType* type = find_dtype(t.data_type());
  const std::string what = "tensor " + quote(t.name());
  if (!type || type->aten != value.scalar_type()) {
    fail<InvalidArgument>("", what, "a value of its data_type " + data_type_name(t.data_type()),
                          std::string("one of dtype ") + c10::toString(value.scalar_type()));
  }
  if (!std::equal(t.dims().begin(), t.dims().end(), value.sizes().begin(), value.sizes().end())) {
    fail<ShapeMismatch>("", what, "a value of its dims " + dims_text(t.dims()),
                        "one of sizes " + c10::str(value.sizes()));
  }
  const at::Tensor c = value.cpu().contiguous();
  t.mutable_raw_data()->assign(static_cast<const char*>(c.data_ptr()), c.nbytes());
  t.clear_float_data();
  t.clear_int32_data();
  t.clear_string_data();
  t.clear_int64_data();
  t.clear_double_data();
  t.clear_uint64_data();
}

void require_finite(const at::Tensor& t, const std::string& file, const std::string& what) {
  if (!c10::isFloatingType(t.scalar_type())) return;
  const at::Tensor c = t.cpu().contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, c.scalar_type(), "require_finite", [&] {
    const scalar_t* p = c.data_ptr<scalar_t>();
    for (const int64_t i : c10::irange(c.numel())) {
      const auto v = static_cast<double>(p[i]);
      if (std::isfinite(v)) continue;
      fail<FormatError>(file, what, "finite values",
                        std::string(std::isnan(v) ? "NaN"
                                    : v > 0       ? "+Inf"
                                                  : "-Inf") +
                            " at element " + std::to_string(i));
    }
  });
}

std::string escaped(std::string_view s) {
  constexpr size_t kShown = 200;
  std::string out;
  for (const char ch : s.substr(0, kShown)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += ch;
    }
  }
  if (s.size() > kShown) out += "...";
  return out;
}

std::string quote(std::string_view s) { return "'" + escaped(s) + "'"; }

std::string node_object(const onnx::NodeProto& node) {
  const std::string op =
      " (" + (node.op_type().empty() ? "no op_type" : escaped(node.op_type())) + ")";
  if (!node.name().empty()) return "node " + quote(node.name()) + op;
  for (const std::string& out : node.output()) {
    if (!out.empty()) return "node with output " + quote(out) + op;
  }
  return "unnamed node" + op;
}

}  // namespace bdguard::onnx_io
