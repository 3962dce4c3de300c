// CUDA kernels of fastpose::part_stats and fastpose::part_stats_backward.
//
// Forward, pass 1: one block per (chunk of kChunk pixels, image). For each
// channel the block keeps its pixels' x and y (shifted by the chunk's first
// pixel) in registers, then for each part reads the mask once, accumulates
// the six shifted sums per thread and reduces them over the block (warp
// shuffles, then one shared-memory step). Thread 0 turns them into centred
// partials with the same function as the CPU kernel. Pass 2: one thread per
// (n, k, c) merges its partials in chunk order, in double (Chan et al.), and
// writes the published moments. No atomics: the result is deterministic and
// does not depend on the launch configuration beyond the fixed chunking.
// Backward: elementwise in the pixels. A tiny kernel builds the per-part
// coefficients; the main kernel stages them in shared memory and computes
// dx, dy (sum over parts) and dm (sum over channels) with the per-pixel
// functions of part_stats_math.h.
//
// Negative masks are not detected here (it would need a host sync); the CPU
// kernel and the reference reject them.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
// Only c10/cuda headers: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE headers that a
// minimal CUDA toolkit (nvcc + runtime) does not ship.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../part_stats_common.h"
#include "../part_stats_math.h"
#include "warp.cuh"

namespace fastpose {
namespace {

namespace pm = part_stats_math;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kPix = static_cast<int>(pm::kChunk / kThreads);  // pixels per thread in pass 1
constexpr int kPixBwd = 4;                                     // pixels per thread in the backward
constexpr int kCoefFields = 7;                                 // acc_t values in pm::Coef
static_assert(pm::kChunk % kThreads == 0, "the chunk must split evenly over the threads");
static_assert(sizeof(pm::Coef<float>) == kCoefFields * sizeof(float), "Coef must be packed");
static_assert(sizeof(pm::Centred<float>) == pm::kNumPartials * sizeof(float),
              "Centred must be packed");


// Sums v[0..NV) over the block; the totals are valid in thread 0. red holds kWarps * NV values.
template <typename T, int NV>
__device__ __forceinline__ void block_sum(T (&v)[NV], T* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int i = 0; i < NV; ++i) v[i] = warp_sum(v[i]);
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < NV; ++i) red[warp * NV + i] = v[i];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int i = 0; i < NV; ++i) v[i] = warp_sum(lane < kWarps ? red[lane * NV + i] : T(0));
  }
  __syncthreads();  // red may be reused
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    part_partials_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                         const scalar_t* __restrict__ m, pm::Centred<acc_t>* __restrict__ partials,
                         acc_t* __restrict__ sums, int64_t hw, int parts, int channels,
                         int64_t chunks) {
  __shared__ acc_t red[kWarps * pm::kNumPartials];
  const int64_t n = blockIdx.y, chunk = blockIdx.x;
  const int64_t p0 = chunk * pm::kChunk;
  const int tid = threadIdx.x;
  for (int c = 0; c < channels; ++c) {
    const scalar_t* xc = x + (n * channels + c) * hw;
    const scalar_t* yc = y + (n * channels + c) * hw;
    const acc_t shx = static_cast<acc_t>(xc[p0]), shy = static_cast<acc_t>(yc[p0]);
    acc_t dx[kPix], dy[kPix];
#pragma unroll
    for (int i = 0; i < kPix; ++i) {
      const int64_t p = p0 + tid + i * kThreads;
      dx[i] = p < hw ? static_cast<acc_t>(xc[p]) - shx : acc_t(0);
      dy[i] = p < hw ? static_cast<acc_t>(yc[p]) - shy : acc_t(0);
    }
    for (int k = 0; k < parts; ++k) {
      const scalar_t* mk = m + (n * parts + k) * hw;
      acc_t v[pm::kNumPartials] = {0, 0, 0, 0, 0, 0};
#pragma unroll
      for (int i = 0; i < kPix; ++i) {
        const int64_t p = p0 + tid + i * kThreads;
        const acc_t w = p < hw ? static_cast<acc_t>(mk[p]) : acc_t(0);
        const acc_t t = w * dx[i], u = w * dy[i];
        v[0] += w;
        v[1] += t;
        v[2] += u;
        v[3] += t * dx[i];
        v[4] += u * dy[i];
        v[5] += t * dy[i];
      }
      block_sum<acc_t, pm::kNumPartials>(v, red);
      if (tid == 0) {
        const int64_t slot = (n * chunks + chunk) * parts + k;
        partials[slot * channels + c] =
            pm::centre_chunk<acc_t>(v[0], v[1], v[2], v[3], v[4], v[5], shx, shy);
        if (c == 0) sums[slot] = v[0];
      }
    }
  }
}

