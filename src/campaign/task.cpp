// One campaign task: the hash checks, skipping a finished task, running the method,
// results/I.json; the detection score and the trojan probability.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "bdguard/campaign.h"
#include "bdguard/config.h"
#include "bdguard/data_formats.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "campaign/text.h"

namespace bdguard {

namespace fs = std::filesystem;

namespace {

std::string sha256_text(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// An infinite score is stored as the string "inf" (JSON has no infinity).
nlohmann::json score_json(double s) {
  return std::isfinite(s) ? nlohmann::json(s) : nlohmann::json(s > 0 ? "inf" : "-inf");
}
double score_of(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string() && j.get<std::string>() == "inf")
    return std::numeric_limits<double>::infinity();
  return 0;
}

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.empty() ? "unknown error" : line;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

std::string slurm_job() {
  const char* job = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (job && task) return std::string(job) + "_" + task;
  const char* id = std::getenv("SLURM_JOB_ID");
  return id ? id : "";
}

// Holds C/tasks/.I.lock (flock) while the task runs: a second process on the same task
// (a repeated command while the first still runs) is refused instead of racing it.
class TaskLock {
 public:
  TaskLock(const std::string& path, int64_t index) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail<IoError>(path, "", "a lock file bdguard can create", std::strerror(errno));
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fail<InvalidArgument>(path, "task " + std::to_string(index), "a task no other process runs",
                            "one another process is running now");
    }
  }
  ~TaskLock() { ::close(fd_); }
  TaskLock(const TaskLock&) = delete;
  TaskLock& operator=(const TaskLock&) = delete;

 private:
  int fd_ = -1;
};

void check_input(const nlohmann::json& settings, const std::string& role) {
  if (!settings.contains(role) || !settings[role].is_string()) return;
  const std::string path = settings[role].get<std::string>();
  const std::string key = role + "_sha256";
  if (path.empty() || !settings.contains(key)) return;
  const std::string expected = settings[key].get<std::string>();
  if (expected.empty()) return;  // no file (a scan's calibration "none")
  const std::string actual = sha256_data(path);
  if (actual != expected) {
    fail<InvalidArgument>(path, "sha256 (" + role + ")", expected + " as in the manifest",
                          actual + ": the file changed since campaign init");
  }
}

}  // namespace

std::string task_key(const std::string& model_sha256, const nlohmann::json& settings) {
  return sha256_text(model_sha256 + "\n" + settings.dump());
}

std::string task_result_path(const std::string& dir, int64_t index) {
  return (fs::path(dir) / "results" / (std::to_string(index) + ".json")).string();
}

