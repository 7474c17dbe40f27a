// bdguard zoo make: a labelled model zoo (clean models and BadNets of every attack and
// architecture), trained here in parallel processes or on Slurm; bdguard zoo task: one
// model of it; bdguard zoo finish: its ground truth and zoo.json.
#include <cstdio>
#include <filesystem>
#include <thread>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/zoo.h"
#include "campaign_cli.h"
#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

struct ZooMakeOptions {
  ZooOptions zoo;
  int jobs = 1;
  int threads = 0;  // per model; default: the cores divided among the jobs
  bool slurm = false, quiet = false, json = false;
  ZooSlurmOptions slurm_options;
  std::string sbatch = "sbatch";
};

struct ZooTaskOptions {
  std::string dir;
  int64_t index = 0;
  int threads = 1;
};

// Replaces `placeholder` in the script at `path` with `job` and writes it back.
std::string submit(const std::string& sbatch, const std::string& path, std::string text,
                   const std::string& placeholder, const std::string& job) {
  if (!placeholder.empty()) {
    for (size_t at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder)) {
      text.replace(at, placeholder.size(), job);
    }
  }
  write_file_atomic(path, text);
  return sbatch_submit(sbatch, path);
}

void report(const ZooPlan& plan, const nlohmann::json& doc, bool json) {
  if (json) {
    print_json(doc);
    return;
  }
  int64_t unmet = 0;
  for (const auto& m : doc["models"]) unmet += m["criteria_met"].get<bool>() ? 0 : 1;
  std::printf("zoo: %zu models in %s (ground_truth.csv, zoo.json, models/, data/)\n",
              plan.recipes.size(), plan.options.out.c_str());
  if (unmet > 0) {
    std::printf(
        "%lld models missed --min-asr or the accuracy bound after %d attempts (see "
        "zoo.json: criteria_met, attempts)\n",
        static_cast<long long>(unmet), plan.options.max_attempts);
  }
}

int run_zoo_slurm(const ZooMakeOptions& o, const ZooPlan& plan) {
  ZooSlurmOptions so = o.slurm_options;
  so.bdguard = self_exe();
  so.cpus = so.cpus > 0 ? so.cpus : std::max(1, o.threads);
  const ZooSlurmScripts s = zoo_slurm_scripts(plan, so);
  const fs::path dir = fs::path(plan.options.out) / "slurm";
  fs::create_directories(dir / "logs");
  nlohmann::json jobs = {{"submitted", campaign_timestamp()}};
  std::string clean_job, models_job;
  if (!s.clean.empty()) {
    clean_job = submit(o.sbatch, (dir / "clean.sbatch").string(), s.clean, "", "");
    jobs["clean_job"] = clean_job;
  }
  if (!s.models.empty()) {
    models_job =
        submit(o.sbatch, (dir / "models.sbatch").string(), s.models, kZooCleanJob, clean_job);
    jobs["models_job"] = models_job;
  }
  const std::string finish_job = submit(o.sbatch, (dir / "finish.sbatch").string(), s.finish,
                                        models_job.empty() ? kZooCleanJob : kZooModelsJob,
                                        models_job.empty() ? clean_job : models_job);
  jobs["finish_job"] = finish_job;
  jobs["clean"] = s.clean_indices;
  jobs["models"] = s.model_indices;
  write_file_atomic((dir / "jobs.json").string(), jobs.dump(2) + "\n");
  if (o.json) {
    print_json(jobs);
  } else {
    std::printf(
        "zoo: %zu clean and %zu other models submitted (jobs %s %s), then finish (job "
        "%s): %s/ground_truth.csv\n",
        s.clean_indices.size(), s.model_indices.size(), clean_job.empty() ? "-" : clean_job.c_str(),
        models_job.empty() ? "-" : models_job.c_str(), finish_job.c_str(),
        plan.options.out.c_str());
  }
  return 0;
}

int run_zoo_make(ZooMakeOptions o) {
  o.zoo.out = fs::absolute(o.zoo.out).lexically_normal().string();
  if (!o.zoo.data.empty()) o.zoo.data = fs::absolute(o.zoo.data).lexically_normal().string();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (o.threads <= 0) o.threads = std::max(1, static_cast<int>(cores) / std::max(1, o.jobs));
  open_zoo(o.zoo);
  const ZooPlan plan = read_zoo_plan(o.zoo.out);
  if (o.slurm) return run_zoo_slurm(o, plan);
  const std::string self = self_exe();
  const auto missing = zoo_missing(plan);
  int64_t done = static_cast<int64_t>(plan.recipes.size() - missing.size());
  if (!o.quiet) {
    std::fprintf(stderr, "zoo: %zu models planned, %lld already trained, %d at a time\n",
                 plan.recipes.size(), static_cast<long long>(done), o.jobs);
  }
  ZooLocalOptions lo;
  lo.jobs = o.jobs;
  lo.command = [&](int64_t index) {
    return std::vector<std::string>{self,        "zoo",
                                    "task",      plan.options.out,
                                    "--index",   std::to_string(index),
                                    "--threads", std::to_string(o.threads)};
  };
  lo.on_done = [&](int64_t index, const std::string& error) {
    ++done;
    if (o.quiet) return;
    const auto& r = plan.recipes[static_cast<size_t>(index)];
    if (!error.empty()) {
      std::fprintf(stderr, "[%lld/%zu] %s: failed: %s\n", static_cast<long long>(done),
                   plan.recipes.size(), r.name.c_str(), error.c_str());
      return;
    }
    const auto rec = read_zoo_record(plan.options.out, r);
    if (!rec) return;
    const ZooAttempt& a = rec->attempts[static_cast<size_t>(rec->kept)];
    std::fprintf(stderr, "[%lld/%zu] %s: accuracy %.2f %%, ASR %.2f %%, %zu attempt(s), %.0f s\n",
                 static_cast<long long>(done), plan.recipes.size(), r.name.c_str(),
                 a.clean_accuracy, a.asr, rec->attempts.size(), a.train_seconds);
  };
  const int64_t failed = run_zoo_local(plan, lo);
  if (failed > 0) {
    fail<Error>(plan.options.out, "zoo make", "every model trained",
                std::to_string(failed) +
                    " failed (logs/<name>.log; run the same command again "
                    "to retry them)");
  }
  report(plan, finish_zoo(plan), o.json);
  return 0;
}

