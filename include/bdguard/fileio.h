// Safe output files: every output is written to a temporary file in the same folder
// and renamed into place, so a reader never sees half a file; temporary files are
// removed on error and on SIGINT/SIGTERM. Also SHA-256 of files.
#pragma once

#include <string>

namespace bdguard {

// Owns a temporary file: removes it on destruction unless `commit` renamed it.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string tmp_path);
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  // fsyncs the temporary file and renames it to `final_path`.
  void commit(const std::string& final_path);
  const std::string& path() const { return tmp_; }

 private:
  std::string tmp_;
  bool done_ = false;
  int slot_ = -1;
};

// Writes `content` to `path` atomically (temporary file + rename).
void write_file_atomic(const std::string& path, const std::string& content);

// Installs SIGINT/SIGTERM handlers that delete live temporary files, then exit.
void install_cleanup_signal_handlers();

// Lower-case hex SHA-256 of a file's bytes.
std::string sha256_file(const std::string& path);

}  // namespace bdguard
