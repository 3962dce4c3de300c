// Warp-level reductions shared by the CUDA kernels.
#pragma once

namespace fastpose {

// Sum of v over the 32 lanes of a full warp, returned in every lane. A butterfly of
// __shfl_xor_sync: a fixed order, so the result is deterministic (and lane 0's equals that
// of the __shfl_down_sync tree).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace fastpose
