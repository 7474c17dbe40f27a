// Child processes of a campaign (internal): task processes, sbatch, squeue.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace bdguard::campaign {

// Starts `argv` (argv[0] looked up in PATH when it has no '/') with stdin from /dev/null
// and stdout, stderr on `out_fd`, `err_fd` (-1: this process's). The child gets SIGTERM
// when this process ends. Throws IoError when the program cannot be started.
pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd);

// How a child ended, from its wait status: "exited with code 1", "was killed by signal
// 11 (Segmentation fault)".
std::string exit_text(int status);

struct Captured {
  int status = 0;  // the wait status
  bool timed_out = false;
  std::string out, err;
};
// Runs `argv` to its end (at most `timeout_s`, then SIGKILL), capturing its output.
Captured run_capture(const std::vector<std::string>& argv, double timeout_s);

// The last line of `text` that starts with "error: ", without that prefix ("" if none).
std::string last_error_line(const std::string& text);

// The last `max_bytes` of a file ("" when unreadable).
std::string file_tail(const std::string& path, size_t max_bytes);

}  // namespace bdguard::campaign
