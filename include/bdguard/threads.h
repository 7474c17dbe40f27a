// Compute threads: how LibTorch and the BLAS share the cores.
//
// Debian's LibTorch runs its own parallel loops (and oneDNN's convolutions) on an
// OpenMP pool and calls OpenBLAS for matrix products, and OpenBLAS has a pthread pool
// of its own. With both pools as large as the machine, each spins while the other
// works: on 2 cores a Fashion-MNIST training epoch (batch 32) took 0.88 to 1.36 s
// against 0.31 s with OpenBLAS on one thread, a Neural Cleanse step 3.8x longer, and
// even DeepID evaluation (batches of 512) ran at 6,173 against 8,114 images/s. So the
// parallel work is LibTorch's: its intra-op pool gets the threads, OpenBLAS one.
#pragma once

namespace bdguard {

// LibTorch's intra-op threads = n (0: every core), OpenBLAS' = 1 (where the BLAS is
// OpenBLAS). Returns the intra-op thread count set.
int set_compute_threads(int n);

}  // namespace bdguard
