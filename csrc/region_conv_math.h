// Per-tap geometry of fastpose::region_conv, written once for the CPU and CUDA kernels (the CPU
// tests exercise exactly what the GPU executes).
//
// A kh x kw convolution (cross-correlation, zero padding kh/2, kw/2) of a region-constant map
// sum_r onehot_r(p) codes[r, :] is, at output pixel p,
//   out[c, p] = sum_{taps o} T[o, label(p + o), c]   (taps in the padding add nothing)
// with the tap table T[o, r, c] = sum_s weight[c, s, o] codes[r, s]. The table is a small einsum
// done by the caller; the kernels only gather-sum table rows (forward) and scatter-add the
// upstream gradient into them (backward). A table "slot" is o * R + r, so the K = kh * kw taps
// of R regions occupy slots [0, K * R).
#pragma once

#include <cstdint>

#include "macros.h"

namespace fastpose {
namespace region_conv_math {

// The pixel (y*w + x index) that tap (i, j) of output pixel (y, x) reads, or -1 when it falls in
// the zero padding. Tap (i, j) is weight[..., i, j], offset (i - kh/2, j - kw/2) as in conv2d.
FASTPOSE_HD int64_t tap_source(int64_t y, int64_t x, int64_t i, int64_t j, int64_t kh, int64_t kw, int64_t h,
                               int64_t w) {
  const int64_t sy = y + i - kh / 2, sx = x + j - kw / 2;
  return (sy >= 0 && sy < h && sx >= 0 && sx < w) ? sy * w + sx : int64_t(-1);
}

// The table slot of tap o reading a pixel of region `label`.
FASTPOSE_HD int64_t tap_slot(int64_t tap, int64_t label, int64_t num_regions) { return tap * num_regions + label; }

}  // namespace region_conv_math
}  // namespace fastpose
