// Writing Keras HDF5 models: a patched copy of the file a model was read from, or a
// fresh full model for one built in memory.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "hdf5/h5.h"

namespace bdguard {
namespace {

const char* kKerasVersion = "2.10.0";

// The parameters of a model with a Keras name, with their tensors in the file's layout.
struct KerasWeight {
  std::string layer, name;
  at::Tensor value;  // float32, contiguous, Keras layout
};

std::vector<KerasWeight> keras_weights(const Model& m) {
  std::vector<KerasWeight> out;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind != NodeKind::kParam) continue;
    at::Tensor v = n.value.detach().to(at::kFloat);
    if (!n.file_order.empty()) v = v.permute(n.file_order);
    out.push_back({n.layer, n.source, v.contiguous()});
  }
  return out;
}

void patch_bytes(const std::string& file, int64_t offset, const at::Tensor& values) {
  int fd = ::open(file.c_str(), O_WRONLY);
  if (fd < 0) fail<IoError>(file, "", "a writable file", std::strerror(errno));
  const char* p = static_cast<const char*>(values.data_ptr());
  size_t left = static_cast<size_t>(values.numel()) * sizeof(float);
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
  const std::string root = m.weights_only ? "" : "/model_weights";
  struct Patch {
    std::string path;
    int64_t offset;
    at::Tensor value;
  };
  std::vector<Patch> patches;
  {
    h5::File f = h5::File::open(tmp);
    for (auto& w : keras_weights(m)) {
      const std::string path = root + "/" + w.layer + "/" + w.name;
      h5::DatasetInfo info = h5::dataset_info(f, path);
      if (info.dims != Shape(w.value.sizes().begin(), w.value.sizes().end())) {
        fail<ShapeMismatch>(tmp, path, shape_str(info.dims), "a weight of another shape");
      }
      int64_t off = -1;
      if (info.kind == h5::Kind::kFloat && info.element_size == 4 &&
          H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0) {
        off = h5::raw_data_offset(f, path);
      }
      patches.push_back({path, off, w.value});
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
  if (m.keras_config.is_null()) {
    fail<InvalidArgument>(tmp, "", "a model built from a Keras model_config",
                          std::string("a ") + format_name(m.format) + " model");
  }
  h5::File f = h5::File::create(tmp);
  h5::write_string_attr(f, "/", "backend", "tensorflow", true);
  h5::write_string_attr(f, "/", "keras_version", kKerasVersion, true);
  h5::write_string_attr(f, "/", "model_config", model_config_text(m), true);
  h5::create_group(f, "/model_weights");
  h5::write_string_attr(f, "/model_weights", "backend", "tensorflow", true);
  h5::write_string_attr(f, "/model_weights", "keras_version", kKerasVersion, true);
  // Every Keras layer, in graph order, and each one's weights in Keras order.
  std::vector<std::string> names;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind == NodeKind::kParam || n.kind == NodeKind::kConst) continue;
    if (std::find(names.begin(), names.end(), n.layer) == names.end()) names.push_back(n.layer);
  }
  h5::write_string_list_attr(f, "/model_weights", "layer_names", names);
  const std::vector<KerasWeight> weights = keras_weights(m);
  for (const std::string& layer : names) {
    const std::string group = "/model_weights/" + layer;
    h5::create_group(f, group);
    std::vector<std::string> wnames;
    for (const auto& w : weights) {
      if (w.layer == layer) wnames.push_back(w.name);
    }
    h5::write_string_list_attr(f, group, "weight_names", wnames);
    std::set<std::string> made;
    for (const auto& w : weights) {
      if (w.layer != layer) continue;
      // "conv_1/kernel:0" lives in the nested group "conv_1".
      std::string path = group + "/" + w.name;
      for (size_t pos = group.size() + 1; (pos = path.find('/', pos)) != std::string::npos; ++pos) {
        std::string sub = path.substr(0, pos);
        if (made.insert(sub).second && !h5::exists(f, sub)) h5::create_group(f, sub);
      }
      h5::write_float_dataset(f, path, Shape(w.value.sizes().begin(), w.value.sizes().end()),
                              w.value.data_ptr<float>());
    }
  }
  f.flush();
}

}  // namespace

std::string model_config_text(const Model& m) { return m.keras_config.dump(); }

void save_keras_model(const Model& m, const std::string& path) {
  AtomicOutput out(path);
  if (m.format == ModelFormat::kKeras && !m.source_path.empty()) {
    write_patched(m, out.path());
  } else {
    write_fresh(m, out.path());
  }
  out.commit();
}

}  // namespace bdguard
