#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include "bdguard/memory.h"

namespace bdguard {
namespace {

constexpr size_t kMinCached = size_t{1} << 16;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* p = take(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void set_cap(size_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    cap_ = cap;
    trim_locked(cap_);
  }
  void trim() {
    std::lock_guard<std::mutex> lock(mu_);
    trim_locked(0);
  }
  static CachingCpuAllocator& instance() {
    static auto* a = new CachingCpuAllocator();  // never destroyed: tensors may outlive main
    return *a;
  }

 private:
  static void release(void* p) { instance().give_back(p); }

  void* take(size_t n) const {
    if (n >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first / 2 <= n) {
        void* p = it->second;
        cached_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = c10::alloc_cpu(n);
    if (n >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu_);
      size_of_[p] = n;
    }
    return p;
  }

  void give_back(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = size_of_.find(p);
    if (it == size_of_.end()) {  // a small block
      c10::free_cpu(p);
      return;
    }
    const size_t n = it->second;
    if (cached_ + n > cap_) trim_locked(cap_ > n ? cap_ - n : 0);
    if (cached_ + n > cap_) {
      size_of_.erase(it);
      c10::free_cpu(p);
      return;
    }
    free_.emplace(n, p);
    cached_ += n;
  }

  // Frees cached blocks, largest first, until at most `keep` bytes stay cached.
  void trim_locked(size_t keep) const {
    while (cached_ > keep && !free_.empty()) {
      auto it = std::prev(free_.end());
      cached_ -= it->first;
      size_of_.erase(it->second);
      c10::free_cpu(it->second);
      free_.erase(it);
    }
  }

  mutable std::mutex mu_;
  mutable std::multimap<size_t, void*> free_;          // cached blocks by size
  mutable std::unordered_map<void*, size_t> size_of_;  // every large block, by address
  mutable size_t cached_ = 0;
  size_t cap_ = 0;
};

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define BDGUARD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BDGUARD_ASAN 1
#endif
#endif

bool use_caching_cpu_allocator(size_t max_cached_bytes) {
#ifdef BDGUARD_ASAN
  (void)max_cached_bytes;
  return false;
#endif
  static std::once_flag installed;
  CachingCpuAllocator& a = CachingCpuAllocator::instance();
  a.set_cap(max_cached_bytes);
  std::call_once(installed, [&a] { c10::SetCPUAllocator(&a, /*priority=*/1); });
  return true;
}

void release_cached_cpu_memory() { CachingCpuAllocator::instance().trim(); }

}  // namespace bdguard
