// What `bdguard scan` draws: DIR/plots/ with each detector's per-label statistics and
// MM-BD's null fit (docs/commands/scan.md).
#pragma once

#include <string>

#include "bdguard/report.h"
#include "bdguard/scan.h"

namespace bdguard {

// The margin at which MM-BD's p-value, 1 - F(x)^K under the Gamma null `g` for K
// classes, falls to `p` (bisection; the null's location when every margin passes).
double mm_bd_margin_at(const GammaFit& g, int64_t k, double p);

// The plots of the detectors that ran: "mm_bd_margins" (each class's largest margin,
// the target marked, the margin of p = 0.05 drawn), "mm_bd_null" (the Gamma density
// fitted to the other classes' margins, each margin and the largest marked),
// "k_arm_arms" (each arm's trigger size against K-Arm's bound) and "nc_mask_norms"
// (Neural Cleanse's mask norms). Into DIR/plots/ (scan_plots.gp draws them); no plot
// for a detector that did not run, nor MM-BD's null without a fit.
PlotResult write_scan_plots(const ScanResult& r, const std::string& dir,
                            const ReportOptions& options);

}  // namespace bdguard
