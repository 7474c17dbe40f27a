// The caching CPU allocator: large blocks are reused, results are unchanged.
#include "bdguard/memory.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace bdguard {
namespace {

TEST(CachingAllocator, ReusesAFreedLargeBlockForTheSameSize) {
  if (!use_caching_cpu_allocator()) GTEST_SKIP() << "not used in sanitizer builds";
  void* first = nullptr;
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    first = a.data_ptr();
  }
  at::Tensor b = at::empty({1 << 20}, at::kFloat);
  EXPECT_EQ(b.data_ptr(), first);
  release_cached_cpu_memory();
}

TEST(CachingAllocator, ComputationsGiveTheSameValuesAsWithoutIt) {
  at::Generator g = at::detail::createCPUGenerator(7);
  at::Tensor x = at::rand({512, 700}, g), w = at::rand({700, 300}, g);
  at::Tensor expected = at::mm(x, w).relu().sum(1);
  use_caching_cpu_allocator();
  for (int i = 0; i < 3; ++i) {
    at::Tensor got = at::mm(x, w).relu().sum(1);
    EXPECT_TRUE(got.equal(expected)) << i;
  }
  release_cached_cpu_memory();
}

}  // namespace
}  // namespace bdguard
