// CUDA kernels of fastpose::ssim and fastpose::ssim_backward.
//
// Forward: one block per 32x32 output tile of one (n, c) plane. The tile plus
// its halo of x and y is staged in shared memory, a horizontal pass computes
// the five moments for every halo row, a vertical pass finishes them per
// output pixel, and the SSIM value (and, for training, the five derivative
// maps) are computed in registers with the same functions as the CPU kernel.
// Backward: the adjoint of the blur is the same blur with complementary
// padding, so the same tiling runs over grad * dmaps (the grad is read
// through its strides, so an expanded scalar from a mean is never
// materialised) and combines with x and y pointwise. No atomics: every output
// element is written by exactly one thread.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
// Only c10/cuda headers: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE headers that a
// minimal CUDA toolkit (nvcc + runtime) does not ship.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../ssim_common.h"
#include "../ssim_math.h"

namespace fastpose {
namespace {

namespace sm = ssim_math;

constexpr int kTileW = 32;   // output columns per block (one warp across)
constexpr int kThreadsY = 8;  // block is kTileW x kThreadsY threads

// Gaussian taps into shared memory, computed in double like the CPU path.
template <typename acc_t>
__device__ void load_taps(int window, double sigma, acc_t* taps) {
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int t = tid; t < window; t += blockDim.x * blockDim.y)
    taps[t] = static_cast<acc_t>(sm::gaussian_tap(window, sigma, t));
}

template <int TILE_H>
struct TileShape {
  static constexpr int kRowsPerThread = TILE_H / kThreadsY;
};

// Shared memory layout of the forward (in acc_t units):
//   taps[w] | sx[(TH+w-1) x (TW+w-1)] | sy[...] | hb[5][(TH+w-1) x TW]
template <typename acc_t, int TILE_H>
size_t forward_smem_bytes(int window) {
  const size_t rows = TILE_H + window - 1, cols = kTileW + window - 1;
  return sizeof(acc_t) * (window + 2 * rows * cols + 5 * rows * kTileW);
}

template <typename scalar_t, typename acc_t, int TILE_H>
__global__ void __launch_bounds__(kTileW* kThreadsY)
    ssim_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                        scalar_t* __restrict__ map, acc_t* __restrict__ dmaps, int64_t planes,
                        int h, int w, int ho, int wo, int window, int pad, double sigma, acc_t c1,
                        acc_t c2) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* taps = reinterpret_cast<acc_t*>(smem_raw);
  const int rows = TILE_H + window - 1, cols = kTileW + window - 1;
  acc_t* sx = taps + window;
  acc_t* sy = sx + rows * cols;
  acc_t* hb = sy + rows * cols;  // [5][rows][kTileW]
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTileW + tx;
  const int nthreads = kTileW * kThreadsY;
  const int col0 = blockIdx.x * kTileW, row0 = blockIdx.y * TILE_H;
  load_taps(window, sigma, taps);

  for (int64_t p = blockIdx.z; p < planes; p += gridDim.z) {
    const scalar_t* xp = x + p * h * w;
    const scalar_t* yp = y + p * h * w;
    __syncthreads();  // taps ready; previous plane's smem no longer read
    for (int idx = tid; idx < rows * cols; idx += nthreads) {
      const int r = idx / cols, c = idx % cols;
      const int gr = row0 - pad + r, gc = col0 - pad + c;
      const bool in = gr >= 0 && gr < h && gc >= 0 && gc < w;
      sx[idx] = in ? static_cast<acc_t>(xp[gr * w + gc]) : acc_t(0);
      sy[idx] = in ? static_cast<acc_t>(yp[gr * w + gc]) : acc_t(0);
    }
    __syncthreads();
    for (int idx = tid; idx < rows * kTileW; idx += nthreads) {
      const int r = idx / kTileW, c = idx % kTileW;
      const acc_t* ax = sx + r * cols + c;
      const acc_t* ay = sy + r * cols + c;
      acc_t m0 = 0, m1 = 0, m2 = 0, m3 = 0, m4 = 0;
      for (int t = 0; t < window; ++t) {
        const acc_t g = taps[t], a = ax[t], b = ay[t];
        const acc_t ga = g * a, gb = g * b;
        m0 += ga;
        m1 += gb;
        m2 += ga * a;
        m3 += gb * b;
        m4 += ga * b;
      }
      const int plane_stride = rows * kTileW;
      hb[idx] = m0;
      hb[plane_stride + idx] = m1;
      hb[2 * plane_stride + idx] = m2;
      hb[3 * plane_stride + idx] = m3;
      hb[4 * plane_stride + idx] = m4;
    }
    __syncthreads();
    const int plane_stride = rows * kTileW;
#pragma unroll
    for (int k = 0; k < TileShape<TILE_H>::kRowsPerThread; ++k) {
      const int r = ty + k * kThreadsY;
      const int oi = row0 + r, oj = col0 + tx;
      if (oi >= ho || oj >= wo) continue;
      acc_t m[5] = {0, 0, 0, 0, 0};
      for (int t = 0; t < window; ++t) {
        const acc_t g = taps[t];
        const int base = (r + t) * kTileW + tx;
#pragma unroll
        for (int q = 0; q < 5; ++q) m[q] += g * hb[q * plane_stride + base];
      }
      const int64_t o = (p * ho + oi) * static_cast<int64_t>(wo) + oj;
      if (dmaps == nullptr) {
        map[o] = static_cast<scalar_t>(sm::ssim_value(m[0], m[1], m[2], m[3], m[4], c1, c2));
      } else {
        const sm::SsimGrad<acc_t> gr = sm::ssim_value_and_derivs(m[0], m[1], m[2], m[3], m[4], c1, c2);
        map[o] = static_cast<scalar_t>(gr.s);
        const int64_t plane_px = static_cast<int64_t>(ho) * wo;
        acc_t* d = dmaps + p * 5 * plane_px + static_cast<int64_t>(oi) * wo + oj;
        d[0] = gr.d0;
        d[plane_px] = gr.d1;
        d[2 * plane_px] = gr.d2;
        d[3 * plane_px] = gr.d3;
        d[4 * plane_px] = gr.d4;
      }
    }
  }
}

