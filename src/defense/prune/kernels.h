// The pruning sweep's inner loops: plain C++ over float32/float64 arrays, compiled for
// AVX-512, AVX2 and plain x86-64 (target_clones) with -ffp-contract=off, so each
// element is computed the same way on every CPU.
#pragma once

#include <cstdint>
#include <vector>

namespace bdguard::sweep {

// Images whose top two scores are closer than this are re-run the plain way.
constexpr double kTieMargin = 1e-3;

// ReLU (as at::relu: NaN stays NaN) or the identity.
inline float activate(bool relu, float v) { return relu && v < 0 ? 0.0f : v; }

// z[e] -= d * w[e]
void sub_scaled(double* __restrict z, const double* __restrict w, double d, int64_t n);
// z[e] += dz[e] for every e; returns how many entries' activate(relu, float(z))
// changed, NaN always counting, with their index and the change (after - before, in
// float64). `before`, `after` and `flag` are scratch space of n (flag: n rounded up to 8).
int64_t apply_change(double* __restrict z, const double* __restrict dz, int64_t n, bool relu,
                     float* __restrict before, float* __restrict after,
                     unsigned char* __restrict flag, int64_t* __restrict index,
                     double* __restrict diff);
// z[u] += sum over j of diff[j] * w[index[j] * units + u], in order of j for each u.
void add_rows(double* __restrict z, const float* __restrict w, int64_t units,
              const int64_t* __restrict index, const double* __restrict diff, int64_t count);
// The scores of one image from the classifier's input h (after ReLU, mostly zeros):
// out = bias + sum over the non-zero h[u] of h[u] * w[u, :], for each class in order
// of u. Returns false (writing nothing) when over half of h is non-zero: a matrix
// product is faster then. NaN counts as non-zero. `nz` is scratch space of `in`.
bool sparse_scores(const float* __restrict h, int64_t in, const float* __restrict w,
                   const float* __restrict bias, int64_t classes, float* __restrict out,
                   int64_t* __restrict nz);
// The top score of a row, its index (the first on equality, like argmax), and the
// largest of the others (equal to the top on a tie). Returns false if the row holds NaN.
bool top_two(const float* __restrict row, int64_t classes, int64_t* arg, float* best_out,
             float* second_out);
// The top score's index of each row and its margin over the next, and the rows whose
// margin is below kTieMargin (or NaN).
void top_scores(const float* ps, int64_t rows, int64_t classes, int64_t* labels, double* margin,
                std::vector<int64_t>& ties);

}  // namespace bdguard::sweep
