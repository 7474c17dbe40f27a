// The local executor (one process per task, N at a time) and the supervisor of one task
// process: a task that dies without recording its result gets a failed one.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <thread>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "campaign/process.h"

namespace bdguard {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What ended a task process that did not record its result, with its last error line.
std::string death_message(int status, bool timed_out, double timeout_s, const std::string& output) {
  std::string why = timed_out ? "the task process was killed after the time limit of " +
                                    std::to_string(static_cast<int64_t>(timeout_s)) +
                                    " s (--task-timeout)"
                              : "the task process " + campaign::exit_text(status);
  const std::string line = campaign::last_error_line(output);
  return line.empty() ? why : line + " (" + why + ")";
}

void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  ssize_t ignored = write(fd, text.data(), text.size());
  (void)ignored;
  close(fd);
}

TaskResult result_or_failure(const Manifest& m, int64_t index) {
  try {
    if (auto r = read_task_result(m.dir, index)) return *r;
  } catch (const Error& e) {
    TaskResult r;
    r.index = index;
    r.status = "failed";
    r.error = e.what();
    return r;
  }
  TaskResult r;
  r.index = index;
  r.status = "failed";
  r.error = "no result";
  return r;
}

struct Running {
  int64_t index = 0;
  pid_t pid = -1;
  std::string attempt, log;
  Clock::time_point start;
  bool timed_out = false;
};

}  // namespace

ExecutorSummary run_local(const Manifest& m, const ExecutorOptions& o) {
  const fs::path logs = fs::path(m.dir) / "logs";
  fs::create_directories(logs);
  ExecutorSummary summary;
  std::deque<int64_t> todo;
  const auto total = static_cast<int64_t>(m.models.size());
  int64_t done = 0;
  auto report = [&](int64_t index, const TaskResult& r, bool skipped) {
    ++done;
    if (skipped) {
      ++summary.skipped;
    } else if (r.status == "ok") {
      ++summary.ok;
    } else {
      ++summary.failed;
    }
    if (o.on_done) o.on_done({index, r, skipped, done, total});
  };
  for (const auto& model : m.models) {
    if (task_done(m, model.index)) {
      report(model.index, *read_task_result(m.dir, model.index), true);
    } else {
      todo.push_back(model.index);
    }
  }
  std::vector<Running> running;
  const size_t jobs = static_cast<size_t>(std::max(1, o.jobs));
  // Tasks side by side whose compute threads outnumber the cores: OpenMP threads that
  // spin while they wait would hold the cores the others need, so the workers wait
  // passively (unless the user chose a policy). Results do not change.
  if (jobs * static_cast<size_t>(task_threads(m)) >
      std::max(1u, std::thread::hardware_concurrency())) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  }
  while (!todo.empty() || !running.empty()) {
    while (running.size() < jobs && !todo.empty()) {
      Running r;
      r.index = todo.front();
      todo.pop_front();
      r.log = (logs / (std::to_string(r.index) + ".log")).string();
      r.attempt = new_attempt_token() + ":" + std::to_string(r.index);
      const int fd = ::open(r.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) fail<IoError>(r.log, "", "a log file bdguard can write", std::strerror(errno));
      try {
        r.pid = campaign::spawn(o.command(r.index, r.attempt), fd, fd);
      } catch (...) {
        close(fd);
        for (const auto& x : running) kill(x.pid, SIGTERM);
        throw;
      }
      close(fd);
      r.start = Clock::now();
      running.push_back(std::move(r));
    }
    bool any = false;
    for (size_t i = 0; i < running.size();) {
      Running& r = running[i];
      int status = 0;
      const pid_t w = waitpid(r.pid, &status, WNOHANG);
      if (w == 0) {
        if (o.task_timeout_s > 0 && !r.timed_out && seconds_since(r.start) > o.task_timeout_s) {
          r.timed_out = true;
          kill(r.pid, SIGKILL);
        }
        ++i;
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      any = true;
      const bool recorded = !r.timed_out && WIFEXITED(status) &&
                            (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == kTaskFailedExit);
      if (!recorded) {
        const std::string output = campaign::file_tail(r.log, 1 << 16);
        const std::string error = death_message(status, r.timed_out, o.task_timeout_s, output);
        record_task_failure(m, r.index, error, r.attempt, seconds_since(r.start));
        // The log's one error line: the child's own, or this one.
        if (campaign::last_error_line(output).empty()) append_line(r.log, "error: " + error);
      }
      report(r.index, result_or_failure(m, r.index), false);
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return summary;
}

int supervise_task(const Manifest& m, int64_t index, const std::vector<std::string>& command,
                   const std::string& attempt) {
  int err[2];
  if (pipe2(err, O_CLOEXEC) != 0) fail<IoError>(command[0], "", "a pipe", std::strerror(errno));
  pid_t pid = -1;
  try {
    pid = campaign::spawn(command, -1, err[1]);
  } catch (...) {
    close(err[0]);
    close(err[1]);
    throw;
  }
  close(err[1]);
  const auto start = Clock::now();
  // The child's stderr passes through (to the Slurm log); its tail is kept for the
  // error line.
  std::string tail;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(err[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = write(STDERR_FILENO, buf + off, static_cast<size_t>(n - off));
      if (w <= 0 && errno != EINTR) break;
      if (w > 0) off += w;
    }
    tail.append(buf, static_cast<size_t>(n));
    if (tail.size() > (1u << 17)) tail.erase(0, tail.size() - (1u << 16));
  }
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == kTaskFailedExit)) {
    return WEXITSTATUS(status);
  }
  const std::string error = death_message(status, false, 0, tail);
  record_task_failure(m, index, error, attempt, seconds_since(start));
  if (campaign::last_error_line(tail).empty()) {
    const std::string line = "error: " + error + "\n";
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
  }
  return kTaskFailedExit;
}

}  // namespace bdguard
