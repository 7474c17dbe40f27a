// The comparison of defenses as a report section: the table (bdguard compare's
// compare.md / compare.html, and a section of a run's report), its plot and its data.
#pragma once

#include <string>

#include "bdguard/compare.h"
#include "bdguard/repair.h"
#include "bdguard/report.h"
#include "report/document.h"

namespace bdguard::report {

// The section: heading at `level`, the verdict, the table, the plot (when drawn),
// the failures with their reasons, and each method's source.
void add_compare_section(Document& d, const CompareResult& r, const PlotResult& plots, int level);
// The plot "compare" (clean accuracy against ASR, a point per method, the BadNet
// marked) and the data block it reads.
PlotSpec compare_plot(const CompareResult& r);
std::string compare_data(const CompareResult& r);
// compare.csv's text: method,clean_accuracy,asr,accuracy_drop,der,seconds,model,error,
// natural_rate,proxy_asr.
std::string compare_csv(const CompareResult& r);
// The repair stage of a run: the pick and why, each candidate's held-out accuracy and
// proxy ASR beside its real ASR on the test files (from `c`), the kept model's file.
void add_repair_section(Document& d, const RepairPick& p, const CompareResult& c, int level);

}  // namespace bdguard::report
