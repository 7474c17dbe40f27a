// The protobuf level of bdguard's ONNX support: an untrusted .onnx file in, a validated
// onnx::ModelProto out; its tensors as ATen tensors and back; node attributes with type
// checks; the model written back. Nothing here knows bdguard's model graph: the ONNX
// graph mapper reads the validated protobuf and decides which ops it supports.
//
// Internal header: it includes Debian's generated onnx-ml.pb.h, which needs ONNX_ML=1 and
// ONNX_NAMESPACE=onnx (link the onnx_proto target to get them). Debian's onnx 1.12
// checker and shape inference are never run on input files: they crash on crafted files,
// and 1.12 follows external-data paths out of the model's folder (CVE-2024-27318). Every
// check an untrusted file needs is made here, before anything is allocated from it.
//
// Errors are one line, "FILE: OBJECT: expected ..., found ...": FormatError (structure),
// LimitExceeded (sizes), UnsupportedLayer (features bdguard does not read), IoError.
#pragma once

#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx/onnx-ml.pb.h

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace bdguard::onnx_io {

struct Limits {
  int64_t max_model_bytes = int64_t{2} << 30;   // the file
  int64_t max_tensor_bytes = int64_t{2} << 30;  // one tensor, from its dims and type
  // Memory the parsed protobuf may take, estimated from the wire format before parsing:
  // protobuf allocates per element, so a file of empty nodes (2 bytes each, ~150 bytes
  // parsed) or of one-byte packed varints (8 bytes parsed) becomes many times its size.
  int64_t max_parsed_bytes = int64_t{4} << 30;
};

constexpr int kMaxNodes = 100000;
constexpr int kMaxInitializers = 100000;
constexpr int64_t kMaxStringBytes = 64 << 10;  // names, op types, string attributes
constexpr int kMaxRank = 32;                   // dims of a tensor or of a graph input
constexpr int kMinOpset = 7, kMaxOpset = 17;   // the default domain's opsets onnx 1.12 defines
constexpr int64_t kMinIrVersion = 3, kMaxIrVersion = 10;

// Reads and validates an ONNX model. The path must name a regular file (checked with
// stat before it is opened: a FIFO is never opened) of at most limits.max_model_bytes
// and at most 2^31 - 1 bytes (protobuf's limit for one message). The file is read once
// into memory (so memory peaks at its size plus the parsed model) and both passes run
// on those bytes, so the file cannot change between them. Before parsing, one pass over
// the wire format (allocating nothing) refuses damaged data, nesting deeper than
// protobuf's recursion limit, and files whose parse would take more than
// limits.max_parsed_bytes. The returned model satisfies:
//  - ir_version in [3, 10]; opset_import is one entry, the default domain ("" or
//    "ai.onnx") at an opset in [7, 17]; no model-local functions, no training_info;
//  - a graph with no sparse_initializer, at most kMaxNodes nodes and kMaxInitializers
//    initializers; every node in the default domain;
//  - attributes: unique names per node; of type FLOAT, INT, STRING, TENSOR, FLOATS, INTS,
//    STRINGS or TENSORS (no subgraphs, sparse tensors or type protos), carrying only the
//    field of that type (a TENSOR attribute carries its tensor); no ref_attr_name;
//  - every tensor (initializers, TENSOR(S) attributes) passes check_tensor;
//  - names: initializers and graph inputs unique and non-empty (a graph input may repeat
//    an initializer, as IR 3 requires); node outputs unique and distinct from graph
//    inputs and initializers; every non-empty node input and every graph output names a
//    graph input, an initializer or a node output; no cycles; names, op types, domains
//    and string attributes at most kMaxStringBytes;
//  - graph inputs and outputs have a tensor type with dims >= 0 where given.
// value_info is never read (nothing in it is trusted). Graph nodes are returned in
// topological order: Kahn's algorithm, taking ready nodes in file order, so a file whose
// nodes are already sorted (as PyTorch writes them) keeps its order.
onnx::ModelProto read_model(const std::string& path, const Limits& limits = {});

// The checks and the sort of read_model, on a model already parsed (`file` names it in
// errors): for models built in memory, and for tests.
void validate_model(onnx::ModelProto& m, const std::string& file, const Limits& limits = {});

// Writes `m` to `path` atomically (a temporary file in the same folder, renamed into
// place), serialized deterministically: the same model always gives the same bytes.
void write_model(const onnx::ModelProto& m, const std::string& path);

// Checks a TensorProto without allocating from it: data_location DEFAULT and no
// external_data (a path in a model is never opened), no segment, data_type one of FLOAT,
// DOUBLE, FLOAT16, INT64, INT32, INT16, INT8, UINT8, BOOL, rank <= kMaxRank, dims >= 0,
// a byte size (overflow-checked) <= max_bytes, and a payload that matches dims and type
// exactly: raw_data of numel x element size bytes, or numel values in the one typed field
// of the type (float_data, double_data, int64_data, or int32_data for INT32, INT16, INT8,
// UINT8, BOOL and FLOAT16), never both; values that fit the type (int32_data in range,
// FLOAT16 as the 16-bit patterns 0..65535, BOOL 0 or 1, as must BOOL raw_data bytes be).
// `what` names the tensor in errors ("initializer 'conv1.weight'").
void check_tensor(const onnx::TensorProto& t, const std::string& file, const std::string& what,
                  int64_t max_bytes);

// The tensor's values (after check_tensor) as a CPU tensor in C order of the matching
// dtype: kFloat, kDouble, kHalf, kLong, kInt, kShort, kChar, kByte, kBool. raw_data is
// little-endian, as on every machine bdguard builds for (checked at compile time); FLOAT16
// in int32_data holds the 16-bit patterns. NaN and Inf are not checked: see require_finite.
at::Tensor to_tensor(const onnx::TensorProto& t, const std::string& file, const std::string& what,
                     int64_t max_bytes);

// Replaces the payload of `t` by `value` as raw_data and clears the typed fields. `value`
// must have the dims and the dtype of `t` (InvalidArgument or ShapeMismatch otherwise).
void set_tensor(onnx::TensorProto& t, const at::Tensor& value);

// Refuses a floating-point tensor holding NaN or Inf: "FILE: WHAT: expected finite values,
// found NaN at element 17" (the first one, in C order). Other dtypes pass.
void require_finite(const at::Tensor& t, const std::string& file, const std::string& what);

// A name for messages: in single quotes, control characters and quotes as \xNN, cut
// after 200 bytes, so that a crafted name can neither forge lines nor flood them.
std::string quote(std::string_view s);
std::string escaped(std::string_view s);  // the same without the quotes
// "node 'NAME' (OP)", or "node with output 'OUT' (OP)" for an unnamed node.
std::string node_object(const onnx::NodeProto& node);
// "FLOAT", "INT64", ... or the number for a data type onnx 1.12 does not know.
std::string data_type_name(int32_t data_type);

// A node's attributes, read with type checks. Errors name the node and the attribute:
// "FILE: node '/conv1/Conv' (Conv) attribute 'pads': expected an INTS attribute, found INT".
// The node must outlive the Attrs (read_model has already made attribute names unique).
class Attrs {
 public:
  static constexpr int kMaxListSize = 64;

  Attrs(const onnx::NodeProto& node, std::string file);

  bool has(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t default_value) const;
  double get_float(const std::string& name, double default_value) const;
  std::string get_string(const std::string& name, const std::string& default_value) const;
  // Lists longer than max_size are refused (LimitExceeded).
  std::vector<int64_t> get_ints(const std::string& name, const std::vector<int64_t>& default_value,
                                int max_size = kMaxListSize) const;
  std::vector<double> get_floats(const std::string& name, const std::vector<double>& default_value,
                                 int max_size = kMaxListSize) const;
  // The TENSOR attribute, or nullptr when the node has none of that name. Its payload
  // was checked by read_model; to_tensor converts it.
  const onnx::TensorProto* get_tensor(const std::string& name) const;
  // Refuses (UnsupportedLayer) an attribute whose name is not in `names`: an option of
  // the op that the caller does not implement must not be silently ignored.
  void allow_only(std::initializer_list<const char*> names) const;

  // "node '/conv1/Conv' (Conv) attribute 'pads'"
  std::string object(const std::string& name) const;

 private:
  const onnx::AttributeProto* find(const std::string& name,
                                   onnx::AttributeProto::AttributeType type) const;

  const onnx::NodeProto& node_;
  std::string file_;
};

}  // namespace bdguard::onnx_io