template <typename acc_t>
__global__ void part_merge_kernel(const pm::Centred<acc_t>* __restrict__ partials,
                                  const acc_t* __restrict__ sums, acc_t* __restrict__ stats,
                                  acc_t* __restrict__ msum, int64_t n_images, int parts,
                                  int channels, int64_t chunks, double eps) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n_images * parts * channels) return;
  const int64_t nk = i / channels, c = i % channels;
  const int64_t n = nk / parts, k = nk % parts;
  pm::Centred<double> a{0, 0, 0, 0, 0, 0};
  double s = 0;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t slot = (n * chunks + ch) * parts + k;
    const pm::Centred<acc_t> b = partials[slot * channels + c];
    pm::merge(a, pm::Centred<double>{b.s, b.ax, b.ay, b.mxx, b.myy, b.mxy});
    if (c == 0) s += sums[slot];
  }
  if (c == 0) msum[nk] = static_cast<acc_t>(s);
  pm::store_stats(pm::finalize(a, eps), stats + i * pm::kNumStats);
}

std::tuple<at::Tensor, at::Tensor> part_stats_cuda(const at::Tensor& x, const at::Tensor& y,
                                                   const at::Tensor& m, double eps) {
  const PartStatsGeometry g = check_part_stats_inputs(x, y, m, eps);
  TORCH_CHECK(x.is_cuda(), "part_stats: expected CUDA tensors, got ", x.device());
  TORCH_CHECK(g.n <= 65535, "part_stats: the CUDA kernel takes at most 65535 images, got ", g.n);
  TORCH_CHECK(g.k <= INT32_MAX && g.c <= INT32_MAX, "part_stats: too many parts or channels");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const at::Tensor mc = m.contiguous();
  const auto acc_opts = x.options().dtype(part_stats_acc_type(x.scalar_type()));
  at::Tensor stats = at::empty({g.n, g.k, g.c, pm::kNumStats}, acc_opts);
  if (g.n == 0 || g.k == 0) return {stats, at::empty({g.n, g.k}, acc_opts)};
  if (g.c == 0 || g.hw == 0) {
    // Nothing to merge: the mask sums alone (a deterministic torch reduction).
    return {stats.zero_(), mc.sum({2, 3}, false, part_stats_acc_type(x.scalar_type()))};
  }
  at::Tensor msum = at::empty({g.n, g.k}, acc_opts);
  const int64_t slots = g.n * g.chunks * g.k;
  at::Tensor partials = at::empty({slots * g.c * pm::kNumPartials}, acc_opts);
  at::Tensor sums = at::empty({slots}, acc_opts);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "part_stats_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto* part_ptr = reinterpret_cast<pm::Centred<acc_t>*>(partials.mutable_data_ptr<acc_t>());
    const dim3 grid(static_cast<unsigned>(g.chunks), static_cast<unsigned>(g.n));
    part_partials_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(), mc.const_data_ptr<scalar_t>(),
        part_ptr, sums.mutable_data_ptr<acc_t>(), g.hw, static_cast<int>(g.k),
        static_cast<int>(g.c), g.chunks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t threads = g.n * g.k * g.c;
    part_merge_kernel<acc_t><<<static_cast<unsigned>((threads + 127) / 128), 128, 0, stream>>>(
        part_ptr, sums.const_data_ptr<acc_t>(), stats.mutable_data_ptr<acc_t>(),
        msum.mutable_data_ptr<acc_t>(), g.n, static_cast<int>(g.k), static_cast<int>(g.c), g.chunks,
        eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {stats, msum};
}

// One thread per (n, k): the coefficient table of the pixel loops, as on the CPU.
template <typename acc_t>
__global__ void part_coef_kernel(const acc_t* __restrict__ grad_stats,
                                 const acc_t* __restrict__ grad_msum,
                                 const acc_t* __restrict__ stats, const acc_t* __restrict__ msum,
                                 pm::Coef<acc_t>* __restrict__ coef, acc_t* __restrict__ inv_d,
                                 acc_t* __restrict__ bias, int64_t nk_count, int channels,
                                 double eps) {
  const int64_t nk = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (nk >= nk_count) return;
  const acc_t d = msum[nk] + static_cast<acc_t>(eps);
  acc_t cst = 0;
  for (int c = 0; c < channels; ++c) {
    const int64_t i = nk * channels + c;
    coef[i] = pm::make_coef(grad_stats + i * pm::kNumStats, stats + i * pm::kNumStats);
    cst += pm::dm_constant(grad_stats + i * pm::kNumStats, stats + i * pm::kNumStats);
  }
  inv_d[nk] = acc_t(1) / d;
  bias[nk] = grad_msum[nk] - cst / d;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    part_backward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                         const scalar_t* __restrict__ m, const pm::Coef<acc_t>* __restrict__ coef_g,
                         const acc_t* __restrict__ inv_d_g, const acc_t* __restrict__ bias_g,
                         scalar_t* __restrict__ dx, scalar_t* __restrict__ dy,
                         scalar_t* __restrict__ dm, int64_t hw, int parts, int channels,
                         bool stage) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int64_t n = blockIdx.y;
  const int table = parts * channels;
  const pm::Coef<acc_t>* coef = coef_g + n * table;
  const acc_t* inv_d = inv_d_g + n * parts;
  const acc_t* bias = bias_g + n * parts;
  if (stage) {  // copy this image's tables to shared memory (uniform branch)
    acc_t* s = reinterpret_cast<acc_t*>(smem_raw);
    const acc_t* src = reinterpret_cast<const acc_t*>(coef);
    for (int i = threadIdx.x; i < table * kCoefFields; i += kThreads) s[i] = src[i];
    acc_t* s_inv = s + table * kCoefFields;
    for (int i = threadIdx.x; i < parts; i += kThreads) {
      s_inv[i] = inv_d[i];
      s_inv[parts + i] = bias[i];
    }
    __syncthreads();
    coef = reinterpret_cast<const pm::Coef<acc_t>*>(s);
    inv_d = s_inv;
    bias = s_inv + parts;
  }
  const int64_t base = blockIdx.x * static_cast<int64_t>(kThreads * kPixBwd) + threadIdx.x;
  if (dx != nullptr || dy != nullptr) {
    for (int c = 0; c < channels; ++c) {
      const int64_t off = (n * channels + c) * hw;
      acc_t xv[kPixBwd], yv[kPixBwd], ax[kPixBwd], ay[kPixBwd];
#pragma unroll
      for (int i = 0; i < kPixBwd; ++i) {
        const int64_t p = base + i * kThreads;
        xv[i] = p < hw ? static_cast<acc_t>(x[off + p]) : acc_t(0);
        yv[i] = p < hw ? static_cast<acc_t>(y[off + p]) : acc_t(0);
        ax[i] = ay[i] = acc_t(0);
      }
      for (int k = 0; k < parts; ++k) {
        const pm::Coef<acc_t> q = coef[k * channels + c];
        const acc_t id = inv_d[k];
        const scalar_t* mk = m + (n * parts + k) * hw;
#pragma unroll
        for (int i = 0; i < kPixBwd; ++i) {
          const int64_t p = base + i * kThreads;
          const acc_t w = p < hw ? static_cast<acc_t>(mk[p]) * id : acc_t(0);
          ax[i] += w * pm::grad_x_term(q, xv[i], yv[i]);
          ay[i] += w * pm::grad_y_term(q, xv[i], yv[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < kPixBwd; ++i) {
        const int64_t p = base + i * kThreads;
        if (p >= hw) continue;
        if (dx != nullptr) dx[off + p] = static_cast<scalar_t>(ax[i]);
        if (dy != nullptr) dy[off + p] = static_cast<scalar_t>(ay[i]);
      }
    }
  }
  if (dm == nullptr) return;
  for (int k = 0; k < parts; ++k) {
    acc_t am[kPixBwd];
#pragma unroll
    for (int i = 0; i < kPixBwd; ++i) am[i] = acc_t(0);
    for (int c = 0; c < channels; ++c) {
      const pm::Coef<acc_t> q = coef[k * channels + c];
      const int64_t off = (n * channels + c) * hw;
#pragma unroll
      for (int i = 0; i < kPixBwd; ++i) {
        const int64_t p = base + i * kThreads;
        if (p < hw)
          am[i] += pm::grad_m_term(q, static_cast<acc_t>(x[off + p]), static_cast<acc_t>(y[off + p]));
      }
    }
    const acc_t id = inv_d[k], b0 = bias[k];
    scalar_t* dmk = dm + (n * parts + k) * hw;
#pragma unroll
    for (int i = 0; i < kPixBwd; ++i) {
      const int64_t p = base + i * kThreads;
      if (p < hw) dmk[p] = static_cast<scalar_t>(b0 + id * am[i]);
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> part_stats_backward_cuda(
    const at::Tensor& grad_stats, const at::Tensor& grad_msum, const at::Tensor& x,
    const at::Tensor& y, const at::Tensor& m, const at::Tensor& stats, const at::Tensor& msum,
    double eps, bool need_x_grad, bool need_y_grad, bool need_m_grad) {
  const PartStatsGeometry g = check_part_stats_inputs(x, y, m, eps);
  check_part_stats_backward_inputs(grad_stats, grad_msum, x, stats, msum, g);
  TORCH_CHECK(x.is_cuda(), "part_stats_backward: expected CUDA tensors, got ", x.device());
  TORCH_CHECK(g.n <= 65535, "part_stats_backward: the CUDA kernel takes at most 65535 images, got ",
              g.n);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc = part_stats_acc_type(x.scalar_type());
  const at::Tensor gs = grad_stats.to(acc).contiguous();
  const at::Tensor gms = grad_msum.to(acc).contiguous();
  const at::Tensor st = stats.contiguous();
  const at::Tensor ms = msum.contiguous();
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const at::Tensor mc = m.contiguous();
  at::Tensor dx = need_x_grad ? at::empty_like(xc) : at::empty({0}, x.options());
  at::Tensor dy = need_y_grad ? at::empty_like(yc) : at::empty({0}, y.options());
  at::Tensor dm = need_m_grad ? at::empty_like(mc) : at::empty({0}, m.options());
  if (g.n == 0 || g.hw == 0 || (!need_x_grad && !need_y_grad && !need_m_grad)) return {dx, dy, dm};
  if (g.k == 0) {  // no part contributes: the image gradients are 0, there is no mask
    if (need_x_grad) dx.zero_();
    if (need_y_grad) dy.zero_();
    return {dx, dy, dm};
  }
  const auto acc_opts = x.options().dtype(acc);
  const int64_t nk = g.n * g.k;
  at::Tensor coef = at::empty({nk * g.c * kCoefFields}, acc_opts);
  at::Tensor inv_d = at::empty({nk}, acc_opts);
  at::Tensor bias = at::empty({nk}, acc_opts);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "part_stats_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto* coef_ptr = reinterpret_cast<pm::Coef<acc_t>*>(coef.mutable_data_ptr<acc_t>());
    part_coef_kernel<acc_t><<<static_cast<unsigned>((nk + 127) / 128), 128, 0, stream>>>(
        gs.const_data_ptr<acc_t>(), gms.const_data_ptr<acc_t>(), st.const_data_ptr<acc_t>(),
        ms.const_data_ptr<acc_t>(), coef_ptr, inv_d.mutable_data_ptr<acc_t>(),
        bias.mutable_data_ptr<acc_t>(), nk, static_cast<int>(g.c), eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // Stage the tables in shared memory when they fit the default 48 KB; else read them
    // from global memory (L1-cached broadcasts).
    const size_t smem = sizeof(acc_t) * static_cast<size_t>(g.k * g.c * kCoefFields + 2 * g.k);
    const bool stage = smem <= 48 * 1024;
    const int64_t per_block = static_cast<int64_t>(kThreads) * kPixBwd;
    const dim3 grid(static_cast<unsigned>((g.hw + per_block - 1) / per_block),
                    static_cast<unsigned>(g.n));
    part_backward_kernel<scalar_t, acc_t><<<grid, kThreads, stage ? smem : 0, stream>>>(
        xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(), mc.const_data_ptr<scalar_t>(),
        coef_ptr, inv_d.const_data_ptr<acc_t>(), bias.const_data_ptr<acc_t>(),
        need_x_grad ? dx.mutable_data_ptr<scalar_t>() : nullptr,
        need_y_grad ? dy.mutable_data_ptr<scalar_t>() : nullptr,
        need_m_grad ? dm.mutable_data_ptr<scalar_t>() : nullptr, g.hw, static_cast<int>(g.k),
        static_cast<int>(g.c), stage);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dx, dy, dm};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CUDA, m) {
  m.impl("part_stats", &part_stats_cuda);
  m.impl("part_stats_backward", &part_stats_backward_cuda);
}

}  // namespace fastpose
