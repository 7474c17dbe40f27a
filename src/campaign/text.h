// Text helpers of the campaign files (internal).
#pragma once

#include <string>

namespace bdguard::campaign {

std::string lower(std::string s);
std::string host_name();

}  // namespace bdguard::campaign