nlohmann::json to_json(const TaskResult& r) {
  const bool ok = r.status == "ok";
  auto opt = [](const std::optional<int64_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {
      {"index", r.index},
      {"model", r.model},
      {"path", r.path},
      {"model_sha256", r.model_sha256},
      {"methods", r.methods},
      {"key", r.key},
      {"status", r.status},
      {"error", ok ? nlohmann::json(nullptr) : nlohmann::json(r.error)},
      {"score", ok ? score_json(r.score) : nlohmann::json(nullptr)},
      {"trojan_probability", ok ? r.trojan_probability : kMissingProbability},
      {"suspect_label", ok && r.suspect >= 0 ? nlohmann::json(r.suspect) : nlohmann::json(nullptr)},
      {"backdoored", ok ? nlohmann::json(r.backdoored) : nlohmann::json(nullptr)},
      {"target", ok ? opt(r.target) : nlohmann::json(nullptr)},
      {"seconds", r.seconds},
      {"peak_rss_mib", r.peak_rss_mib},
      {"started", r.started},
      {"finished", r.finished},
      {"host", r.host},
      {"slurm_job", r.slurm_job},
      {"attempt", r.attempt},
      {"outputs", r.outputs},
      {"warnings", r.warnings},
      {"details", r.details}};
}

TaskResult task_result_from_json(const nlohmann::json& doc, const std::string& file) {
  if (!doc.is_object()) fail(file, "", "a JSON object", doc.type_name());
  TaskResult r;
  try {
    r.index = doc.at("index").get<int64_t>();
    r.status = doc.at("status").get<std::string>();
    r.key = doc.value("key", "");
    r.model = doc.value("model", "");
    r.path = doc.value("path", "");
    r.model_sha256 = doc.value("model_sha256", "");
    r.methods = doc.value("methods", "");
    if (doc.contains("error") && doc["error"].is_string()) r.error = doc["error"];
    r.score = score_of(doc.value("score", nlohmann::json(nullptr)));
    r.trojan_probability = doc.value("trojan_probability", kMissingProbability);
    if (doc.contains("suspect_label") && doc["suspect_label"].is_number())
      r.suspect = doc["suspect_label"];
    if (doc.contains("backdoored") && doc["backdoored"].is_boolean())
      r.backdoored = doc["backdoored"];
    if (doc.contains("target") && doc["target"].is_number())
      r.target = doc["target"].get<int64_t>();
    r.seconds = doc.value("seconds", 0.0);
    r.peak_rss_mib = doc.value("peak_rss_mib", 0.0);
    r.started = doc.value("started", "");
    r.finished = doc.value("finished", "");
    r.host = doc.value("host", "");
    r.slurm_job = doc.value("slurm_job", "");
    r.attempt = doc.value("attempt", "");
    r.outputs = doc.value("outputs", std::vector<std::string>{});
    r.warnings = doc.value("warnings", std::vector<std::string>{});
    r.details = doc.value("details", nlohmann::json(nullptr));
  } catch (const nlohmann::json::exception& e) {
    fail(file, "", "a task result (index, status, ...)", e.what());
  }
  if (r.status != "ok" && r.status != "failed") fail(file, "status", "ok or failed", r.status);
  return r;
}

std::optional<TaskResult> read_task_result(const std::string& dir, int64_t index) {
  const std::string file = task_result_path(dir, index);
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  TaskResult r = task_result_from_json(
      read_json_file(file, size_t{64} << 20, "a campaign task's result"), file);
  if (r.index != index) fail(file, "index", std::to_string(index), std::to_string(r.index));
  return r;
}

void write_task_result(const std::string& dir, const TaskResult& r) {
  fs::create_directories(fs::path(dir) / "results");
  write_file_atomic(task_result_path(dir, r.index), to_json(r).dump(2) + "\n");
}

bool task_done(const Manifest& m, int64_t index) {
  const CampaignModel& model = campaign_model(m, index);
  try {
    auto r = read_task_result(m.dir, index);
    return r && r->status == "ok" && r->key == task_key(model.sha256, m.settings) &&
           sha256_file(model.path) == model.sha256;
  } catch (const Error&) {
    return false;
  }
}

TaskRun run_task(const Manifest& m, int64_t index, const TaskMethod& method,
                 const std::string& attempt) {
  const CampaignModel& model = campaign_model(m, index);
  const fs::path tasks = fs::path(m.dir) / "tasks";
  fs::create_directories(tasks);
  fs::create_directories(fs::path(m.dir) / "results");
  TaskLock lock((tasks / ("." + std::to_string(index) + ".lock")).string(), index);
  const auto start = std::chrono::steady_clock::now();
  TaskResult r;
  r.index = index;
  r.model = model.name;
  r.path = model.path;
  r.model_sha256 = model.sha256;
  r.methods = m.settings.value("methods", "detect");
  r.key = task_key(model.sha256, m.settings);
  r.attempt = attempt;
  r.started = campaign_timestamp();
  r.host = campaign::host_name();
  r.slurm_job = slurm_job();
  try {
    const std::string actual = sha256_file(model.path);
    if (actual != model.sha256) {
      fail<InvalidArgument>(model.path, "sha256", model.sha256 + " as in the manifest",
                            actual + ": the file changed since campaign init");
    }
    std::optional<TaskResult> earlier;
    try {
      earlier = read_task_result(m.dir, index);
    } catch (const Error&) {
      // An unreadable earlier result is replaced.
    }
    if (earlier && earlier->status == "ok" && earlier->key == r.key) return {*earlier, true};
    check_input(m.settings, "clean");
    for (const char* role :
         {"arch_from", "poisoned_valid", "test", "poisoned_test", "calibration"}) {
      check_input(m.settings, role);
    }
    const fs::path dir = tasks / std::to_string(index);
    fs::remove_all(dir);
    fs::create_directories(dir);
    TaskOutcome out = method(model, m.settings, dir.string());
    r.status = "ok";
    r.score = out.score;
    r.trojan_probability = out.probability ? *out.probability : trojan_probability(out.score);
    r.suspect = out.suspect;
    r.backdoored = out.backdoored;
    r.target = out.target;
    for (const auto& f : out.outputs)
      r.outputs.push_back("tasks/" + std::to_string(index) + "/" + f);
    r.warnings = out.warnings;
    r.details = out.details;
  } catch (const std::bad_alloc&) {
    r.status = "failed";
    r.error = "out of memory";
  } catch (const std::exception& e) {
    r.status = "failed";
    r.error = first_line(e.what());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_mib = peak_rss_mib();
  r.finished = campaign_timestamp();
  write_task_result(m.dir, r);
  return {r, false};
}

void record_task_failure(const Manifest& m, int64_t index, const std::string& error,
                         const std::string& attempt, double seconds) {
  const CampaignModel& model = campaign_model(m, index);
  try {
    auto earlier = read_task_result(m.dir, index);
    if (earlier && !attempt.empty() && earlier->attempt == attempt) return;
  } catch (const Error&) {
    // Replaced below.
  }
  TaskResult r;
  r.index = index;
  r.model = model.name;
  r.path = model.path;
  r.model_sha256 = model.sha256;
  r.methods = m.settings.value("methods", "detect");
  r.status = "failed";
  r.error = first_line(error);
  r.seconds = seconds;
  r.attempt = attempt;
  r.finished = campaign_timestamp();
  r.host = campaign::host_name();
  r.slurm_job = slurm_job();
  write_task_result(m.dir, r);
}

DetectionScore nc_detection_score(const NeuralCleanseResult& r) {
  DetectionScore s;
  for (const auto& l : r.labels) {
    if (!l.refined || !(l.mask_l1 < r.median)) continue;
    if (s.label < 0 || l.anomaly_index > s.score) {
      s.score = l.anomaly_index;
      s.label = l.label;
    }
  }
  return s;
}

double trojan_probability(double score) {
  if (std::isnan(score)) return kMissingProbability;
  return 1.0 / (1.0 + std::exp(-kProbabilitySlope * (score - kProbabilityCentre)));
}

std::string new_attempt_token() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return campaign::host_name() + ":" + std::to_string(getpid()) + ":" +
         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

}  // namespace bdguard
