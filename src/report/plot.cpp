// The report's plots: a gnuplot script over the CSV files, run as a child process.
//
// The script names only fixed, relative file names (it runs inside out_dir/plots), so
// no path reaches gnuplot; the only outside text in it (layer and model names, in
// titles) goes through `gp_string`, which cannot end the string or the command.
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
#include <sstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/report.h"
#include "report/model_view.h"

extern char** environ;

namespace bdguard {
namespace {

namespace fs = std::filesystem;

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

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

bool has_test(const SweepResult& s) {
  return !s.steps.empty() && s.steps[0].test_accuracy.has_value();
}

using report::ModelView;

std::vector<ModelView> reached(const RunReport& r) {
  std::vector<ModelView> out;
  for (const auto& s : report::model_views(r)) {
    if (s.reached) out.push_back(s);
  }
  return out;
}

// Saved models by step (two drops can land on the same step), with "X=2, X=4" labels.
std::vector<std::pair<ModelView, std::string>> marks(const RunReport& r) {
  std::vector<std::pair<ModelView, std::string>> out;
  for (const ModelView& s : reached(r)) {
    if (!out.empty() && out.back().first.step == s.step) {
      out.back().second += ", X=" + num(s.drop);
    } else {
      out.push_back({s, "X=" + num(s.drop)});
    }
  }
  return out;
}

// The accuracy-and-ASR plot of one split ("valid" or "test").
void sweep_plot(std::ostringstream& gp, const RunReport& r, const std::string& split,
                double baseline, int64_t n_clean, int64_t n_poisoned) {
  const std::string split_name = split == "valid" ? "validation" : "test";
  gp << "set title "
     << gp_string("Pruning " + r.sweep.layer + " of " + r.model_name + ": " + split_name +
                  " data (" + std::to_string(n_clean) + " clean, " + std::to_string(n_poisoned) +
                  " poisoned images)")
     << "\n";
  gp << "set xlabel "
     << gp_string("fraction of the " + std::to_string(r.sweep.channels) + " channels of " +
                  r.sweep.layer + " pruned")
     << "\n";
  gp << "set ylabel 'rate (%)'\n";
  gp << "set xrange [0:1]\nset yrange [0:105]\nset offsets 0, 0, 0, 0\nset ytics 10\n"
     << "set grid ytics lc rgb '#dddddd'\n";
  gp << "set key left bottom box opaque\n";
  gp << "unset arrow\nunset label\n";
  for (const auto& [s, label] : marks(r)) {
    gp << "set arrow from " << num(s.fraction_pruned) << ", graph 0 to " << num(s.fraction_pruned)
       << ", graph 1 nohead dt 3 lc rgb '#777777'\n";
    gp << "set label " << gp_string(label + ": " + std::to_string(s.step) + " pruned") << " at "
       << num(s.fraction_pruned)
       << ", graph 0.55 rotate by 90 center offset -0.8,0 tc rgb '#555555'\n";
  }
  const std::string x = "(column('fraction_pruned'))";
  gp << "plot '../" << kSweepCsv << "' using " << x << ":(column('" << split
     << "_accuracy')) with linespoints lw 2 pt 7 ps 0.5 lc rgb '#1f77b4' title 'clean accuracy', "
        "\\\n";
  gp << "  '' using " << x << ":(column('" << split
     << "_asr')) with linespoints lw 2 pt 7 ps 0.5 lc rgb '#d62728' title 'attack success rate'";
  const int dash[] = {2, 4, 5};
  for (size_t i = 0; i < r.saved.size(); ++i) {
    double d = r.saved[i].saved.drop;
    std::string label = (split == "valid" ? "baseline - " : "test baseline - ") + num(d) +
                        " points (" + fixed2(baseline - d) + " %)";
    gp << ", \\\n  " << num(baseline - d) << " with lines dt " << dash[i % 3]
       << " lw 1.2 lc rgb '#555555' title " << gp_string(label);
  }
  if (!reached(r).empty()) {
    gp << ", \\\n  $saved using (column('fraction_pruned')):(column('" << split
       << "_accuracy')) with points pt 7 ps 1.8 lc rgb '#1f77b4' title 'saved models (accuracy)'";
    gp << ", \\\n  $saved using (column('fraction_pruned')):(column('" << split
       << "_asr')) with points pt 5 ps 1.6 lc rgb '#d62728' title 'saved models (ASR)'";
  }
  gp << "\n";
}

void activation_plot(std::ostringstream& gp, const RunReport& r) {
  const auto& s = r.sweep;
  gp << "set title "
     << gp_string("Mean activation of each channel of " + s.layer + " at " + s.cut_layer +
                  " (clean validation data), in pruning order")
     << "\n";
  gp << "set xlabel 'channel, in pruning order (first pruned on the left)'\n";
  gp << "set ylabel 'mean activation'\n";
  double lo = 0;
  for (double v : s.mean_activation) lo = std::min(lo, v);
  gp << "set xrange [-1:" << s.channels << "]\nset yrange [" << num(lo) << ":*]\nset ytics auto\n";
  gp << "set offsets 0, 0, graph 0.1, 0\n";
  gp << "set grid ytics lc rgb '#dddddd'\n";
  gp << "set key left top box opaque\n";
  gp << "unset arrow\nunset label\n";
  int64_t every = std::max<int64_t>(1, (s.channels + 59) / 60);
  int tic_font = s.channels > 40 ? 7 : 9;
  gp << "set xtics rotate by 90 right font '," << tic_font << "'\n";
  for (const auto& [m, label] : marks(r)) {
    double xpos = static_cast<double>(m.step) - 0.5;
    gp << "set arrow from " << num(xpos) << ", graph 0 to " << num(xpos)
       << ", graph 1 nohead dt 3 lc rgb '#777777'\n";
    gp << "set label " << gp_string(label + ": first " + std::to_string(m.step) + " pruned")
       << " at " << num(xpos) << ", graph 0.6 rotate by 90 center offset -0.8,0 tc rgb '#555555'\n";
  }
  gp << "set style fill solid 0.7 border -1\nset boxwidth 0.8\n";
  gp << "plot '../" << kActivationsCsv << "' using (column('rank')):(column('mean_activation')):"
     << "xtic(int(column('rank')) % " << every
     << " == 0 ? stringcolumn('channel') : '') with boxes lc rgb '#2ca02c' title 'mean "
        "activation'\n";
  gp << "set xtics norotate font ''\n";
}

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

struct Spec {
  std::string name, title;
};

std::vector<Spec> plot_specs(const RunReport& r) {
  std::vector<Spec> specs = {
      {"sweep_valid", "Clean accuracy and attack success rate on validation data"}};
  if (has_test(r.sweep)) {
    specs.push_back({"sweep_test", "Clean accuracy and attack success rate on test data"});
  }
  specs.push_back({"activations", "Mean activation of each channel, in pruning order"});
  return specs;
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

}  // namespace

void write_activations_csv(const SweepResult& r, const std::string& path) {
  std::ostringstream csv;
  csv << "rank,channel,mean_activation\n";
  for (size_t i = 0; i < r.order.size(); ++i) {
    auto c = static_cast<size_t>(r.order[i]);
    double mean = c < r.mean_activation.size() ? r.mean_activation[c] : std::nan("");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", mean);
    csv << i << ',' << r.order[i] << ',' << buf << '\n';
  }
  write_file_atomic(path, csv.str());
}

std::string plot_script(const RunReport& r, const ReportOptions& o) {
  std::ostringstream gp;
  gp << "# Draws the plots of a bdguard report. Run in the plots/ folder: gnuplot plots.gp\n"
     << "# Reads ../" << kSweepCsv << " and ../" << kActivationsCsv << ".\n";
  gp << "# bdguard writes to <name>.part files and renames them; by hand the names are final.\n"
     << "if (!exists(\"suffix\")) suffix = ''\n";
  gp << "set datafile separator ','\nset datafile columnheaders\nset encoding utf8\n";
  auto saved = reached(r);
  if (!saved.empty()) {
    gp << "$saved << EOD\nfraction_pruned,valid_accuracy,valid_asr,test_accuracy,test_asr\n";
    for (const ModelView& s : saved) {
      gp << num(s.fraction_pruned) << ',' << num(s.valid_accuracy) << ',' << num(s.valid_asr) << ','
         << num(s.test_accuracy.value_or(NAN)) << ',' << num(s.test_asr.value_or(NAN)) << '\n';
    }
    gp << "EOD\n";
  }
  for (const std::string format : {"png", "svg"}) {
    for (const Spec& spec : plot_specs(r)) {
      write_terminal(gp, format, o, spec.name);
      if (spec.name == "sweep_valid") {
        sweep_plot(gp, r, "valid", r.valid.accuracy, r.valid.n_clean, r.valid.n_poisoned);
      } else if (spec.name == "sweep_test") {
        const SplitMetrics t = r.test.value_or(SplitMetrics{});
        sweep_plot(gp, r, "test", r.sweep.steps[0].test_accuracy.value_or(t.accuracy), t.n_clean,
                   t.n_poisoned);
      } else {
        activation_plot(gp, r);
      }
      gp << "unset output\n";
    }
  }
  return gp.str();
}

PlotResult write_plots(const RunReport& r, const std::string& out_dir, const ReportOptions& o) {
  PlotResult result;
  fs::path dir = fs::path(out_dir) / kPlotsDir;
  fs::create_directories(dir);
  // Never leave a plot of an earlier run beside this run's report.
  for (const char* name : {"sweep_valid", "sweep_test", "activations"}) {
    for (const char* format : {"png", "svg"}) {
      std::error_code ec;
      fs::remove(dir / (std::string(name) + "." + format), ec);
      fs::remove(dir / (std::string(name) + "." + format + ".part"), ec);
    }
  }
  write_file_atomic((dir / "plots.gp").string(), plot_script(r, o));
  std::string program = o.gnuplot;
  if (program.find('/') != std::string::npos) program = fs::absolute(program).string();
  std::string output, why;
  int rc = run_child(program, {"-e", "suffix = '.part'", "plots.gp"}, dir.string(),
                     o.gnuplot_timeout_s, output, why);
  if (rc < 0) {
    result.warnings.push_back(
        "gnuplot (" + o.gnuplot + ") " + why +
        ": plots not drawn (install gnuplot-nox); everything else is written");
    return result;
  }
  if (rc != 0) {
    result.warnings.push_back("gnuplot failed (exit " + std::to_string(rc) +
                              "): " + first_lines(output, 3));
  } else if (!output.empty()) {
    result.warnings.push_back("gnuplot: " + first_lines(output, 3));
  }
  for (const std::string format : {"png", "svg"}) {
    for (const Spec& spec : plot_specs(r)) {
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
      result.files.push_back({spec.name, spec.title, rel, format, o.png_width, o.png_height});
    }
  }
  return result;
}

}  // namespace bdguard
