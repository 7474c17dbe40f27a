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

// An output file written through a temporary file beside it: write to path(), then
// commit() renames it into place; without commit (an error) the temporary file goes.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string final_path);
  const std::string& path() const { return guard_.path(); }
  void commit() { guard_.commit(final_); }

 private:
  static std::string make_temp(const std::string& final_path);
  std::string final_;
  TempFileGuard guard_;
};

// Refuses (IoError naming `path`) anything but a regular file: a FIFO, a socket or a
// device would block a reader or never end. Checked without opening the path, so it
// never blocks.
void require_regular_file(const std::string& path);

// Writes `content` to `path` atomically (temporary file + rename).
void write_file_atomic(const std::string& path, const std::string& content);

// Prepares a command's output folder (`--out DIR`) before any work is done: creates it
// (with its parents) when it does not exist and accepts an existing empty folder. An
// existing non-empty folder is refused unless `overwrite` (the CLI's --force), so a
// second run never silently replaces the results of a first; with `overwrite`, nothing
// in it is deleted, each output replaces its own file atomically. A path that exists
// but is not a folder is always refused. Throws InvalidArgument or IoError.
void prepare_output_dir(const std::string& dir, bool overwrite);

// Installs SIGINT/SIGTERM handlers that delete live temporary files, then exit.
void install_cleanup_signal_handlers();

// Some crafted files make the HDF5 C library loop forever (bugs of HDF5 1.10 that
// bdguard cannot fix from outside, e.g. a global heap object of size 0), and a call
// into HDF5 cannot be interrupted. A program that reads untrusted files calls this
// once: a watchdog thread then ends the process when a single call into HDF5 (or the
// image decoder) on an input has run longer than `seconds`: it prints one line
// "error: FILE: expected ..., found ..." on stderr, removes live temporary files and
// exits with code 1. Later calls do nothing.
void start_read_watchdog(double seconds);
constexpr double kDefaultReadTimeoutSeconds = 120;

// Lower-case hex SHA-256 of a file's bytes.
std::string sha256_file(const std::string& path);

}  // namespace bdguard
