// bdguard campaign: what its subcommands share. The settings a manifest stores are the
// flags of `bdguard detect` (ModelOptions, NcFlags) and the campaign's own (methods,
// clean, threads); a task reads them back from the manifest.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/campaign.h"
#include "common.h"
#include "detect_cli.h"
#include "scan_cli.h"

namespace bdguard::cli {

constexpr const char* kToolVersion = "bdguard 0.1.0";

// The manifest's `settings`: every flag the tasks use. Paths absolute, the clean data's
// (and --arch-from's) SHA-256 beside them, --mean/--std in their exact number form.
// The data files and defenses of `--methods compare` (empty for detect).
struct CompareFiles {
  std::string poisoned_valid, test, poisoned_test;
  std::string defenses = "all";  // bdguard compare --methods: "all" or a list
};

// `scan` (the flags of --methods scan; its nc flags are `nc`'s, its clean data `clean`).
nlohmann::json campaign_settings(const ModelOptions& mo, const NcFlags& nc, int threads,
                                 int64_t batch, const std::string& methods,
                                 const std::string& clean, const CompareFiles& cf,
                                 const ScanFlags& scan = ScanFlags{});
ModelOptions model_options_of(const nlohmann::json& settings);
NcFlags nc_flags_of(const nlohmann::json& settings);
ScanFlags scan_flags_of(const nlohmann::json& settings);

// The methods a task runs, by the settings' "methods".
TaskOutcome run_detect_task(const CampaignModel& model, const nlohmann::json& settings,
                            const std::string& task_dir);
// bdguard scan into the task's folder: the trojan probability is scan's, the details
// keep every detector's score (what `bdguard scan calibrate --campaign` fits on).
TaskOutcome run_scan_task(const CampaignModel& model, const nlohmann::json& settings,
                          const std::string& task_dir);
TaskOutcome run_compare_task(const CampaignModel& model, const nlohmann::json& settings,
                             const std::string& task_dir);
TaskMethod task_method(const nlohmann::json& settings);

// This program's absolute path (what the local executor and the sbatch scripts run).
std::string self_exe();
// The command of a task's worker process: bdguard campaign task DIR --index I --worker.
std::vector<std::string> task_worker_command(const std::string& dir, int64_t index,
                                             const std::string& attempt, bool quiet);

// A task's index: --index when given, else $SLURM_ARRAY_TASK_ID (a Slurm array task);
// a usage error when neither is there, InvalidArgument when the variable is no index.
int64_t array_task_index(const CLI::App& sub, int64_t index);

void setup_campaign_task(CLI::App& campaign);

}  // namespace bdguard::cli
