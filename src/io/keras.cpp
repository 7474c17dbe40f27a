// Keras HDF5 model files: reading (full and weights-only) and writing.
#include "bdguard/keras.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "h5.h"

namespace bdguard {
namespace {

constexpr size_t kMaxConfigBytes = size_t{16} << 20;
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxWeightsPerLayer = 64;
const char* kKerasVersion = "2.10.0";

std::string weights_root(bool weights_only) { return weights_only ? "" : "/model_weights"; }

// "conv_1/kernel:0" -> "kernel"
std::string weight_suffix(const std::string& name) {
  std::string base = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  return base.substr(0, base.find(':'));
}

bool safe_weight_name(const std::string& n) {
  return !n.empty() && n[0] != '/' && n.find("..") == std::string::npos;
}

// Weights must be finite: NaN or Inf would poison every output and every statistic.
void check_finite(const at::Tensor& t, const std::string& file, const std::string& path,
                  const Layer& layer) {
  at::Tensor bad = at::logical_not(at::isfinite(t)).flatten();
  if (!bad.any().item<bool>()) return;
  const int64_t first = bad.nonzero()[0][0].item<int64_t>();
  const float v = t.flatten()[first].item<float>();
  const int64_t count = bad.sum().item<int64_t>();
  fail(file, path, "finite weights in layer '" + layer.name + "' (" + layer.class_name + ")",
       std::string(std::isnan(v) ? "NaN"
                   : v > 0       ? "+Inf"
                                 : "-Inf") +
           " at element " + std::to_string(first) + " (" + std::to_string(count) +
           " non-finite values)");
}

void load_weights(Model& m, const h5::File& f, const std::string& root, const LoadOptions& opt) {
  const std::string root_group = root.empty() ? "/" : root;
  if (!h5::is_group(f, root_group)) {
    fail(f.path(), root_group, "the group of model weights", "nothing");
  }
  std::vector<std::string> names = h5::read_string_list_attr(f, root_group, "layer_names", 10000);
  for (size_t i = 0; i < m.size(); ++i) {
    Layer& layer = m.layer(i);
    auto specs = layer.weight_specs();
    layer.weights.clear();
    if (specs.empty()) continue;
    const std::string group = root + "/" + layer.name;
    if (std::find(names.begin(), names.end(), layer.name) == names.end() ||
        !h5::is_group(f, group)) {
      fail(f.path(), group, "the weights of layer '" + layer.name + "' (" + layer.class_name + ")",
           "no such layer in the file");
    }
    auto wnames = h5::read_string_list_attr(f, group, "weight_names", kMaxWeightsPerLayer);
    if (wnames.size() != specs.size()) {
      fail<ShapeMismatch>(f.path(), group + "@weight_names",
                          std::to_string(specs.size()) + " weights for " + layer.class_name,
                          std::to_string(wnames.size()));
    }
    for (size_t k = 0; k < specs.size(); ++k) {
      // Keras order is the contract; the suffix, when it names a known weight, must agree.
      std::string wname = wnames[k];
      std::string suffix = weight_suffix(wname);
      for (const auto& n : wnames) {
        if (weight_suffix(n) == specs[k].suffix) wname = n;
      }
      if (!safe_weight_name(wname)) {
        fail(f.path(), group + "@weight_names", "relative weight names", "'" + wname + "'");
      }
      const std::string path = group + "/" + wname;
      h5::DatasetInfo info = h5::dataset_info(f, path);
      if (info.kind != h5::Kind::kFloat ||
          (info.element_size != 2 && info.element_size != 4 && info.element_size != 8)) {
        fail(f.path(), path, "float16, float32 or float64", info.dtype_name());
      }
      if (info.dims != specs[k].shape) {
        fail<ShapeMismatch>(f.path(), path,
                            shape_str(specs[k].shape) + " for " + layer.class_name + " '" +
                                layer.name + "' " + specs[k].suffix,
                            shape_str(info.dims));
      }
      // read_floats refuses tensors over the limit before allocating.
      std::vector<float> values = h5::read_floats(f, path, opt.max_tensor_bytes);
      at::Tensor t = at::from_blob(values.data(), info.dims, at::kFloat).clone();
      check_finite(t, f.path(), path, layer);
      layer.weights.push_back({wname, t});
    }
  }
}

nlohmann::json read_config_attr(const h5::File& f) {
  std::string text = h5::read_string_attr(f, "/", "model_config", kMaxConfigBytes);
  return parse_model_config(text, f.path());
}

// A unique temporary file next to `path`, so the final rename stays on one file system.
std::string temp_path_for(const std::string& path) {
  std::string tmpl = path + ".tmp-XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0) fail<IoError>(path, "", "a writable folder", std::strerror(errno));
  close(fd);
  return tmpl;
}

void patch_bytes(const std::string& file, int64_t offset, const at::Tensor& values) {
  int fd = ::open(file.c_str(), O_WRONLY);
  if (fd < 0) fail<IoError>(file, "", "a writable file", std::strerror(errno));
  at::Tensor c = values.contiguous();
  const char* p = static_cast<const char*>(c.data_ptr());
  size_t left = static_cast<size_t>(c.numel()) * sizeof(float);
  off_t at = static_cast<off_t>(offset);
  while (left > 0) {
    ssize_t n = pwrite(fd, p, left, at);
    if (n <= 0) {
      close(fd);
      fail<IoError>(file, "", "a complete write", std::strerror(errno));
    }
    p += n, at += n, left -= static_cast<size_t>(n);
  }
  close(fd);
}

void write_patched(const Model& m, const std::string& tmp) {
  std::error_code ec;
  std::filesystem::copy_file(m.source_path, tmp, std::filesystem::copy_options::overwrite_existing,
                             ec);
  if (ec) fail<IoError>(m.source_path, "", "the model file the output is a copy of", ec.message());
  h5::note_probed_copy(m.source_path, tmp);  // no second walk (and fork) for the copy
  const std::string root = weights_root(m.weights_only);
  struct Patch {
    std::string path;
    int64_t offset;
    at::Tensor value;
  };
  std::vector<Patch> patches;
  {
    h5::File f = h5::File::open(tmp);
    for (size_t i = 0; i < m.size(); ++i) {
      const Layer& l = m.layer(i);
      for (const auto& w : l.weights) {
        std::string path = root + "/" + l.name + "/" + w.name;
        h5::DatasetInfo info = h5::dataset_info(f, path);
        if (info.dims != Shape(w.value.sizes().begin(), w.value.sizes().end())) {
          fail<ShapeMismatch>(tmp, path, shape_str(info.dims), "a weight of another shape");
        }
        int64_t off = -1;
        if (info.kind == h5::Kind::kFloat && info.element_size == 4 &&
            H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0) {
          off = h5::raw_data_offset(f, path);
        }
        patches.push_back({path, off, w.value.detach().to(at::kFloat).contiguous()});
      }
    }
  }
  bool need_hdf5 = false;
  for (const auto& p : patches) {
    if (p.offset >= 0) {
      patch_bytes(tmp, p.offset, p.value);
    } else {
      need_hdf5 = true;
    }
  }
  if (need_hdf5) {
    h5::File f = h5::File::open(tmp, /*writable=*/true);
    for (const auto& p : patches) {
      if (p.offset >= 0) continue;
      std::vector<float> v(p.value.data_ptr<float>(), p.value.data_ptr<float>() + p.value.numel());
      h5::write_floats(f, p.path, v);
    }
    f.flush();
  }
}

void write_fresh(const Model& m, const std::string& tmp) {
  h5::File f = h5::File::create(tmp);
  h5::write_string_attr(f, "/", "backend", "tensorflow", true);
  h5::write_string_attr(f, "/", "keras_version", kKerasVersion, true);
  h5::write_string_attr(f, "/", "model_config", model_config_text(m), true);
  h5::create_group(f, "/model_weights");
  h5::write_string_attr(f, "/model_weights", "backend", "tensorflow", true);
  h5::write_string_attr(f, "/model_weights", "keras_version", kKerasVersion, true);
  std::vector<std::string> names;
  for (size_t i = 0; i < m.size(); ++i) names.push_back(m.layer(i).name);
  h5::write_string_list_attr(f, "/model_weights", "layer_names", names);
  for (size_t i = 0; i < m.size(); ++i) {
    const Layer& l = m.layer(i);
    const std::string group = "/model_weights/" + l.name;
    h5::create_group(f, group);
    std::vector<std::string> wnames;
    for (const auto& w : l.weights) wnames.push_back(w.name);
    h5::write_string_list_attr(f, group, "weight_names", wnames);
    std::set<std::string> made;
    for (const auto& w : l.weights) {
      // "conv_1/kernel:0" lives in the nested group "conv_1".
      std::string path = group + "/" + w.name;
      for (size_t pos = group.size() + 1; (pos = path.find('/', pos)) != std::string::npos; ++pos) {
        std::string sub = path.substr(0, pos);
        if (made.insert(sub).second && !h5::exists(f, sub)) h5::create_group(f, sub);
      }
      at::Tensor v = w.value.detach().to(at::kFloat).contiguous();
      h5::write_float_dataset(f, path, Shape(v.sizes().begin(), v.sizes().end()),
                              v.data_ptr<float>());
    }
  }
  f.flush();
}

}  // namespace

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

nlohmann::json read_architecture(const ArchSource& arch) {
  if (!arch.builtin.empty()) return builtin_architecture(arch.builtin);
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

Model load_model(const std::string& path, const ArchSource& arch, const LoadOptions& options) {
  h5::File f = h5::File::open(path);
  const bool full = h5::has_attr(f, "/", "model_config");
  nlohmann::json config;
  std::string origin = path;
  if (full) {
    config = read_config_attr(f);
  } else if (!arch.empty()) {
    config = read_architecture(arch);
    origin = arch.builtin.empty() ? arch.file : "--arch " + arch.builtin;
  } else {
    fail<InvalidArgument>(path, "/@model_config",
                          "a full Keras model, or --arch / --arch-from for a weights-only file",
                          "a weights-only file");
  }
  Model m = Model::from_config(config, origin);
  load_weights(m, f, weights_root(!full), options);
  m.input_scale = options.input_scale;
  m.source_path = path;
  m.weights_only = !full;
  return m;
}

std::string model_config_text(const Model& m) { return m.config().dump(); }

void save_model(const Model& m, const std::string& path) {
  std::string tmp = temp_path_for(path);
  TempFileGuard guard(tmp);
  if (m.source_path.empty()) {
    write_fresh(m, tmp);
  } else {
    write_patched(m, tmp);
  }
  guard.commit(path);
}

}  // namespace bdguard
