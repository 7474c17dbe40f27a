// scan's plots (bdguard/scan_files.h), drawn with gnuplot like every report's.
#include "bdguard/scan_files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "bdguard/detect_files.h"
#include "report/gnuplot.h"

namespace bdguard {

using report::num;

double mm_bd_margin_at(const GammaFit& g, int64_t k, double p) {
  if (!(g.scale > 0 && g.shape > 0)) return g.loc;
  double lo = g.loc, hi = g.loc + g.scale * std::max(1.0, g.shape);
  for (int i = 0; i < 200 && max_p_value(gamma_sf(g, hi), k) > p; ++i)
    hi = g.loc + 2 * (hi - g.loc);
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (max_p_value(gamma_sf(g, mid), k) > p ? lo : hi) = mid;
  }
  return hi;
}

namespace {

// Three significant digits, for titles.
std::string short_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

bool has_fit(const MmBdResult& r) { return r.null_fit.shape > 0 && r.null_fit.scale > 0; }

std::string mm_bd_data(const MmBdResult& r) {
  std::ostringstream gp;
  gp << "$margins << EOD\nlabel,max_margin,target\n";
  for (size_t c = 0; c < r.margins.size(); ++c) {
    gp << c << ',' << num(r.margins[c]) << ',' << (static_cast<int64_t>(c) == r.target) << '\n';
  }
  gp << "EOD\n";
  return gp.str();
}

PlotSpec mm_bd_margins_plot(const MmBdResult& r) {
  std::ostringstream gp;
  const auto k = static_cast<int64_t>(r.margins.size());
  gp << "set title 'MM-BD: the largest margin each class reached (p-value " << short_num(r.p_value)
     << ")'\n";
  gp << "set xrange [-1:" << k << "]\nset xlabel 'label'\nset ylabel 'maximum margin (logits)'\n"
     << "set key below horizontal\nset grid ytics\nset style fill solid 0.6 border -1\n"
     << "set boxwidth 0.8\n";
  if (*std::min_element(r.margins.begin(), r.margins.end()) >= 0) gp << "set yrange [0:*]\n";
  if (k > 40) gp << "set xtics out\n";
  gp << "plot $margins using (column('label')):(column('target') > 0 ? NaN : "
        "column('max_margin')) with boxes lc rgb '#1f77b4' title 'maximum margin', \\\n"
     << "     $margins using (column('label')):(column('target') > 0 ? column('max_margin') : "
        "NaN) with boxes lc rgb '#d62728' title 'largest (the suspected target)'";
  if (has_fit(r)) {
    gp << ", \\\n     " << num(mm_bd_margin_at(r.null_fit, k, 0.05))
       << " with lines dt 2 lw 2 lc rgb '#d62728' title 'margin of p = 0.05 under the null'";
  }
  gp << "\n";
  return {"mm_bd_margins", "MM-BD: the maximum margin of each class", gp.str()};
}

PlotSpec mm_bd_null_plot(const MmBdResult& r) {
  std::ostringstream gp;
  const GammaFit& g = r.null_fit;
  const double top = r.margins[static_cast<size_t>(r.target)];
  gp << "set title 'MM-BD: Gamma null (shape " << short_num(g.shape) << ", scale "
     << short_num(g.scale) << ", location " << short_num(g.loc) << ") and the largest margin'\n";
  gp << "k = " << num(g.shape) << "; th = " << num(g.scale) << "; loc = " << num(g.loc) << "\n";
  gp << "f(x) = x > loc ? exp((k - 1) * log((x - loc) / th) - (x - loc) / th - lgamma(k)) / th "
        ": 0\n";
  const double hi = std::max(top, mm_bd_margin_at(g, 1, 1e-3));
  gp << "set xrange [" << num(g.loc) << ":" << num(g.loc + 1.08 * (hi - g.loc)) << "]\n";
  gp << "set samples 400\nset xlabel 'maximum margin (logits)'\nset ylabel 'density'\n"
     << "set key below horizontal\nset grid ytics\nset yrange [0:*]\n";
  gp << "set arrow from " << num(top) << ", graph 0 to " << num(top)
     << ", graph 1 nohead dt 2 lw 2 lc rgb '#d62728'\n";
  gp << "plot f(x) with lines lw 2 lc rgb '#1f77b4' title 'fitted Gamma density', \\\n"
     << "     $margins using (column('target') > 0 ? NaN : column('max_margin')):(0) with "
        "points pt 9 ps 1.5 lc rgb '#1f77b4' title 'the other classes (fitted)', \\\n"
     << "     $margins using (column('target') > 0 ? column('max_margin') : NaN):(0) with "
        "points pt 7 ps 1.5 lc rgb '#d62728' title 'the largest (label "
     << r.target << ")'\n";
  return {"mm_bd_null", "MM-BD: the null fitted to the other classes' margins", gp.str()};
}

std::string k_arm_data(const KArmResult& r) {
  std::ostringstream gp;
  gp << "$arms << EOD\narm,name,size,reached,best\n";
  for (size_t i = 0; i < r.arms.size(); ++i) {
    const KArmArm& a = r.arms[i];
    std::string name = std::to_string(a.target);
    if (a.source >= 0) name = std::to_string(a.source) + "->" + name;
    const bool best = a.target == r.target && a.source == r.source;
    gp << i << ',' << name << ',' << num(100 * a.size) << ',' << a.reached << ',' << best << '\n';
  }
  gp << "EOD\n";
  return gp.str();
}

PlotSpec k_arm_plot(const KArmResult& r) {
  std::ostringstream gp;
  gp << "set title 'K-Arm: the smallest trigger of each arm (label, or source->label)'\n";
  gp << "set xrange [-1:" << r.arms.size() << "]\nset xlabel 'arm'\n"
     << "set ylabel 'trigger size (% of the image)'\nset key below horizontal\nset grid ytics\n"
     << "set yrange [0:*]\nset style fill solid 0.6 border -1\nset boxwidth 0.8\n";
  gp << "plot $arms using (column('arm')):(column('best') > 0 || column('reached') == 0 ? NaN : "
        "column('size')):xtic(2) with boxes lc rgb '#1f77b4' title 'trigger size', \\\n"
     << "     $arms using (column('arm')):(column('best') > 0 ? column('size') : NaN) with boxes "
        "lc rgb '#d62728' title 'the best arm', \\\n"
     << "     $arms using (column('arm')):(column('reached') == 0 ? 1 : NaN) with points pt 6 "
        "lc rgb '#555555' title 'never reached the attack success', \\\n"
     << "     " << num(100 * r.bound)
     << " with lines dt 2 lw 2 lc rgb '#d62728' title 'size bound of the best arm'\n";
  return {"k_arm_arms", "K-Arm: the trigger size of each arm against its bound", gp.str()};
}

}  // namespace

PlotResult write_scan_plots(const ScanResult& r, const std::string& dir,
                            const ReportOptions& options) {
  std::string data;
  std::vector<PlotSpec> specs;
  if (r.mm_bd && !r.mm_bd->margins.empty()) {
    data += mm_bd_data(*r.mm_bd);
    specs.push_back(mm_bd_margins_plot(*r.mm_bd));
    if (has_fit(*r.mm_bd)) specs.push_back(mm_bd_null_plot(*r.mm_bd));
  }
  if (r.k_arm && !r.k_arm->arms.empty()) {
    data += k_arm_data(*r.k_arm);
    specs.push_back(k_arm_plot(*r.k_arm));
  }
  if (r.nc && !r.nc->labels.empty()) {
    data += mask_norm_data(*r.nc);
    PlotSpec nc = mask_norm_plot(*r.nc);
    nc.name = "nc_mask_norms";
    specs.push_back(nc);
  }
  if (specs.empty()) return {};
  return report::draw_plots(dir, "scan_plots.gp", data, specs, options);
}

}  // namespace bdguard
