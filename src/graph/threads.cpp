// Compute threads (threads.h).
#include "bdguard/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace bdguard {

int set_compute_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(1);
  return n;
}

}  // namespace bdguard
