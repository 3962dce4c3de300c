// CUDA kernels of fastpose::region_conv and fastpose::region_conv_backward.
//
//  * forward: one thread per output element (n, c, p) sums the kh*kw table values of its taps'
//    slots (region_conv_math.h). The table is first transposed to [N, C, K*R] (small), so the
//    threads of a block, which share (n, c), read one contiguous row of K*R values (cached).
//  * backward, deterministic like region_avg_pool's sum by label: each warp reduces one chunk of
//    one (n, c) plane of grad. Its lanes read consecutive pixels (coalesced) and add each value
//    into lane-private shared-memory bins of the slots its taps read (no atomics: a lane touches
//    only its own bins); the 32 lanes' bins are combined by a fixed shuffle tree into
//    per-(plane, chunk) partials, and a second kernel adds the chunks in order. Slots are
//    processed in tiles of 32 (a grid dimension), so any kh*kw*R works; a tile visits only the
//    taps whose slots it holds.
// Labels outside [0, R) trip a device-side assertion (a host-side check would synchronise).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
// Only c10/cuda headers: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE headers that a
// minimal CUDA toolkit (nvcc + runtime) does not ship.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../region_conv_common.h"
#include "../region_conv_math.h"
#include "../region_pool_math.h"
#include "warp.cuh"

namespace fastpose {
namespace {

namespace cm = region_conv_math;

constexpr int kWarps = 4;          // warps per block of the backward's partial sums
constexpr int kSlotTile = 32;      // table slots per shared-memory bin set
constexpr int64_t kChunk = 2048;   // pixels per warp item (64 per lane)
constexpr int kThreads = 256;

__device__ __forceinline__ int64_t checked_label(int64_t label, int64_t num_regions) {
  CUDA_KERNEL_ASSERT_MSG(region_math::label_ok(label, num_regions),
                         "fastpose::region_conv: seg has a label outside [0, num_regions)");
  return label;
}

// out[n, c, p] = sum over taps of tableT[n, c, slot]; tableT is [N, C, K*R].
template <typename scalar_t, typename label_t, typename acc_t>
__global__ void region_conv_forward_kernel(const scalar_t* __restrict__ tableT, const label_t* __restrict__ labels,
                                           scalar_t* __restrict__ out, int64_t planes, int64_t channels,
                                           int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t num_regions) {
  const int64_t pixels = h * w, slots = kh * kw * num_regions;
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int64_t n = plane / channels;
    const label_t* lp = labels + n * pixels;
    const scalar_t* tp = tableT + plane * slots;
    scalar_t* op = out + plane * pixels;
    for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pixels;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t y = p / w, x = p % w;
      acc_t sum = acc_t(0);
      for (int64_t i = 0; i < kh; ++i) {
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t q = cm::tap_source(y, x, i, j, kh, kw, h, w);
          if (q < 0) continue;
          const int64_t label = checked_label(static_cast<int64_t>(lp[q]), num_regions);
          sum += static_cast<acc_t>(tp[cm::tap_slot(i * kw + j, label, num_regions)]);
        }
      }
      op[p] = static_cast<scalar_t>(sum);
    }
  }
}

// partial[item, slot] = sum of grad over the pixels of the item's chunk whose taps read `slot`,
// item = plane * chunks + k, for the block's tile of slots.
template <typename scalar_t, typename label_t, typename acc_t>
__global__ void __launch_bounds__(kWarps * 32)
    region_conv_partials_kernel(const scalar_t* __restrict__ grad, const label_t* __restrict__ labels,
                                acc_t* __restrict__ partial, int64_t items, int64_t channels, int64_t h,
                                int64_t w, int64_t kh, int64_t kw, int64_t num_regions, int64_t chunks) {
  __shared__ acc_t bins[kSlotTile][kWarps][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (item >= items) return;  // warps are independent: no block-wide barrier below
  const int64_t pixels = h * w, slots = kh * kw * num_regions;
  const int64_t s0 = static_cast<int64_t>(blockIdx.y) * kSlotTile;
  const int64_t plane = item / chunks, k = item % chunks;
  const int64_t n = plane / channels;
#pragma unroll
  for (int t = 0; t < kSlotTile; ++t) bins[t][warp][lane] = acc_t(0);
  const int64_t begin = k * kChunk, end = pixels < begin + kChunk ? pixels : begin + kChunk;
  const scalar_t* gp = grad + plane * pixels;
  const label_t* lp = labels + n * pixels;
  // Slots are tap-major (o * R + r): only the taps whose slots overlap the tile can land in it.
  const int64_t o_begin = s0 / num_regions;
  const int64_t o_last = (s0 + kSlotTile + num_regions - 1) / num_regions;
  const int64_t o_end = o_last < kh * kw ? o_last : kh * kw;
  for (int64_t p = begin + lane; p < end; p += 32) {
    const acc_t v = static_cast<acc_t>(gp[p]);
    const int64_t y = p / w, x = p % w;
    for (int64_t o = o_begin; o < o_end; ++o) {
      const int64_t q = cm::tap_source(y, x, o / kw, o % kw, kh, kw, h, w);
      if (q < 0) continue;
      const int64_t label = checked_label(static_cast<int64_t>(lp[q]), num_regions);
      const int64_t t = cm::tap_slot(o, label, num_regions) - s0;
      if (t >= 0 && t < kSlotTile) bins[t][warp][lane] += v;
    }
  }
  // Lanes wrote only their own slots, and the reduction exchanges registers.
  const int tiles = static_cast<int>(slots - s0 < kSlotTile ? slots - s0 : kSlotTile);
  for (int t = 0; t < tiles; ++t) {
    const acc_t s = warp_sum(bins[t][warp][lane]);
    if (lane == 0) partial[item * slots + s0 + t] = s;
  }
}

// dtable[n, slot, c] = sum over chunks (in order) of partial[(n, c, chunk), slot].
template <typename scalar_t, typename acc_t>
__global__ void region_conv_finish_kernel(const acc_t* __restrict__ partial, scalar_t* __restrict__ dtable,
                                          int64_t batch, int64_t channels, int64_t slots, int64_t chunks) {
  const int64_t total = batch * slots * channels;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % channels, ns = i / channels;
    const int64_t s = ns % slots, n = ns / slots;
    const acc_t* pp = partial + (n * channels + c) * chunks * slots + s;
    acc_t sum = acc_t(0);
    for (int64_t k = 0; k < chunks; ++k) sum += pp[k * slots];
    dtable[i] = static_cast<scalar_t>(sum);
  }
}

