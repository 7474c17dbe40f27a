// Typed errors of the bdguard library.
//
// The library throws, the tool reports, once. Every message names the file, the
// object inside it, what was expected and what was found, and is built by
// `describe()` so that the facts always come in the same order.
#pragma once

#include <stdexcept>
#include <string>

namespace bdguard {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file is not what it claims to be: wrong structure, dtype, missing object.
class FormatError : public Error {
  using Error::Error;
};
// A tensor's shape does not fit what the model or data set requires.
class ShapeMismatch : public Error {
  using Error::Error;
};
// A Keras layer class or ONNX operator (or one of its options) that bdguard does not
// implement.
class UnsupportedLayer : public Error {
  using Error::Error;
};
using UnsupportedOp = UnsupportedLayer;
// A size beyond the limits bdguard accepts from untrusted input.
class LimitExceeded : public Error {
  using Error::Error;
};
// The operating system refused a read or write.
class IoError : public Error {
  using Error::Error;
};
// A request that cannot be satisfied by the given inputs (e.g. an unknown layer name).
class InvalidArgument : public Error {
  using Error::Error;
};

// "FILE: OBJECT: expected EXPECTED, found FOUND" (parts left empty are omitted; an
// empty FILE reads "<input>").
std::string describe(const std::string& file, const std::string& object,
                     const std::string& expected, const std::string& found);

template <class E = FormatError>
[[noreturn]] void fail(const std::string& file, const std::string& object,
                       const std::string& expected, const std::string& found) {
  throw E(describe(file, object, expected, found));
}

// An op's complaint about its inputs or attributes, without a file or node name:
// "OBJECT: expected EXPECTED, found FOUND". The graph adds both.
template <class E = ShapeMismatch>
[[noreturn]] void op_fail(const std::string& object, const std::string& expected,
                          const std::string& found) {
  std::string out = object;
  if (!expected.empty()) out += ": expected " + expected;
  if (!found.empty()) out += (expected.empty() ? ": " : ", found ") + found;
  throw E(out);
}

}  // namespace bdguard
