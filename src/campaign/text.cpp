// Text helpers of the campaign files (text.h) and their time stamps (campaign.h).
#include "campaign/text.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "bdguard/campaign.h"

namespace bdguard::campaign {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace bdguard::campaign

namespace bdguard {

std::string campaign_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace bdguard
