// The `bdguard._native` extension: the library's errors as Python exceptions, and the
// parts bound in model_py.cpp, detect_py.cpp, defend_py.cpp and scan_py.cpp.
#include "bdguard/error.h"
#include "bdguard/threads.h"
#include "bindings.h"

namespace bdguard::python {

// bdguard.Error (an Exception) and one subclass per class of error.h, with the
// library's one-line message. Translators are tried newest first: subclasses after
// the base.
void bind_errors(py::module_& m) {
  static py::exception<Error> base(m, "Error");
  const auto sub = [&m](auto tag, const char* name) {
    using E = typename decltype(tag)::type;
    py::register_exception<E>(m, name, base.ptr());
  };
  sub(std::common_type<FormatError>{}, "FormatError");
  sub(std::common_type<ShapeMismatch>{}, "ShapeMismatch");
  sub(std::common_type<UnsupportedLayer>{}, "UnsupportedLayer");
  sub(std::common_type<LimitExceeded>{}, "LimitExceeded");
  sub(std::common_type<IoError>{}, "IoError");
  sub(std::common_type<InvalidArgument>{}, "InvalidArgument");
  m.attr("UnsupportedOp") = m.attr("UnsupportedLayer");
}

}  // namespace bdguard::python

PYBIND11_MODULE(_native, m) {
  namespace bp = bdguard::python;
  m.doc() =
      "bdguard's library: models, scan, Neural Cleanse, STRIP, defenses (see bdguard/__init__.py)";
  bp::bind_errors(m);
  bp::bind_model(m);
  bp::bind_detect(m);
  bp::bind_defend(m);
  bp::bind_scan(m);
  m.def("set_threads", &bdguard::set_compute_threads, pybind11::arg("n"),
        "compute threads for LibTorch and OpenBLAS (0: all cores); returns the number set");
}