// Shared memory of the backward (acc_t units): taps[w] | u[5][(TH+w-1) x (TW+w-1)] | hb[5][(TH+w-1) x TW]
template <typename acc_t, int TILE_H>
size_t backward_smem_bytes(int window) {
  const size_t rows = TILE_H + window - 1, cols = kTileW + window - 1;
  return sizeof(acc_t) * (window + 5 * rows * cols + 5 * rows * kTileW);
}

template <typename scalar_t, typename acc_t, int TILE_H>
__global__ void __launch_bounds__(kTileW* kThreadsY)
    ssim_backward_kernel(const scalar_t* __restrict__ grad, int64_t gs0, int64_t gs1, int64_t gs2,
                         int64_t gs3, const scalar_t* __restrict__ x,
                         const scalar_t* __restrict__ y, const acc_t* __restrict__ dmaps,
                         scalar_t* __restrict__ dx, scalar_t* __restrict__ dy, int64_t planes,
                         int channels, int h, int w, int ho, int wo, int window, int bpad,
                         double sigma) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* taps = reinterpret_cast<acc_t*>(smem_raw);
  const int rows = TILE_H + window - 1, cols = kTileW + window - 1;
  acc_t* su = taps + window;          // [5][rows][cols]
  acc_t* hb = su + 5 * rows * cols;   // [5][rows][kTileW]
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTileW + tx;
  const int nthreads = kTileW * kThreadsY;
  const int col0 = blockIdx.x * kTileW, row0 = blockIdx.y * TILE_H;
  const int64_t plane_px = static_cast<int64_t>(ho) * wo;
  load_taps(window, sigma, taps);

  for (int64_t p = blockIdx.z; p < planes; p += gridDim.z) {
    const int64_t n = p / channels, c = p % channels;
    const scalar_t* gp = grad + n * gs0 + c * gs1;
    const acc_t* dp = dmaps + p * 5 * plane_px;
    __syncthreads();
    for (int idx = tid; idx < rows * cols; idx += nthreads) {
      const int r = idx / cols, cc = idx % cols;
      const int gr = row0 - bpad + r, gc = col0 - bpad + cc;
      const bool in = gr >= 0 && gr < ho && gc >= 0 && gc < wo;
      const acc_t gv = in ? static_cast<acc_t>(gp[gr * gs2 + gc * gs3]) : acc_t(0);
      const int64_t o = static_cast<int64_t>(gr) * wo + gc;
#pragma unroll
      for (int q = 0; q < 5; ++q) su[q * rows * cols + idx] = in ? gv * dp[q * plane_px + o] : acc_t(0);
    }
    __syncthreads();
    for (int idx = tid; idx < rows * kTileW; idx += nthreads) {
      const int r = idx / kTileW, cc = idx % kTileW;
#pragma unroll
      for (int q = 0; q < 5; ++q) {
        const acc_t* a = su + q * rows * cols + r * cols + cc;
        acc_t s = 0;
        for (int t = 0; t < window; ++t) s += taps[t] * a[t];
        hb[q * rows * kTileW + idx] = s;
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TileShape<TILE_H>::kRowsPerThread; ++k) {
      const int r = ty + k * kThreadsY;
      const int oi = row0 + r, oj = col0 + tx;
      if (oi >= h || oj >= w) continue;
      acc_t u[5] = {0, 0, 0, 0, 0};
      for (int t = 0; t < window; ++t) {
        const acc_t g = taps[t];
        const int base = (r + t) * kTileW + tx;
#pragma unroll
        for (int q = 0; q < 5; ++q) u[q] += g * hb[q * rows * kTileW + base];
      }
      const int64_t o = (p * h + oi) * static_cast<int64_t>(w) + oj;
      const acc_t a = static_cast<acc_t>(x[o]), b = static_cast<acc_t>(y[o]);
      dx[o] = static_cast<scalar_t>(sm::ssim_grad_x(u[0], u[2], u[4], a, b));
      dy[o] = static_cast<scalar_t>(sm::ssim_grad_y(u[1], u[3], u[4], a, b));
    }
  }
}

