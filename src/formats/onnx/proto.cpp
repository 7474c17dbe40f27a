// Reading an untrusted .onnx file (the file, its wire format, the parse; the checks of
// the model are in validate.cpp) and writing a model back.
#include "formats/onnx/proto.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/message.h>
#include <google/protobuf/wire_format_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <unordered_map>

#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard::onnx_io {
namespace {

namespace pb = google::protobuf;
using pb::internal::WireFormatLite;

constexpr const char* kExpectedProto = "a serialized ONNX ModelProto";

// ---- the file -----------------------------------------------------------------------

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The whole file, read once: the walk and the parse then see the same bytes (a file
// rewritten between two reads could pass the walk and parse into something else).
std::string read_file(const std::string& path, const Limits& limits) {
  require_regular_file(path);  // stat, not open: opening a FIFO blocks until a writer comes
  // O_NONBLOCK and the fstat after it cover a FIFO swapped in after the stat.
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    fail<IoError>(path, "", "a regular file", "one replaced while it was opened");
  }
  const int64_t size = st.st_size;
  if (size == 0) fail<FormatError>(path, "", kExpectedProto, "an empty file");
  if (size > limits.max_model_bytes) {
    fail<LimitExceeded>(path, "",
                        "a model file of at most " + std::to_string(limits.max_model_bytes) +
                            " bytes (Limits::max_model_bytes)",
                        std::to_string(size) + " bytes");
  }
  if (size > INT_MAX) {
    fail<LimitExceeded>(path, "",
                        "a model file of at most " + std::to_string(INT_MAX) +
                            " bytes (protobuf's limit for one message)",
                        std::to_string(size) + " bytes");
  }
  // The first `size` bytes; a file that grows meanwhile is read as it was at the fstat.
  std::string bytes(static_cast<size_t>(size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail<IoError>(path, "", "a readable file", std::strerror(errno));
    if (n == 0) break;  // it shrank: parse what is there
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

// ---- the wire format, before parsing ------------------------------------------------

// Walks the wire format of a message as protobuf's parser would, allocating nothing, and
// adds up what parsing will allocate; refuses once that passes the limit. It also
// refuses what the parser would refuse, so that the parse never runs into protobuf's
// total-bytes limit (which prints to stderr) or its recursion limit.
class Footprint {
 public:
  Footprint(const std::string& file, int64_t limit) : file_(file), limit_(limit) {}

  void walk(pb::io::CodedInputStream& in, const pb::Descriptor* type, int depth) {
    for (;;) {
      const uint32_t tag = in.ReadTag();
      if (tag == 0) {
        if (!in.ConsumedEntireMessage()) damaged(in);  // a zero tag or a broken varint
        return;
      }
      const int number = WireFormatLite::GetTagFieldNumber(tag);
      if (number == 0) damaged(in);  // the parser refuses field number 0
      const FieldType* field = type->FindFieldByNumber(number);  // nullptr: an unknown field
      add(kFieldBytes, in);
      if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        // ONNX has no groups; SkipField also refuses wire types 6 and 7.
        if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_START_GROUP ||
            !WireFormatLite::SkipField(&in, tag)) {
          damaged(in);
        }
        continue;
      }
      uint32_t len = 0;
      if (!in.ReadVarint32(&len) || static_cast<int64_t>(len) > in.BytesUntilLimit()) damaged(in);
      if (field && field->type() == FieldType::TYPE_MESSAGE) {
        add(message_bytes(field->message_type()), in);
        if (depth >= pb::io::CodedInputStream::GetDefaultRecursionLimit()) {
          fail<FormatError>(
              file_, "",
              "protobuf messages nested at most " +
                  std::to_string(pb::io::CodedInputStream::GetDefaultRecursionLimit()) + " deep",
              "deeper nesting at byte " + std::to_string(in.CurrentPosition()));
        }
        const auto outer = in.PushLimit(static_cast<int>(len));
        walk(in, field->message_type(), depth + 1);
        in.PopLimit(outer);
        continue;
      }
      add(packed_bytes(field, len), in);
      if (!in.Skip(static_cast<int>(len))) damaged(in);
    }
  }

 private:
  using FieldType = pb::FieldDescriptor;
  static constexpr int64_t kFieldBytes = 16;   // a slot of a repeated field, an unknown field
  static constexpr int64_t kStringBytes = 32;  // a std::string

  // Strings, bytes and unknown fields allocate their length; packed repeated scalars one
  // element per wire byte at most (a varint takes one byte or more).
  static int64_t packed_bytes(const FieldType* field, uint32_t len) {
    if (!field || !field->is_repeated() || field->cpp_type() == FieldType::CPPTYPE_STRING) {
      return kStringBytes + len;
    }
    if (WireFormatLite::WireTypeForFieldType(static_cast<WireFormatLite::FieldType>(
            field->type())) != WireFormatLite::WIRETYPE_VARINT) {
      return len;  // fixed-size elements take as much memory as wire bytes
    }
    const int64_t size = field->cpp_type() == FieldType::CPPTYPE_INT64 ||
                                 field->cpp_type() == FieldType::CPPTYPE_UINT64
                             ? 8
                         : field->cpp_type() == FieldType::CPPTYPE_BOOL ? 1
                                                                        : 4;
    return size * len;
  }

  int64_t message_bytes(const pb::Descriptor* type) {
    auto [it, added] = message_bytes_.try_emplace(type, 0);
    if (added) {
      it->second = static_cast<int64_t>(
          pb::MessageFactory::generated_factory()->GetPrototype(type)->SpaceUsedLong());
    }
    return it->second;
  }

  void add(int64_t bytes, const pb::io::CodedInputStream& in) {
    bytes_ += bytes;
    if (bytes_ <= limit_) return;
    fail<LimitExceeded>(file_, "",
                        "a model that parses into at most " + std::to_string(limit_) +
                            " bytes of memory (Limits::max_parsed_bytes)",
                        "one whose protobuf elements need more by byte " +
                            std::to_string(in.CurrentPosition()) +
                            " of the file (many small elements parse into many times their size)");
  }

  [[noreturn]] void damaged(const pb::io::CodedInputStream& in) const {
    fail<FormatError>(
        file_, "", kExpectedProto,
        "damaged or truncated protobuf data at byte " + std::to_string(in.CurrentPosition()));
  }

  const std::string& file_;
  const int64_t limit_;
  int64_t bytes_ = 0;
  std::unordered_map<const pb::Descriptor*, int64_t> message_bytes_;
};

onnx::ModelProto parse(const std::string& path, const Limits& limits) {
  const std::string bytes = read_file(path, limits);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const int size = static_cast<int>(bytes.size());  // read_file: at most INT_MAX
  {
    pb::io::CodedInputStream in(data, size);
    in.PushLimit(size);  // the walk compares each field's length with what is left
    Footprint(path, limits.max_parsed_bytes).walk(in, onnx::ModelProto::descriptor(), 0);
  }
  pb::io::CodedInputStream in(data, size);
  onnx::ModelProto m;
  if (!m.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) {
    // The walk checks the framing of every field, not the contents of packed ones (a
    // varint cut off at the end of its field).
    fail<FormatError>(path, "", kExpectedProto, "data protobuf cannot parse");
  }
  return m;
}

}  // namespace

onnx::ModelProto read_model(const std::string& path, const Limits& limits) {
  onnx::ModelProto m = parse(path, limits);
  validate_model(m, path, limits);
  return m;
}

void write_model(const onnx::ModelProto& m, const std::string& path) {
  const size_t size = m.ByteSizeLong();
  if (size > INT_MAX) {
    fail<LimitExceeded>(path, "",
                        "a model of at most " + std::to_string(INT_MAX) +
                            " bytes (protobuf's limit for one message)",
                        std::to_string(size) + " bytes");
  }
  AtomicOutput out(path);
  const int fd = ::open(out.path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) fail<IoError>(path, "", "a writable folder", std::strerror(errno));
  pb::io::FileOutputStream file(fd);
  bool ok;
  {
    pb::io::CodedOutputStream coded(&file);
    coded.SetSerializationDeterministic(true);
    ok = m.SerializeToCodedStream(&coded) && !coded.HadError();
  }
  ok = file.Close() && ok;  // flushes; closes fd on every path
  if (!ok) {
    fail<IoError>(path, "", "a complete write",
                  file.GetErrno() != 0 ? std::strerror(file.GetErrno()) : "a serialization error");
  }
  out.commit();
}

}  // namespace bdguard::onnx_io
