// bdguard campaign submit C --slurm: the tasks as one Slurm array job, the merge as a job
// that depends on it; --failed resubmits only the tasks not done; --dry-run prints.
#include <cstdio>
#include <filesystem>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "campaign_cli.h"
#include "commands.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

struct SubmitOptions {
  std::string dir, partition, time, mem, sbatch = "sbatch";
  int cpus = 0;
  int64_t array_limit = 0;
  bool slurm = false, dry_run = false, failed = false, merge_anyway = false, json = false;
};

// A value that goes into an #SBATCH line as it is.
const CLI::Validator kSlurmValue(
    [](std::string& v) -> std::string {
      if (v.empty() || v.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_.:,+-=") != std::string::npos) {
        return "expected letters, digits and _.:,+-= only, found '" + v + "'";
      }
      return "";
    },
    "SLURM VALUE");

nlohmann::json read_jobs(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {{"submissions", nlohmann::json::array()}};
  const nlohmann::json doc = read_json_file(path, size_t{16} << 20, "the campaign's submissions");
  if (!doc.is_object() || !doc.contains("submissions") || !doc["submissions"].is_array()) {
    fail(path, "submissions", "the record of earlier submissions", "something else");
  }
  return doc;
}

std::string squeue_of(const std::string& sbatch) {
  const fs::path p(sbatch);
  return p.has_parent_path() ? (p.parent_path() / "squeue").string() : "squeue";
}

int run_submit(const SubmitOptions& o) {
  const Manifest m = read_manifest(o.dir);
  std::vector<int64_t> indices;
  for (const auto& model : m.models) {
    if (!o.failed || !task_done(m, model.index)) indices.push_back(model.index);
  }
  const fs::path slurm = fs::path(m.dir) / "slurm";
  const std::string jobs_file = (slurm / "jobs.json").string();
  if (indices.empty()) {
    std::printf("nothing to resubmit: every task is done; merge with: bdguard campaign merge %s\n",
                m.dir.c_str());
    return 0;
  }
  nlohmann::json jobs = read_jobs(jobs_file);
  if (o.failed && !o.dry_run) {
    std::vector<std::string> earlier;
    for (const auto& s : jobs["submissions"]) {
      for (const char* k : {"array_job", "merge_job"}) {
        if (s.contains(k) && s[k].is_string()) earlier.push_back(s[k]);
      }
    }
    const auto active = slurm_active_jobs(squeue_of(o.sbatch), earlier);
    if (!active.empty()) {
      std::string list;
      for (const auto& j : active) list += (list.empty() ? "" : ", ") + j;
      fail<InvalidArgument>(jobs_file, "earlier jobs",
                            "none of this campaign's jobs pending or running (wait, or scancel "
                            "them)",
                            "still active: " + list);
    }
  }
  const int threads = m.settings.value("threads", 1);
  SlurmOptions so;
  so.bdguard = self_exe();
  so.partition = o.partition;
  so.time = o.time;
  so.mem = o.mem;
  so.cpus = o.cpus > 0 ? o.cpus : threads;
  so.array_limit = o.array_limit > 0 ? o.array_limit : static_cast<int64_t>(indices.size());
  so.indices = indices;
  so.merge_anyway = o.merge_anyway;
  if (so.cpus < threads) {
    std::fprintf(stderr,
                 "warning: --cpus %d is less than the %d threads each task uses (campaign init "
                 "--threads)\n",
                 so.cpus, threads);
  }
  fs::create_directories(slurm / "logs");
  const std::string task_path = (slurm / "task.sbatch").string();
  const std::string merge_path = (slurm / "merge.sbatch").string();
  const std::string task = slurm_task_script(m, so);
  write_file_atomic(task_path, task);
  const std::string spec = slurm_array_spec(indices, so.array_limit);
  if (o.dry_run) {
    const std::string merge = slurm_merge_script(m, so, kArrayJobPlaceholder);
    write_file_atomic(merge_path, merge);
    if (o.json) {
      print_json({{"dry_run", true},
                  {"array", spec},
                  {"task_script", task_path},
                  {"merge_script", merge_path},
                  {"task_sbatch", task},
                  {"merge_sbatch", merge}});
      return 0;
    }
    std::printf("# %s\n%s\n# %s\n%s\n", task_path.c_str(), task.c_str(), merge_path.c_str(),
                merge.c_str());
    std::printf(
        "# dry run: nothing submitted. Submitting runs: sbatch --parsable %s, then writes "
        "the array's job id into %s and runs sbatch --parsable on it.\n",
        task_path.c_str(), merge_path.c_str());
    return 0;
  }
  const std::string array_job = sbatch_submit(o.sbatch, task_path);
  if (!o.json) {
    std::printf("task array: job %s (--array=%s, %zu tasks)\n", array_job.c_str(), spec.c_str(),
                indices.size());
    std::fflush(stdout);
  }
  write_file_atomic(merge_path, slurm_merge_script(m, so, array_job));
  const std::string merge_job = sbatch_submit(o.sbatch, merge_path);
  jobs["submissions"].push_back({{"array_job", array_job},
                                 {"merge_job", merge_job},
                                 {"array", spec},
                                 {"indices", indices},
                                 {"failed_only", o.failed},
                                 {"submitted", campaign_timestamp()}});
  write_file_atomic(jobs_file, jobs.dump(2) + "\n");
  if (o.json) {
    print_json({{"array_job", array_job},
                {"merge_job", merge_job},
                {"array", spec},
                {"indices", indices},
                {"task_script", task_path},
                {"merge_script", merge_path}});
    return 0;
  }
  std::printf("merge: job %s (after every task %s)\n", merge_job.c_str(),
              o.merge_anyway ? "has ended" : "has succeeded; a failed task cancels it");
  std::printf("logs: %s/logs/; then: %s/%s and %s/%s\n", slurm.string().c_str(), m.dir.c_str(),
              kResultsCsv, m.dir.c_str(), kReportHtml);
  return 0;
}

}  // namespace

void setup_campaign_submit(CLI::App& campaign) {
  auto o = std::make_shared<SubmitOptions>();
  auto* sub = campaign.add_subcommand(
      "submit", "submit the tasks as a Slurm array job and the merge as a job after it");
  sub->add_option("dir", o->dir, "the campaign folder")->required()->check(CLI::ExistingDirectory);
  sub->add_flag("--slurm", o->slurm, "submit to Slurm (sbatch)")->required();
  sub->add_option("--partition", o->partition, "the Slurm partition")->check(kSlurmValue);
  sub->add_option("--time", o->time, "each task's time limit (Slurm's format: 30, 1:00:00, ...)")
      ->check(kSlurmValue);
  sub->add_option("--cpus", o->cpus, "CPUs per task (default: the tasks' --threads)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--mem", o->mem, "memory per task (Slurm's format: 2G, 1500M)")
      ->check(kSlurmValue);
  sub->add_option("--array-limit", o->array_limit,
                  "at most this many tasks at once (the array's %K; default: all)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  sub->add_flag("--dry-run", o->dry_run, "write and print the scripts, submit nothing");
  sub->add_flag("--failed", o->failed,
                "resubmit only the tasks whose result is missing, failed or for other inputs");
  sub->add_flag("--merge-anyway", o->merge_anyway,
                "merge when the array has ended even if tasks failed (afterany, not afterok)");
  sub->add_option("--sbatch", o->sbatch, "the sbatch program")->capture_default_str();
  sub->add_flag("--json", o->json, "print the job ids as JSON");
  sub->callback([o] { run_submit(*o); });
}

}  // namespace bdguard::cli