void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), op, ": expected CUDA tensors, got ", t.device());
}

unsigned blocks_for(int64_t work, int64_t threads, int64_t most = 65535) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads, most)));
}

at::Tensor region_conv_cuda(const at::Tensor& table, const at::Tensor& seg, int64_t kh, int64_t kw) {
  constexpr const char* op = "region_conv";
  const ConvGeometry g = check_conv_inputs(op, table, seg, kh, kw);
  check_cuda(op, table);
  const c10::cuda::CUDAGuard guard(table.device());
  at::Tensor out = at::empty({g.n, g.c, g.h, g.w}, table.options());
  const int64_t planes = g.n * g.c, P = g.pixels();
  if (planes == 0 || P == 0) return out;
  // [N, K, R, C] -> [N, C, K*R]: one contiguous row of slots per output plane.
  const at::Tensor tableT = table.reshape({g.n, g.slots(), g.c}).transpose(1, 2).contiguous();
  const at::Tensor sc = seg.contiguous();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const dim3 grid(blocks_for(P, kThreads), static_cast<unsigned>(std::min<int64_t>(planes, 65535)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, table.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(sc.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      region_conv_forward_kernel<scalar_t, label_t, acc_t><<<grid, kThreads, 0, stream>>>(
          tableT.const_data_ptr<scalar_t>(), sc.const_data_ptr<label_t>(), out.mutable_data_ptr<scalar_t>(),
          planes, g.c, g.h, g.w, g.kh, g.kw, g.r);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

at::Tensor region_conv_backward_cuda(const at::Tensor& grad, const at::Tensor& seg, int64_t kh, int64_t kw,
                                     int64_t num_regions) {
  constexpr const char* op = "region_conv_backward";
  const ConvGeometry g = check_conv_backward_inputs(op, grad, seg, kh, kw, num_regions);
  check_cuda(op, grad);
  const c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor dtable = at::empty({g.n, g.taps(), g.r, g.c}, grad.options());
  if (dtable.numel() == 0) return dtable;
  const int64_t P = g.pixels(), S = g.slots();
  if (P == 0) return dtable.zero_();
  TORCH_CHECK((S + kSlotTile - 1) / kSlotTile <= 65535, op, ": kh*kw*R must be at most ", 65535 * kSlotTile,
              " on CUDA, got ", S);
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  const int64_t items = g.n * g.c * chunks;
  const auto acc = region_acc_type(grad.scalar_type());
  at::Tensor partial = at::empty({items * S}, grad.options().dtype(acc));
  const at::Tensor gc = grad.contiguous();
  const at::Tensor sc = seg.contiguous();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(sc.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      const dim3 grid(static_cast<unsigned>((items + kWarps - 1) / kWarps),
                      static_cast<unsigned>((S + kSlotTile - 1) / kSlotTile));
      region_conv_partials_kernel<scalar_t, label_t, acc_t><<<grid, kWarps * 32, 0, stream>>>(
          gc.const_data_ptr<scalar_t>(), sc.const_data_ptr<label_t>(), partial.mutable_data_ptr<acc_t>(), items,
          g.c, g.h, g.w, g.kh, g.kw, g.r, chunks);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    const int64_t total = g.n * S * g.c;
    region_conv_finish_kernel<scalar_t, acc_t><<<blocks_for(total, 256, 4096), 256, 0, stream>>>(
        partial.const_data_ptr<acc_t>(), dtable.mutable_data_ptr<scalar_t>(), g.n, g.c, S, chunks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dtable;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CUDA, m) {
  m.impl("region_conv", &region_conv_cuda);
  m.impl("region_conv_backward", &region_conv_backward_cuda);
}

}  // namespace fastpose