int run_zoo_task(const ZooTaskOptions& o, int64_t index) {
  const ZooPlan plan = read_zoo_plan(fs::absolute(o.dir).lexically_normal().string());
  const std::string self = self_exe();
  const ZooRecord rec = train_zoo_model(
      plan, index, std::max(1, o.threads),
      [&](const std::vector<std::string>& args) { return run_zoo_child(self, args); });
  const ZooAttempt& a = rec.attempts[static_cast<size_t>(rec.kept)];
  std::printf("%s: %s, accuracy %.2f %%, ASR %.2f %%, %zu attempt(s)%s\n", rec.name.c_str(),
              rec.file.c_str(), a.clean_accuracy, a.asr, rec.attempts.size(),
              rec.criteria_met ? "" : " (criteria not met)");
  return 0;
}

}  // namespace

void setup_zoo(CLI::App& app) {
  auto* zoo = app.add_subcommand("zoo", "make a labelled zoo of clean and backdoored models");
  zoo->require_subcommand(1);

  auto m = std::make_shared<ZooMakeOptions>();
  auto* make = zoo->add_subcommand(
      "make", "train N models of seeded, varied recipes (resumable; here or on Slurm)");
  make->add_option("--out", m->zoo.out, "the zoo folder")->required();
  make->add_option("--models", m->zoo.models, "how many models")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  make->add_option("--seed", m->zoo.seed, "seed of the recipes (and the clean split)")
      ->capture_default_str();
  make->add_option("--kinds", m->zoo.kinds, "clean,badnets,blended,sig,wanet,all-to-all")
      ->delimiter(',')
      ->capture_default_str();
  make->add_option("--archs", m->zoo.archs, "architectures (bdguard attack --arch)")
      ->delimiter(',')
      ->capture_default_str();
  make->add_option("--clean-fraction", m->zoo.clean_fraction, "fraction of clean models")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  make->add_option("--poison-rates", m->zoo.poison_rates, "poison rates drawn from")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  make->add_option("--format", m->zoo.format, "keras (.h5) or onnx")
      ->check(CLI::IsMember({"keras", "onnx"}))
      ->capture_default_str();
  make->add_option("--max-train", m->zoo.max_train, "training images per model")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  make->add_option("--epochs", m->zoo.epochs, "training epochs per model")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  make->add_option("--data", m->zoo.data, "Fashion-MNIST folder (package dataset-fashion-mnist)");
  make->add_option("--min-asr", m->zoo.min_asr,
                   "a BadNet below this ASR (%) is retrained with the next seed")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  make->add_option("--max-drop", m->zoo.max_drop,
                   "a BadNet this many points below its clean twins is retrained")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  make->add_option("--max-attempts", m->zoo.max_attempts, "training attempts per model")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  make->add_option("--jobs", m->jobs, "models trained at once (processes)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  make->add_option("--threads", m->threads, "threads per model (default: cores / jobs)")
      ->check(CLI::Range(1, 4096));
  make->add_flag("--slurm", m->slurm, "submit the training as Slurm array jobs instead");
  make->add_option("--partition", m->slurm_options.partition, "the Slurm partition");
  make->add_option("--time", m->slurm_options.time, "each model's time limit (Slurm's format)");
  make->add_option("--cpus", m->slurm_options.cpus, "CPUs per model (Slurm)")
      ->check(CLI::Range(1, 4096));
  make->add_option("--mem", m->slurm_options.mem, "memory per model (Slurm's format: 2G)");
  make->add_option("--array-limit", m->slurm_options.array_limit,
                   "at most this many models at once (Slurm)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  make->add_option("--sbatch", m->sbatch, "the sbatch program")->capture_default_str();
  make->add_flag("--json", m->json, "print zoo.json (or the Slurm jobs) as JSON");
  make->add_flag("--quiet,-q", m->quiet, "no progress on stderr");
  make->callback([m] { run_zoo_make(*m); });

  auto t = std::make_shared<ZooTaskOptions>();
  auto* task = zoo->add_subcommand(
      "task", "train one model of a zoo (the index: --index, else $SLURM_ARRAY_TASK_ID)");
  task->add_option("dir", t->dir, "the zoo folder")->required()->check(CLI::ExistingDirectory);
  task->add_option("--index", t->index, "the model's index in zoo_plan.json")
      ->check(CLI::NonNegativeNumber);
  task->add_option("--threads", t->threads, "threads for training")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  task->callback([t, task] { run_zoo_task(*t, array_task_index(*task, t->index)); });

  auto f = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* finish = zoo->add_subcommand(
      "finish", "write ground_truth.csv and zoo.json once every model is trained");
  finish->add_option("dir", *f, "the zoo folder")->required()->check(CLI::ExistingDirectory);
  finish->add_flag("--json", *json, "print zoo.json");
  finish->callback([f, json] {
    const ZooPlan plan = read_zoo_plan(fs::absolute(*f).lexically_normal().string());
    report(plan, finish_zoo(plan), *json);
  });
}

}  // namespace bdguard::cli
