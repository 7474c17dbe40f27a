// Running a zoo's training: child processes here, or Slurm array jobs (zoo.h).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "bdguard/zoo.h"
#include "campaign/process.h"
#include "campaign/slurm_text.h"

namespace bdguard {

namespace fs = std::filesystem;

std::string run_zoo_child(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = campaign::spawn(argv, -1, -1);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::string("could not be waited for: ") + std::strerror(errno);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return campaign::exit_text(status);
}

namespace {

// The models without a record: clean ones, then the others.
std::pair<std::vector<int64_t>, std::vector<int64_t>> missing_by_phase(const ZooPlan& plan) {
  std::pair<std::vector<int64_t>, std::vector<int64_t>> out;
  for (int64_t i : zoo_missing(plan)) {
    (plan.recipes[static_cast<size_t>(i)].backdoored() ? out.second : out.first).push_back(i);
  }
  return out;
}

}  // namespace

int64_t run_zoo_local(const ZooPlan& plan, const ZooLocalOptions& o) {
  const fs::path logs = fs::path(plan.options.out) / "logs";
  fs::create_directories(logs);
  const auto [clean, others] = missing_by_phase(plan);
  int64_t failed = 0;
  for (const auto* phase : {&clean, &others}) {
    std::map<pid_t, int64_t> running;
    size_t next = 0;
    auto wait_one = [&] {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, 0);
      if (pid < 0) {
        if (errno == EINTR) return;
        fail<IoError>(plan.options.out, "zoo tasks", "child processes to wait for",
                      std::strerror(errno));
      }
      const auto it = running.find(pid);
      if (it == running.end()) return;
      const int64_t index = it->second;
      running.erase(it);
      std::string error;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ++failed;
        const std::string log =
            (logs / (plan.recipes[static_cast<size_t>(index)].name + ".log")).string();
        error = campaign::exit_text(status);
        const std::string last = campaign::last_error_line(campaign::file_tail(log, 1 << 16));
        if (!last.empty()) error += ": " + last;
      }
      if (o.on_done) o.on_done(index, error);
    };
    while (next < phase->size() || !running.empty()) {
      if (next < phase->size() && static_cast<int>(running.size()) < std::max(1, o.jobs)) {
        const int64_t index = (*phase)[next++];
        const std::string log =
            (logs / (plan.recipes[static_cast<size_t>(index)].name + ".log")).string();
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) fail<IoError>(log, "", "a log file bdguard can write", std::strerror(errno));
        pid_t pid = -1;
        try {
          pid = campaign::spawn(o.command(index), fd, fd);
        } catch (...) {
          close(fd);
          throw;
        }
        close(fd);
        running[pid] = index;
        continue;
      }
      wait_one();
    }
  }
  return failed;
}

namespace {

std::string array_script(const ZooPlan& plan, const ZooSlurmOptions& o, const std::string& what,
                         const std::vector<int64_t>& indices, const std::string& after) {
  const std::string dir = slurm_path(plan.options.out);
  const std::string logs = (fs::path(dir) / "slurm" / "logs").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# bdguard zoo: trains the " << what << " of " << dir << "/zoo_plan.json, one array task\n"
    << "# per model (bdguard zoo task reads $SLURM_ARRAY_TASK_ID). Written by bdguard zoo make.\n"
    << "#SBATCH --job-name=bdguard-zoo-" << what << "\n"
    << "#SBATCH --array=" << slurm_array_spec(indices, o.array_limit) << "\n"
    << "#SBATCH --output=" << logs << "/" << what << "-%A_%a.out\n"
    << "#SBATCH --error=" << logs << "/" << what << "-%A_%a.err\n"
    << "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=" << std::max(1, o.cpus) << "\n";
  if (!after.empty()) s << "#SBATCH --dependency=afterany:" << after << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.time.empty()) s << "#SBATCH --time=" << o.time << "\n";
  if (!o.mem.empty()) s << "#SBATCH --mem=" << o.mem << "\n";
  s << "exec " << shell_quote(slurm_path(o.bdguard)) << " zoo task " << shell_quote(dir)
    << " --threads " << std::max(1, o.cpus) << "\n";
  return s.str();
}

}  // namespace

ZooSlurmScripts zoo_slurm_scripts(const ZooPlan& plan, const ZooSlurmOptions& o) {
  ZooSlurmScripts out;
  std::tie(out.clean_indices, out.model_indices) = missing_by_phase(plan);
  if (!out.clean_indices.empty()) {
    out.clean = array_script(plan, o, "clean", out.clean_indices, "");
  }
  if (!out.model_indices.empty()) {
    out.models = array_script(plan, o, "models", out.model_indices,
                              out.clean_indices.empty() ? "" : kZooCleanJob);
  }
  const std::string dir = slurm_path(plan.options.out);
  const std::string logs = (fs::path(dir) / "slurm" / "logs").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# bdguard zoo: writes " << dir << "/ground_truth.csv and zoo.json once every model\n"
    << "# has been trained. Written by bdguard zoo make.\n"
    << "#SBATCH --job-name=bdguard-zoo-finish\n"
    << "#SBATCH --output=" << logs << "/finish-%j.out\n"
    << "#SBATCH --error=" << logs << "/finish-%j.err\n"
    << "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n";
  const std::string after = !out.models.empty()  ? kZooModelsJob
                            : !out.clean.empty() ? kZooCleanJob
                                                 : "";
  if (!after.empty()) s << "#SBATCH --dependency=afterany:" << after << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  s << "exec " << shell_quote(slurm_path(o.bdguard)) << " zoo finish " << shell_quote(dir) << "\n";
  out.finish = s.str();
  return out;
}

}  // namespace bdguard
