// Per-element math of the SEAN region ops, written once for the CPU and CUDA
// kernels (the CPU tests exercise exactly what the GPU executes).
//
// Label-map path: codes[n, r, c] = sums[n, r, c] / area[n, r], where sums
// adds feat[n, c, p] over the pixels p labelled r and area counts them. The
// broadcast out[n, c, p] = codes[n, label(p), c] is the adjoint of the sums,
// so two primitives cover the forward and backward of both ops:
//   sum by label   -> pool forward (normalised), broadcast backward (raw sums)
//   gather by label-> broadcast forward (codes), pool backward (grad / area)
#pragma once

#include <cstdint>

#include "macros.h"

namespace fastpose {
namespace region_math {

// 1 / area for a populated region, 0 for an empty one: empty regions get a
// zero code (SEAN skips them) and pass no gradient.
template <typename acc_t>
FASTPOSE_HD acc_t inv_area(acc_t area) {
  return area > acc_t(0) ? acc_t(1) / area : acc_t(0);
}

// Whether a label value names one of the num_regions regions. Labels are read
// through int64_t so uint8, int32 and int64 maps share the test.
FASTPOSE_HD bool label_ok(int64_t label, int64_t num_regions) {
  return label >= 0 && label < num_regions;
}

// The value the gather writes at a pixel of region r: the code itself
// (broadcast forward) or the upstream gradient scaled by 1 / area (pooling
// backward; area == nullptr means no scaling).
template <typename acc_t>
FASTPOSE_HD acc_t gather_value(acc_t src, const acc_t* area, int64_t nr) {
  return area == nullptr ? src : src * inv_area(area[nr]);
}

// The code of one (n, r, c) from its raw sum: divided by the area when the
// op normalises (pooling forward), the raw sum otherwise (broadcast backward).
template <typename acc_t>
FASTPOSE_HD acc_t finish_sum(acc_t sum, acc_t area, bool normalise) {
  return normalise ? sum * inv_area(area) : sum;
}

}  // namespace region_math
}  // namespace fastpose
