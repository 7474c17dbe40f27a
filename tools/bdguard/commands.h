// One setup function per subcommand: each creates the subcommand on `app`, binds its
// options struct, and sets the callback that runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace bdguard::cli {

void setup_inspect(CLI::App& app);
void setup_eval(CLI::App& app);
void setup_predict(CLI::App& app);
void setup_prune(CLI::App& app);
void setup_goodnet(CLI::App& app);
void setup_run(CLI::App& app);
void setup_attack(CLI::App& app);
void setup_finetune(CLI::App& app);
void setup_demo(CLI::App& app);
void setup_detect(CLI::App& app);
void setup_strip(CLI::App& app);
void setup_defend(CLI::App& app);
void setup_compare(CLI::App& app);
void setup_campaign(CLI::App& app);
void setup_zoo(CLI::App& app);
void setup_data(CLI::App& app);
void setup_scan(CLI::App& app);
void setup_repair(CLI::App& app);

}  // namespace bdguard::cli
