// bdguard compare's files (compare_files.h).
#include "bdguard/compare_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "bdguard/fileio.h"
#include "report/compare_section.h"
#include "report/gnuplot.h"

namespace bdguard {

namespace fs = std::filesystem;

PlotSpec compare_plot_spec(const CompareResult& r) { return report::compare_plot(r); }

std::string compare_plot_data(const CompareResult& r) { return report::compare_data(r); }

void write_compare_tables(const CompareResult& r, const std::string& model_name,
                          const nlohmann::json& settings, const std::string& dir) {
  const fs::path out(dir);
  write_file_atomic((out / "compare.csv").string(), report::compare_csv(r));
  nlohmann::json doc = to_json(r);
  doc["model"] = model_name;
  doc["settings"] = settings;
  write_file_atomic((out / "compare.json").string(), doc.dump(2) + "\n");
}

PlotResult write_compare_files(const CompareResult& r, const std::string& model_name,
                               const nlohmann::json& settings, const std::string& dir,
                               const ReportOptions& options) {
  const fs::path out(dir);
  write_compare_tables(r, model_name, settings, dir);
  PlotResult plots = report::draw_plots(dir, "compare.gp", report::compare_data(r),
                                        {report::compare_plot(r)}, options);
  report::Document d;
  d.heading(1, "bdguard compare: " + model_name);
  report::add_compare_section(d, r, plots, 2);
  for (const auto& w : plots.warnings) d.note("warning: " + w);
  write_file_atomic((out / "compare.md").string(), report::to_markdown(d));
  auto uri = [&](const std::string& rel) -> std::string {
    std::ifstream in(out / rel, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    return bytes.empty() ? "" : "data:image/png;base64," + base64(bytes);
  };
  write_file_atomic((out / "compare.html").string(),
                    report::to_html(d, "bdguard compare: " + model_name, uri));
  return plots;
}

}  // namespace bdguard
