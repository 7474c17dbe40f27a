// Tensor memory: a caching CPU allocator for LibTorch.
//
// glibc serves blocks above its mmap threshold (at most 32 MiB) with mmap and returns
// them with munmap, so every large tensor (a batch of conv activations is ~100 MB for
// DeepID) costs a page fault per 4 KiB page on first touch, every time it is allocated.
// In the pruning sweep and batched evaluation the same sizes come back again and again;
// caching freed large blocks and reusing them took `bdguard prune` on lab-sized data
// from 16 s to 12.6 s. Values are never read from a reused block before they are written
// (LibTorch's empty tensors are uninitialised anyway), so results are unchanged.
#pragma once

#include <cstddef>

namespace bdguard {

// Installs the caching allocator as LibTorch's CPU allocator (once; later calls only
// change the cap). Blocks of at least 64 KiB are kept after they are freed, up to
// `max_cached_bytes` in all, and handed out again for requests of up to their size
// that are at least half of it. Returns false, and installs nothing, in an
// AddressSanitizer build (cached blocks would hide use-after-free from it).
bool use_caching_cpu_allocator(size_t max_cached_bytes = size_t{512} << 20);

// Frees every cached block (the memory in use is untouched).
void release_cached_cpu_memory();

}  // namespace bdguard
