// Text helpers of the campaign files (internal).
#pragma once

#include <string>

namespace bdguard::campaign {

std::string lower(std::string s);
// "2024-05-01T12:00:00Z" (UTC, now).
std::string utc_now();
std::string host_name();

}  // namespace bdguard::campaign
