// Slurm: the array job of the tasks, the merge job after it, and submitting them.
#include <sys/wait.h>

#include <cctype>
#include <filesystem>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "campaign/process.h"
#include "campaign/slurm_text.h"
#include "io/csv.h"

namespace bdguard {

namespace fs = std::filesystem;

// Paths go into #SBATCH lines and Slurm's file-name patterns unquoted: no white space,
// quotes, shell or pattern characters.
const std::string& slurm_path(const std::string& path) {
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u == 0x7f || std::string("\"'`$\\%;&|<>*?").find(c) != std::string::npos) {
      fail<InvalidArgument>(
          path, "",
          "a path without white space, quotes or any of $\\%;&|<>*? (it goes into #SBATCH lines)",
          std::string("the character '") + c + "'");
    }
  }
  return path;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {

std::string job_name(const Manifest& m) {
  std::string name = fs::path(m.dir).filename().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return name.substr(0, 40);
}

void resources(std::ostringstream& s, const SlurmOptions& o, bool merge) {
  s << "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=" << (merge ? 1 : std::max(1, o.cpus)) << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.time.empty()) s << "#SBATCH --time=" << (merge ? "10" : o.time) << "\n";
  if (!o.mem.empty()) s << "#SBATCH --mem=" << (merge ? "1G" : o.mem) << "\n";
}

}  // namespace

std::string slurm_array_spec(const std::vector<int64_t>& indices, int64_t limit) {
  std::string out;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(indices[i]);
    if (j > i) out += "-" + std::to_string(indices[j]);
    i = j + 1;
  }
  if (limit > 0) out += "%" + std::to_string(limit);
  return out;
}

std::string slurm_task_script(const Manifest& m, const SlurmOptions& o) {
  if (o.indices.empty()) fail<InvalidArgument>(m.dir, "Slurm array", "at least one task", "none");
  const std::string dir = slurm_path(m.dir);
  const std::string logs = (fs::path(dir) / "slurm" / "logs").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# bdguard campaign: one array task per model of " << dir << "/manifest.json.\n"
    << "# Task I runs model I (bdguard campaign task reads $SLURM_ARRAY_TASK_ID); it writes\n"
    << "# tasks/I/ and results/I.json, and exits non-zero when the model failed (the error\n"
    << "# is in results/I.json and in task-<job>_I.err). Written by bdguard campaign submit.\n"
    << "#SBATCH --job-name=bdguard-task-" << job_name(m) << "\n"
    << "#SBATCH --array=" << slurm_array_spec(o.indices, o.array_limit) << "\n"
    << "#SBATCH --output=" << logs << "/task-%A_%a.out\n"
    << "#SBATCH --error=" << logs << "/task-%A_%a.err\n";
  resources(s, o, /*merge=*/false);
  s << "exec " << shell_quote(slurm_path(o.bdguard)) << " campaign task " << shell_quote(dir)
    << "\n";
  return s.str();
}

std::string slurm_merge_script(const Manifest& m, const SlurmOptions& o,
                               const std::string& array_job) {
  const std::string dir = slurm_path(m.dir);
  const std::string logs = (fs::path(dir) / "slurm" / "logs").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# bdguard campaign: merges " << dir << "/results/ into results.csv, results.json and\n"
    << (o.merge_anyway ? "# report.html once every task of the array has ended (afterany).\n"
                       : "# report.html once every task of the array has succeeded; a failed "
                         "task cancels\n# this job (then: bdguard campaign merge, or submit "
                         "--failed).\n");
  if (array_job == kArrayJobPlaceholder) {
    s << "# " << kArrayJobPlaceholder
      << " stands for the array's job id, which submitting writes here; by hand:\n"
      << "#   sbatch --dependency=afterok:$(sbatch --parsable task.sbatch) merge.sbatch\n";
  }
  s << "#SBATCH --job-name=bdguard-merge-" << job_name(m) << "\n"
    << "#SBATCH --dependency=" << (o.merge_anyway ? "afterany:" : "afterok:") << array_job << "\n"
    << "#SBATCH --kill-on-invalid-dep=yes\n"
    << "#SBATCH --output=" << logs << "/merge-%j.out\n"
    << "#SBATCH --error=" << logs << "/merge-%j.err\n";
  resources(s, o, /*merge=*/true);
  s << "exec " << shell_quote(slurm_path(o.bdguard)) << " campaign merge " << shell_quote(dir)
    << "\n";
  return s.str();
}

std::string sbatch_submit(const std::string& sbatch, const std::string& script) {
  const campaign::Captured c = campaign::run_capture({sbatch, "--parsable", script}, 120);
  const std::string out = trim(c.out.substr(0, c.out.find('\n')));
  if (c.timed_out || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    std::string why = trim(c.err.substr(0, c.err.find('\n')));
    if (why.empty()) why = c.timed_out ? "no answer within 120 s" : campaign::exit_text(c.status);
    fail<IoError>(script, sbatch, "a job sbatch accepts", why);
  }
  const std::string id = out.substr(0, out.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
    fail<IoError>(script, sbatch + " --parsable", "a job id", "'" + out + "'");
  }
  return id;
}

std::vector<std::string> slurm_active_jobs(const std::string& squeue,
                                           const std::vector<std::string>& jobs) {
  if (jobs.empty()) return {};
  std::string list;
  for (const auto& j : jobs) list += (list.empty() ? "" : ",") + j;
  campaign::Captured c;
  try {
    c = campaign::run_capture(
        {squeue, "-h", "-r", "-o", "%i", "-t",
         "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED", "-j", list},
        60);
  } catch (const Error&) {
    return {};
  }
  if (c.timed_out || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) return {};
  std::vector<std::string> out;
  std::istringstream in(c.out);
  for (std::string line; std::getline(in, line);) {
    if (!trim(line).empty()) out.push_back(trim(line));
  }
  return out;
}

}  // namespace bdguard
