// CUDA kernels of fastpose::region_avg_pool, fastpose::region_broadcast and
// their backward schemas.
//
// Label maps (the fast path) use two primitives:
//  * sum by label (pooling forward, broadcast backward): each warp reduces one
//    chunk of one (n, c) plane. Its lanes read consecutive pixels (coalesced)
//    and add each value into a lane-private bin of the pixel's region in shared
//    memory (no atomics: a lane only touches its own bins); the 32 lanes' bins
//    are then combined with a fixed shuffle tree into per-(plane, chunk)
//    partials, and a second kernel adds the chunks in order and divides by the
//    area. Warps of channel 0 also count the pixels per region (the areas).
//    Regions are processed in tiles of 32 (a grid dimension), so any R works.
//  * gather by label (broadcast forward, pooling backward): one thread per
//    output element reads its pixel's label and the (n, label, c) value.
// The results do not depend on the launch configuration's scheduling: every
// sum has a fixed order. Labels outside [0, R) trip a device-side assertion
// (a host-side check would synchronise). Soft masks use at::bmm
// (region_pool_common.h).
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

#include "../region_pool_common.h"
#include "../region_pool_math.h"
#include "warp.cuh"

namespace fastpose {
namespace {

namespace rm = region_math;

constexpr int kWarps = 4;          // warps per block of the sum kernel
constexpr int kRegionTile = 32;    // regions per shared-memory bin set
constexpr int64_t kChunk = 2048;   // pixels per warp item (64 per lane): a 64x32 plane is one item
constexpr int kGatherThreads = 256;

__device__ __forceinline__ int64_t checked_label(int64_t label, int64_t num_regions) {
  CUDA_KERNEL_ASSERT_MSG(rm::label_ok(label, num_regions),
                         "fastpose region ops: seg has a label outside [0, num_regions)");
  return label;
}

// partial[item, r] = sum of x over the pixels of region r in the item's chunk, item = plane * K + k;
// counts[(n * K + k), r] = their number (written by the channel-0 warps when counts != nullptr).
template <typename scalar_t, typename label_t, typename acc_t>
__global__ void __launch_bounds__(kWarps * 32)
    label_partials_kernel(const scalar_t* __restrict__ x, const label_t* __restrict__ labels,
                          acc_t* __restrict__ partial, int* __restrict__ counts, int64_t items,
                          int64_t channels, int64_t pixels, int64_t num_regions, int64_t chunks) {
  __shared__ acc_t bins[kRegionTile][kWarps][32];
  __shared__ int cnt[kRegionTile][kWarps][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (item >= items) return;  // warps are independent: no block-wide barrier below
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kRegionTile;
  const int64_t plane = item / chunks, k = item % chunks;
  const int64_t n = plane / channels, c = plane % channels;
  const bool count = counts != nullptr && c == 0;
#pragma unroll
  for (int t = 0; t < kRegionTile; ++t) {
    bins[t][warp][lane] = acc_t(0);
    cnt[t][warp][lane] = 0;
  }
  const int64_t begin = k * kChunk, end = pixels < begin + kChunk ? pixels : begin + kChunk;
  const scalar_t* xp = x + plane * pixels;
  const label_t* lp = labels + n * pixels;
  int64_t p = begin + lane;
  // Four independent loads in flight per lane before the bin updates.
  for (; p + 96 < end; p += 128) {
    int64_t l[4];
    acc_t v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      l[u] = static_cast<int64_t>(lp[p + 32 * u]);
      v[u] = static_cast<acc_t>(xp[p + 32 * u]);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t t = checked_label(l[u], num_regions) - r0;
      if (t >= 0 && t < kRegionTile) {
        bins[t][warp][lane] += v[u];
        if (count) cnt[t][warp][lane] += 1;
      }
    }
  }
  for (; p < end; p += 32) {
    const int64_t t = checked_label(static_cast<int64_t>(lp[p]), num_regions) - r0;
    if (t >= 0 && t < kRegionTile) {
      bins[t][warp][lane] += static_cast<acc_t>(xp[p]);
      if (count) cnt[t][warp][lane] += 1;
    }
  }
  // Lanes wrote only their own slots, and the reduction exchanges registers.
  const int tiles = static_cast<int>(num_regions - r0 < kRegionTile ? num_regions - r0 : kRegionTile);
  for (int t = 0; t < tiles; ++t) {
    const acc_t s = warp_sum(bins[t][warp][lane]);
    if (lane == 0) partial[item * num_regions + r0 + t] = s;
    if (count) {
      const int m = warp_sum(cnt[t][warp][lane]);
      if (lane == 0) counts[(n * chunks + k) * num_regions + r0 + t] = m;
    }
  }
}

// out[n, r, c] = sum over chunks of the partials (in order), divided by the area when normalise;
// the channel-0 threads also write area[n, r] when area != nullptr.
template <typename scalar_t, typename acc_t>
__global__ void label_finish_kernel(const acc_t* __restrict__ partial, const int* __restrict__ counts,
                                    scalar_t* __restrict__ out, acc_t* __restrict__ area, int64_t batch,
                                    int64_t channels, int64_t num_regions, int64_t chunks, bool normalise) {
  const int64_t total = batch * num_regions * channels;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % channels, nr = i / channels;
    const int64_t r = nr % num_regions, n = nr / num_regions;
    acc_t s = acc_t(0);
    const acc_t* pp = partial + (n * channels + c) * chunks * num_regions + r;
    for (int64_t k = 0; k < chunks; ++k) s += pp[k * num_regions];
    acc_t a = acc_t(0);
    if (counts != nullptr) {
      int64_t m = 0;
      for (int64_t k = 0; k < chunks; ++k) m += counts[(n * chunks + k) * num_regions + r];
      a = static_cast<acc_t>(m);
      if (area != nullptr && c == 0) area[nr] = a;
    }
    out[i] = static_cast<scalar_t>(rm::finish_sum(s, a, normalise));
  }
}

// out[n, c, p] = src[n, label(p), c] (times 1 / area[n, label(p)] when area != nullptr).
template <typename scalar_t, typename label_t, typename acc_t>
__global__ void label_gather_kernel(const scalar_t* __restrict__ src, const acc_t* __restrict__ area,
                                    const label_t* __restrict__ labels, scalar_t* __restrict__ out,
                                    int64_t planes, int64_t channels, int64_t pixels, int64_t num_regions) {
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int64_t n = plane / channels, c = plane % channels;
    const label_t* lp = labels + n * pixels;
    const scalar_t* sp = src + n * num_regions * channels + c;
    const acc_t* an = area == nullptr ? nullptr : area + n * num_regions;
    scalar_t* op = out + plane * pixels;
    for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pixels;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t l = checked_label(static_cast<int64_t>(lp[p]), num_regions);
      op[p] = static_cast<scalar_t>(rm::gather_value(static_cast<acc_t>(sp[l * channels]), an, l));
    }
  }
}