// Opts a kernel into more than 48 KiB of dynamic shared memory when the window needs it.
template <typename Kernel>
void ensure_smem(Kernel kernel, size_t bytes, int64_t window) {
  int device = 0, optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  TORCH_CHECK(bytes <= static_cast<size_t>(optin), "ssim: window ", window, " needs ", bytes,
              " bytes of shared memory per block, more than this GPU offers (", optin,
              "); use a smaller window");
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
  }
}

constexpr int kForwardTileH = 32;
constexpr int kBackwardTileH = 16;

dim3 grid_for(int64_t rows, int64_t cols, int tile_h, int64_t planes) {
  return dim3(static_cast<unsigned>((cols + kTileW - 1) / kTileW),
              static_cast<unsigned>((rows + tile_h - 1) / tile_h),
              static_cast<unsigned>(std::min<int64_t>(planes, 65535)));
}

std::tuple<at::Tensor, at::Tensor> ssim_cuda(const at::Tensor& x, const at::Tensor& y,
                                             int64_t window, double sigma, double c1, double c2,
                                             bool same_padding, bool need_grad) {
  const SsimGeometry g = check_ssim_inputs(x, y, window, sigma, same_padding);
  TORCH_CHECK(x.is_cuda(), "ssim: expected CUDA tensors, got ", x.device());
  TORCH_CHECK(window <= 1023, "ssim: window ", window, " exceeds the CUDA kernel's limit of 1023");
  TORCH_CHECK(g.h * g.w < (int64_t(1) << 31), "ssim: planes of more than 2^31 pixels are not supported");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const auto acc_type = ssim_acc_type(x.scalar_type());
  at::Tensor map = at::empty({g.n, g.c, g.ho, g.wo}, x.options());
  at::Tensor dmaps = need_grad
                         ? at::empty({g.n, g.c, sm::kNumDerivMaps, g.ho, g.wo}, x.options().dtype(acc_type))
                         : at::empty({0}, x.options().dtype(acc_type));
  const int64_t planes = g.n * g.c;
  if (planes == 0 || g.ho == 0 || g.wo == 0) return {map, dmaps};
  const dim3 block(kTileW, kThreadsY);
  const dim3 grid = grid_for(g.ho, g.wo, kForwardTileH, planes);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ssim_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto kernel = ssim_forward_kernel<scalar_t, acc_t, kForwardTileH>;
    const size_t smem = forward_smem_bytes<acc_t, kForwardTileH>(static_cast<int>(window));
    ensure_smem(kernel, smem, window);
    kernel<<<grid, block, smem, stream>>>(
        xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
        map.mutable_data_ptr<scalar_t>(), need_grad ? dmaps.mutable_data_ptr<acc_t>() : nullptr,
        planes, static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.ho),
        static_cast<int>(g.wo), static_cast<int>(window), static_cast<int>(g.pad), sigma,
        static_cast<acc_t>(c1), static_cast<acc_t>(c2));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {map, dmaps};
}

