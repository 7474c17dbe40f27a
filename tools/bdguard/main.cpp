// bdguard: find and remove backdoors in neural networks.
#include <iostream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/memory.h"
#include "commands.h"
#include "common.h"

int main(int argc, char** argv) {
  CLI::App app{"bdguard: find and remove backdoors in neural networks (Keras .h5 and ONNX)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bdguard 0.1.0");
  bdguard::cli::setup_inspect(app);
  bdguard::cli::setup_eval(app);
  bdguard::cli::setup_predict(app);
  bdguard::cli::setup_prune(app);
  bdguard::cli::setup_goodnet(app);
  bdguard::cli::setup_run(app);
  bdguard::cli::setup_attack(app);
  bdguard::cli::setup_finetune(app);
  bdguard::cli::setup_detect(app);
  bdguard::cli::setup_strip(app);
  bdguard::cli::setup_defend(app);
  bdguard::cli::setup_compare(app);
  bdguard::cli::setup_demo(app);
  bdguard::cli::setup_campaign(app);
  bdguard::cli::setup_zoo(app);
  bdguard::cli::setup_data(app);
  bdguard::cli::setup_scan(app);
  bdguard::cli::setup_repair(app);
  bdguard::cli::add_labels_aliases();
  bdguard::use_caching_cpu_allocator();
  bdguard::install_cleanup_signal_handlers();
  bdguard::start_read_watchdog(bdguard::cli::read_timeout_seconds());
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit code (bdguard detect --exit-code)
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (see bdguard --help)" << std::endl;
    return 2;
  } catch (const bdguard::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // LibTorch errors carry a multi-line backtrace; keep the first line.
    msg = msg.substr(0, msg.find('\n'));
    std::cerr << "error: " << msg << std::endl;
    return 1;
  }
  return 0;
}
