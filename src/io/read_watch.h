// The read watchdog's view from the readers (see start_read_watchdog in fileio.h).
#pragma once

#include <string>

namespace bdguard::detail {

// Marks the time spent inside a third-party parser (the HDF5 C library, stb_image) on
// the untrusted file `path`. Scopes nest; the outermost one is timed. When the watchdog
// runs and one scope lasts longer than its limit, the process ends with one `error:`
// line naming `path`. Costs an atomic store when the watchdog is off.
class ReadScope {
 public:
  explicit ReadScope(const std::string& path);
  ~ReadScope();
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;
};

}  // namespace bdguard::detail
