// Thread control for the defenses' own parallel loops.
#pragma once

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

// Sets OpenBLAS' thread count for a scope, where the BLAS is OpenBLAS (looked up at
// run time: libblas.so.3 may be another implementation).
class BlasThreads {
 public:
  explicit BlasThreads(int n)
      : get_(reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))),
        set_(reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    if (get_ == nullptr || set_ == nullptr) return;
    saved_ = get_();
    set_(n);
  }
  ~BlasThreads() {
    if (get_ != nullptr && set_ != nullptr) set_(saved_);
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int (*get_)();
  void (*set_)(int);
  int saved_ = 1;
};

// Sets LibTorch's intra-op thread count for a scope.
class IntraOpThreads {
 public:
  explicit IntraOpThreads(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~IntraOpThreads() { at::set_num_threads(saved_); }
  IntraOpThreads(const IntraOpThreads&) = delete;
  IntraOpThreads& operator=(const IntraOpThreads&) = delete;

 private:
  int saved_;
};

// Runs fn(begin, end, part) on `parts` consecutive ranges of [0, n), in parallel
// (without autograd), at least `grain` items a part; rethrows the first exception of
// any part.
template <class F>
void parallel_ranges(int64_t n, int parts, const F& fn, int64_t grain = 512) {
  parts = static_cast<int>(std::min<int64_t>(parts, std::max<int64_t>(1, n / grain)));
  if (parts <= 1) {
    fn(int64_t{0}, n, 0);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  auto run = [&](int k) {
    try {
      at::NoGradGuard no_grad;
      fn(n * k / parts, n * (k + 1) / parts, k);
    } catch (...) {
      errors[static_cast<size_t>(k)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < parts; ++k) pool.emplace_back(run, k);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace bdguard
