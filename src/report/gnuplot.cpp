// Running gnuplot on a report's plots (gnuplot.h).
#include "report/gnuplot.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bdguard/fileio.h"

extern char** environ;

namespace bdguard::report {
namespace {

namespace fs = std::filesystem;

// The tag of the lines in which the script reports each plot's drawn axis ranges.
constexpr const char* kRangeTag = "bdguard-plot-range";

void write_terminal(std::ostringstream& gp, const std::string& format, const ReportOptions& o,
                    const std::string& name) {
  if (format == "png") {
    gp << "set terminal pngcairo size " << o.png_width << "," << o.png_height
       << " noenhanced font 'sans,11'\n";
  } else {
    gp << "set terminal svg size " << o.png_width << "," << o.png_height
       << " noenhanced font 'sans,11' background rgb 'white'\n";
  }
  gp << "set output '" << name << "." << format << "' . suffix\n";
}

// Runs `program script` in `dir` with a deadline; returns exit status (or -1 with `why`).
int run_child(const std::string& program, const std::vector<std::string>& args,
              const std::string& dir, double timeout_s, std::string& output, std::string& why) {
  int pipe_fd[2];
  if (pipe2(pipe_fd, O_CLOEXEC) != 0) {
    why = std::strerror(errno);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fd[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::vector<char*> argv = {const_cast<char*>(program.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fd[1]);
  if (rc != 0) {
    close(pipe_fd[0]);
    why = rc == ENOENT ? "not found" : std::strerror(rc);
    return -1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buf[4096];
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{pipe_fd[0], POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) continue;
    ssize_t n = read(pipe_fd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output.size() < (1u << 20)) output.append(buf, static_cast<size_t>(n));
  }
  close(pipe_fd[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    why = "did not finish within " + num(timeout_s) + " s";
    return -1;
  }
  if (WIFSIGNALED(status)) {
    why = "killed by signal " + std::to_string(WTERMSIG(status));
    return -1;
  }
  return WEXITSTATUS(status);
}

std::string first_lines(const std::string& text, int n) {
  std::istringstream in(text);
  std::string line, out;
  for (int i = 0; i < n && std::getline(in, line);) {
    if (line.empty()) continue;
    out += (out.empty() ? "" : " / ") + line;
    ++i;
  }
  return out;
}

struct DrawnRange {
  std::string format, name;
  double x_min, x_max, y_min, y_max;
};

// Splits gnuplot's output into the range lines the script prints after each plot and
// everything else (warnings, errors).
std::vector<DrawnRange> take_ranges(std::string& output) {
  std::vector<DrawnRange> ranges;
  std::istringstream in(output);
  std::string line, rest;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string tag;
    DrawnRange r;
    if (fields >> tag && tag == kRangeTag &&
        fields >> r.format >> r.name >> r.x_min >> r.x_max >> r.y_min >> r.y_max) {
      ranges.push_back(r);
    } else {
      rest += line + "\n";
    }
  }
  output = rest;
  return ranges;
}

}  // namespace

// A gnuplot single-quoted string: no escapes inside except '' for a quote; control
// characters (a newline would end the command) become spaces.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "''";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string script_text(const std::string& script, const std::string& preamble,
                        const std::vector<PlotSpec>& specs, const ReportOptions& o) {
  std::ostringstream gp;
  gp << "# Draws the plots of a bdguard report. Run in the plots/ folder: gnuplot " << script
     << "\n";
  gp << "# bdguard writes to <name>.part files and renames them; by hand the names are final.\n"
     << "# After each plot it prints the axis ranges drawn (" << kRangeTag
     << " lines), which bdguard checks.\n"
     << "if (!exists(\"suffix\")) suffix = ''\n";
  gp << preamble;
  for (const std::string format : {"png", "svg"}) {
    for (const PlotSpec& spec : specs) {
      // Every plot starts from a clean state (reset keeps the data blocks, functions and
      // variables, and drops every axis range, style, arrow and label of the plot before):
      // its ranges come from its own data.
      gp << "reset\n";
      write_terminal(gp, format, o, spec.name);
      gp << "set encoding utf8\nset datafile separator ','\nset datafile columnheaders\n"
         << spec.body << "unset output\n"
         << "print sprintf('" << kRangeTag << " " << format << " %s %.17g %.17g %.17g %.17g', "
         << gp_string(spec.name) << ", GPVAL_X_MIN, GPVAL_X_MAX, GPVAL_Y_MIN, GPVAL_Y_MAX)\n";
    }
  }
  return gp.str();
}

PlotResult draw_plots(const std::string& out_dir, const std::string& script,
                      const std::string& preamble, const std::vector<PlotSpec>& specs,
                      const ReportOptions& o) {
  PlotResult result;
  fs::path dir = fs::path(out_dir) / kPlotsDir;
  fs::create_directories(dir);
  for (const PlotSpec& spec : specs) {
    for (const char* format : {"png", "svg"}) {
      std::error_code ec;
      fs::remove(dir / (spec.name + "." + format), ec);
      fs::remove(dir / (spec.name + "." + format + ".part"), ec);
    }
  }
  write_file_atomic((dir / script).string(), script_text(script, preamble, specs, o));
  std::string program = o.gnuplot;
  if (program.find('/') != std::string::npos) program = fs::absolute(program).string();
  std::string output, why;
  int rc = run_child(program, {"-e", "suffix = '.part'", script}, dir.string(), o.gnuplot_timeout_s,
                     output, why);
  if (rc < 0) {
    result.warnings.push_back(
        "gnuplot (" + o.gnuplot + ") " + why +
        ": plots not drawn (install gnuplot-nox); everything else is written");
    return result;
  }
  const std::vector<DrawnRange> ranges = take_ranges(output);
  if (rc != 0) {
    result.warnings.push_back("gnuplot failed (exit " + std::to_string(rc) +
                              "): " + first_lines(output, 3));
  } else if (!output.empty()) {
    result.warnings.push_back("gnuplot: " + first_lines(output, 3));
  }
  for (const std::string format : {"png", "svg"}) {
    for (const PlotSpec& spec : specs) {
      std::string rel = std::string(kPlotsDir) + "/" + spec.name + "." + format;
      fs::path full = fs::path(out_dir) / rel;
      fs::path part = full.string() + ".part";
      std::error_code ec;
      if (!fs::exists(part, ec) || fs::file_size(part, ec) == 0 || rc != 0) {
        fs::remove(part, ec);
        if (rc == 0) result.warnings.push_back("gnuplot did not write " + rel);
        continue;
      }
      TempFileGuard guard(part.string());
      guard.commit(full.string());
      PlotFile file{spec.name, spec.title, rel, format, o.png_width, o.png_height};
      for (const DrawnRange& d : ranges) {
        if (d.format == format && d.name == spec.name) {
          file.x_min = d.x_min;
          file.x_max = d.x_max;
          file.y_min = d.y_min;
          file.y_max = d.y_max;
        }
      }
      result.files.push_back(file);
    }
  }
  return result;
}

}  // namespace bdguard::report
