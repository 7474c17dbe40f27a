// The tiny Fashion-MNIST BadNet (tests/fixtures/make_tiny_models.sh: a 4x4 white square
// at the bottom right sends every image to label 3) and its data as the defense tests
// use them: 1,500 clean validation images (1,200 trained on, 300 held out) and 500
// poisoned ones.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/defend.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard::test {

inline Model tiny_badnet() { return load_model(tiny_dir("badnet") + "/bd_net.h5"); }

// The first `n` rows of one of the tiny BadNet's data files (or of another tiny model's).
inline TensorData tiny_rows(const Model& m, const std::string& file, int64_t n,
                            const std::string& which = "badnet") {
  TensorData all = read_tensor_data(LabDataset(tiny_dir(which) + "/data/" + file, m.input_shape()));
  n = std::min(n, all.size());
  return {all.images.narrow(0, 0, n), all.labels.narrow(0, 0, n)};
}

// The first `n` rows of a tiny BadNet data file written to the test's temp_dir(), for
// the CLI tests; returns the path.
inline std::string write_tiny_rows(const std::string& file, int64_t n) {
  const TensorData rows = tiny_rows(tiny_badnet(), file, n);
  const std::string path = temp_dir() + "/" + file;
  write_lab_dataset(path, rows.images, rows.labels);
  return path;
}

inline DefenseData tiny_defense_data(const Model& m) {
  DefenseData d;
  d.clean = tiny_rows(m, "valid.h5", 1500);
  d.poisoned = tiny_rows(m, "bd_valid.h5", 500);
  return d;
}

inline DefenseOptions defense_options(const nlohmann::json& params, uint64_t seed = 1) {
  DefenseOptions o;
  o.seed = seed;
  o.params = params;
  return o;
}

// Runs `method` on the tiny BadNet with channel 5 of conv_3 and channels 0 and 7 of
// conv_4 pruned beforehand: exactly those stay zero, and the figures count 3.
inline DefenseResult expect_pruned_channels_kept(const std::string& method,
                                                 const nlohmann::json& p) {
  Model m = tiny_badnet();
  zero_channel(m, conv_unit(m, m.find("conv_3")), 5);
  const ChannelUnit conv4 = conv_unit(m, m.find("conv_4"));
  zero_channel(m, conv4, 0);
  zero_channel(m, conv4, 7);
  DefenseResult r = defend(method, m, tiny_defense_data(m), defense_options(p));
  EXPECT_EQ(zero_channels(r.model, conv_unit(r.model, r.model.find("conv_3"))),
            std::vector<int64_t>{5})
      << method;
  EXPECT_EQ(zero_channels(r.model, conv_unit(r.model, r.model.find("conv_4"))),
            (std::vector<int64_t>{0, 7}))
      << method;
  EXPECT_EQ(r.figures["pruned_channels_kept"], 3) << method;
  return r;
}

// The API takes no test data; the same seed gives the same weights, and the poisoned
// validation data (reported only) changes nothing.
inline void expect_same_seed_same_weights(const std::string& method, const nlohmann::json& p) {
  const Model m = tiny_badnet();
  const DefenseData d = tiny_defense_data(m);
  const DefenseResult a = defend(method, m, d, defense_options(p, 7));
  const DefenseResult b = defend(method, m, d, defense_options(p, 7));
  EXPECT_TRUE(same_parameters(a.model, b.model));
}

inline void expect_poisoned_data_unused(const std::string& method, const nlohmann::json& p) {
  const Model m = tiny_badnet();
  DefenseData with = tiny_defense_data(m), without = tiny_defense_data(m);
  without.poisoned.reset();
  const DefenseResult a = defend(method, m, with, defense_options(p));
  const DefenseResult b = defend(method, m, without, defense_options(p));
  EXPECT_TRUE(same_parameters(a.model, b.model));
  EXPECT_TRUE(a.after.asr.has_value());
  EXPECT_FALSE(b.after.asr.has_value());
}

}  // namespace bdguard::test
