// An attack's options as JSON (attack.json's "options") and back.
#include <string>

#include "bdguard/attack.h"
#include "bdguard/error.h"

namespace bdguard {

nlohmann::json to_json(const AttackOptions& o) {
  nlohmann::json doc = {{"attack", o.trigger.method},
                        {"data", o.data},
                        {"test_data", o.test_data},
                        {"arch", o.arch},
                        {"mapping", mapping_name(o.mapping)},
                        {"poison_rate", o.poison_rate},
                        {"target", o.target},
                        {"epochs", o.epochs},
                        {"batch", o.batch},
                        {"lr", o.lr},
                        {"optimizer", optimizer_name(o.optimizer)},
                        {"seed", o.seed},
                        {"max_train", o.max_train},
                        {"max_steps", o.max_steps}};
  if (o.split_seed) doc["split_seed"] = *o.split_seed;
  const TriggerOptions& t = o.trigger;
  if (t.method == "badnets") {
    doc["trigger"] = t.trigger;
    doc["trigger_size"] = t.size;
    doc["position"] = t.position;
    doc["blend"] = t.blend;
  } else if (t.method == "blended") {
    doc["pattern"] = t.pattern;
    doc["alpha"] = t.alpha;
  } else if (t.method == "sig") {
    doc["delta"] = t.delta;
    doc["frequency"] = t.frequency;
    doc["clean_label"] = o.clean_label;
  } else if (t.method == "wanet") {
    doc["k"] = t.k;
    doc["s"] = t.s;
    doc["grid_rescale"] = t.grid_rescale;
    doc["cross_ratio"] = o.cross_ratio;
  }
  return doc;
}

AttackOptions attack_options_from_json(const nlohmann::json& doc, const std::string& origin) {
  AttackOptions o;
  try {
    TriggerOptions& t = o.trigger;
    t.method = doc.value("attack", std::string("badnets"));
    o.data = doc.at("data").get<std::string>();
    o.test_data = doc.at("test_data").get<std::string>();
    o.arch = doc.at("arch").get<std::string>();
    o.mapping = parse_mapping(doc.value("mapping", std::string("all-to-one")));
    o.poison_rate = doc.at("poison_rate").get<double>();
    o.target = doc.at("target").get<int64_t>();
    o.epochs = doc.at("epochs").get<int>();
    o.batch = doc.at("batch").get<int64_t>();
    o.lr = doc.at("lr").get<double>();
    o.optimizer = parse_optimizer(doc.at("optimizer").get<std::string>());
    o.seed = doc.at("seed").get<uint64_t>();
    o.max_train = doc.at("max_train").get<int64_t>();
    o.max_steps = doc.at("max_steps").get<int64_t>();
    if (doc.contains("split_seed")) o.split_seed = doc.at("split_seed").get<uint64_t>();
    if (t.method == "badnets") {
      t.trigger = doc.at("trigger").get<std::string>();
      t.size = doc.at("trigger_size").get<int64_t>();
      t.position = doc.at("position").get<std::string>();
      t.blend = doc.at("blend").get<double>();
    } else if (t.method == "blended") {
      t.pattern = doc.at("pattern").get<std::string>();
      t.alpha = doc.at("alpha").get<double>();
    } else if (t.method == "sig") {
      t.delta = doc.at("delta").get<double>();
      t.frequency = doc.at("frequency").get<double>();
      o.clean_label = doc.at("clean_label").get<bool>();
    } else if (t.method == "wanet") {
      t.k = doc.at("k").get<int64_t>();
      t.s = doc.at("s").get<double>();
      t.grid_rescale = doc.at("grid_rescale").get<double>();
      o.cross_ratio = doc.at("cross_ratio").get<double>();
    } else {
      fail(origin, "attack", "badnets, blended, sig or wanet", "'" + t.method + "'");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(origin, "attack options", "the fields bdguard attack records", e.what());
  }
  return o;
}

}  // namespace bdguard
