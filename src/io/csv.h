// CSV fields, read and written the one way (internal): the campaign files and the
// report's tables.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bdguard {

// The fields of one CSV line (RFC 4180: a field may be double-quoted, "" inside quotes
// is a quote). nullopt when a quoted field does not end.
std::optional<std::vector<std::string>> parse_csv_line(const std::string& line);
// A field as CSV writes it: quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);
// Without leading and trailing spaces, tabs and carriage returns.
std::string trim(const std::string& s);

}  // namespace bdguard
