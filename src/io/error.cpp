#include "bdguard/error.h"

namespace bdguard {

std::string describe(const std::string& file, const std::string& object,
                     const std::string& expected, const std::string& found) {
  std::string out = file.empty() ? std::string("<input>") : file;
  if (!object.empty()) out += ": " + object;
  if (!expected.empty()) out += ": expected " + expected;
  if (!found.empty()) out += (expected.empty() ? ": " : ", found ") + found;
  return out;
}

}  // namespace bdguard