std::tuple<at::Tensor, at::Tensor> ssim_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x,
                                                      const at::Tensor& y, const at::Tensor& dmaps,
                                                      int64_t window, double sigma,
                                                      bool same_padding) {
  const SsimGeometry g = check_ssim_inputs(x, y, window, sigma, same_padding);
  check_ssim_backward_inputs(grad_in, x, dmaps, g);
  TORCH_CHECK(x.is_cuda(), "ssim_backward: expected CUDA tensors, got ", x.device());
  TORCH_CHECK(window <= 1023, "ssim_backward: window ", window, " exceeds the CUDA kernel's limit of 1023");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor grad = grad_in.scalar_type() == x.scalar_type() ? grad_in : grad_in.to(x.scalar_type());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const at::Tensor dc = dmaps.contiguous();
  at::Tensor dx = at::empty_like(xc);
  at::Tensor dy = at::empty_like(yc);
  const int64_t planes = g.n * g.c;
  if (planes == 0 || g.h == 0 || g.w == 0) return {dx, dy};
  const int64_t bpad = window - 1 - g.pad;
  const dim3 block(kTileW, kThreadsY);
  const dim3 grid = grid_for(g.h, g.w, kBackwardTileH, planes);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ssim_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto kernel = ssim_backward_kernel<scalar_t, acc_t, kBackwardTileH>;
    const size_t smem = backward_smem_bytes<acc_t, kBackwardTileH>(static_cast<int>(window));
    ensure_smem(kernel, smem, window);
    kernel<<<grid, block, smem, stream>>>(
        grad.const_data_ptr<scalar_t>(), grad.stride(0), grad.stride(1), grad.stride(2),
        grad.stride(3), xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
        dc.const_data_ptr<acc_t>(), dx.mutable_data_ptr<scalar_t>(), dy.mutable_data_ptr<scalar_t>(),
        planes, static_cast<int>(g.c), static_cast<int>(g.h), static_cast<int>(g.w),
        static_cast<int>(g.ho), static_cast<int>(g.wo), static_cast<int>(window),
        static_cast<int>(bpad), sigma);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dx, dy};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CUDA, m) {
  m.impl("ssim", &ssim_cuda);
  m.impl("ssim_backward", &ssim_backward_cuda);
}

}  // namespace fastpose