void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), op, ": expected CUDA tensors, got ", t.device());
}

unsigned blocks_for(int64_t work, int64_t threads, int64_t most = 65535) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads, most)));
}

// out [N, R, C] = per-region sums of x [N, C, H, W] (contiguous), normalised by the area when
// `area` is defined (then also written). x may have C = 0 only when area is wanted (see caller).
void sum_by_label(const at::Tensor& x, const at::Tensor& seg, const RegionGeometry& g,
                  at::Tensor& out, at::Tensor* area) {
  const int64_t P = g.pixels(), C = x.size(1);
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  const int64_t items = g.n * C * chunks;
  const auto acc = region_acc_type(x.scalar_type());
  at::Tensor partial = at::empty({std::max<int64_t>(items * g.r, 1)}, x.options().dtype(acc));
  at::Tensor counts = area != nullptr ? at::empty({std::max<int64_t>(g.n * chunks * g.r, 1)},
                                                  x.options().dtype(at::kInt))
                                      : at::Tensor();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor sc = seg.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "region_sum_by_label", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(sc.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      if (items > 0) {
        const dim3 grid(static_cast<unsigned>((items + kWarps - 1) / kWarps),
                        static_cast<unsigned>((g.r + kRegionTile - 1) / kRegionTile));
        label_partials_kernel<scalar_t, label_t, acc_t><<<grid, kWarps * 32, 0, stream>>>(
            x.const_data_ptr<scalar_t>(), sc.const_data_ptr<label_t>(), partial.mutable_data_ptr<acc_t>(),
            area != nullptr ? counts.mutable_data_ptr<int>() : nullptr, items, C, P, g.r, chunks);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
    const int64_t total = g.n * g.r * out.size(2);
    if (total > 0) {
      label_finish_kernel<scalar_t, acc_t><<<blocks_for(total, 256, 4096), 256, 0, stream>>>(
          partial.const_data_ptr<acc_t>(), area != nullptr ? counts.const_data_ptr<int>() : nullptr,
          out.mutable_data_ptr<scalar_t>(), area != nullptr ? area->mutable_data_ptr<acc_t>() : nullptr,
          g.n, out.size(2), g.r, chunks, area != nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

// out [N, C, H, W] = src [N, R, C] (contiguous) gathered by label, / area when area is defined.
void gather_by_label(const at::Tensor& src, const at::Tensor* area, const at::Tensor& seg,
                     const RegionGeometry& g, at::Tensor& out) {
  const int64_t P = g.pixels(), planes = g.n * g.c;
  if (planes == 0 || P == 0) return;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor sc = seg.contiguous();
  const dim3 grid(blocks_for(P, kGatherThreads), static_cast<unsigned>(std::min<int64_t>(planes, 65535)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "region_gather_by_label", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(sc.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      label_gather_kernel<scalar_t, label_t, acc_t><<<grid, kGatherThreads, 0, stream>>>(
          src.const_data_ptr<scalar_t>(), area != nullptr ? area->const_data_ptr<acc_t>() : nullptr,
          sc.const_data_ptr<label_t>(), out.mutable_data_ptr<scalar_t>(), planes, g.c, P, g.r);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

std::tuple<at::Tensor, at::Tensor> region_avg_pool_cuda(const at::Tensor& feat, const at::Tensor& seg,
                                                        int64_t num_regions) {
  constexpr const char* op = "region_avg_pool";
  const RegionGeometry g = check_pool_inputs(op, feat, seg, num_regions);
  check_cuda(op, feat);
  const c10::cuda::CUDAGuard guard(feat.device());
  if (!g.labels) return soft::pool(feat, seg);
  at::Tensor codes = at::empty({g.n, g.r, g.c}, feat.options());
  at::Tensor area = at::empty({g.n, g.r}, feat.options().dtype(region_acc_type(feat.scalar_type())));
  // The channel-0 warps count the areas; without channels, count over one zero channel.
  const at::Tensor x = g.c > 0 ? feat.contiguous() : at::zeros({g.n, 1, g.h, g.w}, feat.options());
  at::Tensor sums = g.c > 0 ? codes : at::empty({g.n, g.r, 1}, feat.options());
  sum_by_label(x, seg, g, sums, &area);
  return {codes, area};
}

std::tuple<at::Tensor, at::Tensor> region_avg_pool_backward_cuda(const at::Tensor& grad, const at::Tensor& feat,
                                                                 const at::Tensor& seg, const at::Tensor& codes,
                                                                 const at::Tensor& area, bool seg_grad) {
  constexpr const char* op = "region_avg_pool_backward";
  const RegionGeometry g = check_pool_backward_inputs(op, grad, feat, seg, codes, area, seg_grad);
  check_cuda(op, feat);
  const c10::cuda::CUDAGuard guard(feat.device());
  const at::Tensor gc = grad.to(feat.scalar_type()).contiguous();
  if (!g.labels) return soft::pool_backward(gc, feat, seg, codes, area, seg_grad);
  at::Tensor dfeat = at::empty({g.n, g.c, g.h, g.w}, feat.options());
  const at::Tensor ac = area.contiguous();
  gather_by_label(gc, &ac, seg, g, dfeat);
  return {dfeat, no_grad_output(feat)};
}

at::Tensor region_broadcast_cuda(const at::Tensor& codes, const at::Tensor& seg) {
  constexpr const char* op = "region_broadcast";
  const RegionGeometry g = check_broadcast_inputs(op, codes, seg);
  check_cuda(op, codes);
  const c10::cuda::CUDAGuard guard(codes.device());
  if (!g.labels) return soft::broadcast(codes, seg, g);
  at::Tensor out = at::empty({g.n, g.c, g.h, g.w}, codes.options());
  gather_by_label(codes.contiguous(), nullptr, seg, g, out);
  return out;
}

std::tuple<at::Tensor, at::Tensor> region_broadcast_backward_cuda(const at::Tensor& grad, const at::Tensor& codes,
                                                                  const at::Tensor& seg, bool seg_grad) {
  constexpr const char* op = "region_broadcast_backward";
  const RegionGeometry g = check_broadcast_inputs(op, codes, seg);
  check_cuda(op, codes);
  check_grad(op, "grad", grad, {g.n, g.c, g.h, g.w}, codes);
  TORCH_CHECK(!(seg_grad && g.labels), op, ": a label map has no gradient (seg_grad must be false)");
  const c10::cuda::CUDAGuard guard(codes.device());
  const at::Tensor gc = grad.to(codes.scalar_type()).contiguous();
  if (!g.labels) return soft::broadcast_backward(gc, codes, seg, seg_grad);
  at::Tensor dcodes = at::empty({g.n, g.r, g.c}, codes.options());
  sum_by_label(gc, seg, g, dcodes, nullptr);
  return {dcodes, no_grad_output(codes)};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CUDA, m) {
  m.impl("region_avg_pool", &region_avg_pool_cuda);
  m.impl("region_avg_pool_backward", &region_avg_pool_backward_cuda);
  m.impl("region_broadcast", &region_broadcast_cuda);
  m.impl("region_broadcast_backward", &region_broadcast_backward_cuda);
}

}  // namespace fastpose
