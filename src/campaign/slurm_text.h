// Text that goes into sbatch scripts (internal): the campaign's and the zoo maker's.
#pragma once

#include <string>

namespace bdguard {

// `path` itself when it can go into #SBATCH lines and Slurm's file-name patterns
// unquoted (no white space, quotes, shell or pattern characters); InvalidArgument
// naming the character otherwise.
const std::string& slurm_path(const std::string& path);

// `s` in single quotes for the shell.
std::string shell_quote(const std::string& s);

}  // namespace bdguard
