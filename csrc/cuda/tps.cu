// CUDA kernels of fastpose::tps_grid, tps_warp and their backwards.
//
// One thread per output pixel of one sample (blockIdx.y walks the batch).
// Each block first computes its sample's TPS coefficients coef = kinv @ ctrl
// ((K+3) x 2) and stages them with the target points in shared memory; every
// thread then evaluates the radial basis on the fly (tps_math::tps_map, the
// same function as the CPU kernel) and, for the warp, gathers all C channels
// at the bilinear taps (two row pairs, tps_math::pair_taps), so no grid or [N, HW, K] tensor is stored.
//
// Backward: the same thread-to-pixel map. The input gradient is scattered
// with atomics like grid_sample's (not bitwise reproducible); the position
// gradient is summed over channels in registers, weighted by the basis and
// reduced over the block (warp shuffles, then shared memory) into one
// partial per (sample, block): no atomics on the control-point gradient. The
// partials are summed by at::sum and mapped back by dctrl = kinv^T dM, both
// deterministic.
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

#include "../tps_common.h"
#include "../tps_math.h"

namespace fastpose {
namespace {

namespace tm = tps_math;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGridY = 65535;
constexpr size_t kMaxSmem = 48 * 1024;  // default dynamic shared memory limit

// Shared memory (acc_t units): target[2K] | coef[2(K+3)] | reduction[kWarps][2(K+3)].
template <typename acc_t>
size_t smem_bytes(int64_t k, bool reduce) {
  return sizeof(acc_t) * (2 * k + 2 * (k + 3) + (reduce ? kWarps * 2 * (k + 3) : 0));
}

template <typename acc_t>
void check_smem(const char* op, int64_t k, bool reduce) {
  TORCH_CHECK(smem_bytes<acc_t>(k, reduce) <= kMaxSmem, op, ": K=", k,
              " control points exceed the CUDA kernel's shared memory (at most ",
              kMaxSmem, " bytes)");
}

// Stage the layout and sample n's coefficients coef = kinv @ ctrl[n].
template <typename scalar_t, typename acc_t>
__device__ void stage_layout(const scalar_t* __restrict__ ctrl, const acc_t* __restrict__ target,
                             const acc_t* __restrict__ kinv, int64_t n, int k, acc_t* s_target,
                             acc_t* s_coef) {
  for (int i = threadIdx.x; i < 2 * k; i += blockDim.x) s_target[i] = target[i];
  const scalar_t* c = ctrl + n * k * 2;
  for (int i = threadIdx.x; i < 2 * (k + 3); i += blockDim.x) {
    const int r = i / 2, comp = i % 2;
    acc_t s = 0;
    for (int j = 0; j < k; ++j) s += kinv[r * k + j] * static_cast<acc_t>(c[2 * j + comp]);
    s_coef[i] = s;
  }
}

// Sum b(p) dg(p)^T over the block's pixels into out[2(K+3)]; dg is 0 for idle threads.
template <typename acc_t>
__device__ void reduce_basis(acc_t px, acc_t py, acc_t dgx, acc_t dgy, const acc_t* s_target,
                             int k, acc_t* s_red, acc_t* out) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int m = 2 * (k + 3);
  for (int j = 0; j < k + 3; ++j) {
    acc_t b;
    if (j < k) {
      const acc_t dx = px - s_target[2 * j], dy = py - s_target[2 * j + 1];
      b = tm::rbf(dx * dx + dy * dy);
    } else {
      b = j == k ? acc_t(1) : (j == k + 1 ? px : py);
    }
    acc_t vx = b * dgx, vy = b * dgy;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
      vx += __shfl_down_sync(0xffffffffu, vx, off);
      vy += __shfl_down_sync(0xffffffffu, vy, off);
    }
    if (lane == 0) {
      s_red[warp * m + 2 * j] = vx;
      s_red[warp * m + 2 * j + 1] = vy;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < m; i += blockDim.x) {
    acc_t s = 0;
    for (int w = 0; w < kWarps; ++w) s += s_red[w * m + i];
    out[i] = s;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    tps_grid_kernel(const scalar_t* __restrict__ ctrl, const acc_t* __restrict__ target,
                    const acc_t* __restrict__ kinv, scalar_t* __restrict__ grid, int64_t batch,
                    int k, int64_t h, int64_t w, bool ac) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* s_target = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* s_coef = s_target + 2 * k;
  const int64_t pixels = h * w;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t n = blockIdx.y; n < batch; n += gridDim.y) {
    __syncthreads();  // the previous sample's layout is no longer read
    stage_layout(ctrl, target, kinv, n, k, s_target, s_coef);
    __syncthreads();
    if (p >= pixels) continue;
    const acc_t px = tm::lattice<acc_t>(p % w, w, ac), py = tm::lattice<acc_t>(p / w, h, ac);
    const tm::Point<acc_t> g = tm::tps_map(px, py, s_target, s_coef, static_cast<int64_t>(k));
    grid[(n * pixels + p) * 2] = static_cast<scalar_t>(g.x);
    grid[(n * pixels + p) * 2 + 1] = static_cast<scalar_t>(g.y);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    tps_grid_backward_kernel(const scalar_t* __restrict__ grad, int64_t gs0, int64_t gs1,
                             int64_t gs2, int64_t gs3, const acc_t* __restrict__ target,
                             acc_t* __restrict__ partial, int64_t batch, int k, int64_t h,
                             int64_t w, bool ac) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* s_target = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* s_red = s_target + 2 * k + 2 * (k + 3);
  const int64_t pixels = h * w;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int i = threadIdx.x; i < 2 * k; i += blockDim.x) s_target[i] = target[i];
  for (int64_t n = blockIdx.y; n < batch; n += gridDim.y) {
    __syncthreads();  // s_target staged; the previous reduction is consumed
    acc_t px = 0, py = 0, dgx = 0, dgy = 0;
    if (p < pixels) {
      px = tm::lattice<acc_t>(p % w, w, ac);
      py = tm::lattice<acc_t>(p / w, h, ac);
      const scalar_t* e = grad + n * gs0 + (p / w) * gs1 + (p % w) * gs2;
      dgx = static_cast<acc_t>(e[0]);
      dgy = static_cast<acc_t>(e[gs3]);
    }
    reduce_basis(px, py, dgx, dgy, s_target, k,
                 s_red, partial + (n * gridDim.x + blockIdx.x) * 2 * (k + 3));
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    tps_warp_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ ctrl,
                    const acc_t* __restrict__ target, const acc_t* __restrict__ kinv,
                    scalar_t* __restrict__ out, int64_t batch, int64_t channels, int k,
                    int64_t hin, int64_t win, int64_t h, int64_t w, bool ac) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* s_target = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* s_coef = s_target + 2 * k;
  const int64_t pixels = h * w, plane_in = hin * win;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t n = blockIdx.y; n < batch; n += gridDim.y) {
    __syncthreads();
    stage_layout(ctrl, target, kinv, n, k, s_target, s_coef);
    __syncthreads();
    if (p >= pixels) continue;
    const acc_t px = tm::lattice<acc_t>(p % w, w, ac), py = tm::lattice<acc_t>(p / w, h, ac);
    const tm::Point<acc_t> g = tm::tps_map(px, py, s_target, s_coef, static_cast<int64_t>(k));
    const tm::PairTaps<acc_t> t = tm::pair_taps(g.x, g.y, tm::make_axis<acc_t>(win, ac),
                                                 tm::make_axis<acc_t>(hin, ac));
    const bool pair = win >= 2;  // a one-column plane has no second slot
    const scalar_t* xn = x + n * channels * plane_in;
    scalar_t* on = out + n * channels * pixels + p;
    for (int64_t c = 0; c < channels; ++c) {
      const scalar_t* plane = xn + c * plane_in;
      const acc_t v00 = static_cast<acc_t>(plane[t.r0]);
      const acc_t v10 = static_cast<acc_t>(plane[t.r1]);
      const acc_t v01 = pair ? static_cast<acc_t>(plane[t.r0 + 1]) : acc_t(0);
      const acc_t v11 = pair ? static_cast<acc_t>(plane[t.r1 + 1]) : acc_t(0);
      on[c * pixels] = static_cast<scalar_t>(tm::pair_sample(t, v00, v01, v10, v11));
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    tps_warp_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
                             const scalar_t* __restrict__ ctrl, const acc_t* __restrict__ target,
                             const acc_t* __restrict__ kinv, acc_t* __restrict__ dx,
                             acc_t* __restrict__ partial, int64_t batch, int64_t channels, int k,
                             int64_t hin, int64_t win, int64_t h, int64_t w, bool ac) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* s_target = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* s_coef = s_target + 2 * k;
  acc_t* s_red = s_coef + 2 * (k + 3);
  const int64_t pixels = h * w, plane_in = hin * win;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const tm::Axis<acc_t> ax = tm::make_axis<acc_t>(win, ac), ay = tm::make_axis<acc_t>(hin, ac);
  const acc_t sx = ax.scale, sy = ay.scale;
  for (int64_t n = blockIdx.y; n < batch; n += gridDim.y) {
    __syncthreads();
    stage_layout(ctrl, target, kinv, n, k, s_target, s_coef);
    __syncthreads();
    acc_t px = 0, py = 0, dgx = 0, dgy = 0;
    if (p < pixels) {
      px = tm::lattice<acc_t>(p % w, w, ac);
      py = tm::lattice<acc_t>(p / w, h, ac);
      const tm::Point<acc_t> g = tm::tps_map(px, py, s_target, s_coef, static_cast<int64_t>(k));
      const tm::PairTaps<acc_t> t = tm::pair_taps(g.x, g.y, ax, ay);
      const bool pair = win >= 2;  // a one-column plane has no second slot
      // Tap weights; taps outside the plane have weight 0 at a clamped offset: skip them,
      // or out-of-range samples would contend on the border elements.
      const acc_t w00 = t.b0 * t.a0, w01 = t.b0 * t.a1, w10 = t.b1 * t.a0, w11 = t.b1 * t.a1;
      const scalar_t* gn = grad + n * channels * pixels + p;
      const scalar_t* xn = x + n * channels * plane_in;
      acc_t* dxn = dx == nullptr ? nullptr : dx + n * channels * plane_in;
      for (int64_t c = 0; c < channels; ++c) {
        const acc_t gv = static_cast<acc_t>(gn[c * pixels]);
        if (dxn != nullptr) {
          acc_t* d = dxn + c * plane_in;
          if (w00 != acc_t(0)) atomicAdd(d + t.r0, w00 * gv);
          if (w01 != acc_t(0)) atomicAdd(d + t.r0 + 1, w01 * gv);
          if (w10 != acc_t(0)) atomicAdd(d + t.r1, w10 * gv);
          if (w11 != acc_t(0)) atomicAdd(d + t.r1 + 1, w11 * gv);
        }
        if (partial != nullptr) {
          const scalar_t* plane = xn + c * plane_in;
          const acc_t v00 = static_cast<acc_t>(plane[t.r0]);
          const acc_t v10 = static_cast<acc_t>(plane[t.r1]);
          const acc_t v01 = pair ? static_cast<acc_t>(plane[t.r0 + 1]) : acc_t(0);
          const acc_t v11 = pair ? static_cast<acc_t>(plane[t.r1 + 1]) : acc_t(0);
          acc_t px_grad, py_grad;
          tm::pair_pos_grad(t, v00, v01, v10, v11, px_grad, py_grad);
          dgx += gv * px_grad;
          dgy += gv * py_grad;
        }
      }
      dgx *= sx;
      dgy *= sy;
    }
    if (partial != nullptr) {
      reduce_basis(px, py, dgx, dgy, s_target, k, s_red,
                   partial + (n * gridDim.x + blockIdx.x) * 2 * (k + 3));
    }
  }
}

dim3 launch_grid(int64_t pixels, int64_t batch) {
  const int64_t bx = (pixels + kThreads - 1) / kThreads;
  TORCH_CHECK(bx <= 0x7fffffff, "tps: output too large for the CUDA kernel");
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(std::min<int64_t>(batch, kMaxGridY)));
}

void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), op, ": expected CUDA tensors, got ", t.device());
}

// dctrl [N, K, 2] = kinv^T (sum over blocks of the partials), in a fixed order.
at::Tensor ctrl_grad_from_partials(const at::Tensor& partial, const at::Tensor& kinv,
                                   const TpsGeometry& g, at::ScalarType out_type) {
  const at::Tensor dm = partial.view({g.n, -1, g.k + 3, 2}).sum(1);  // [N, K+3, 2]
  return at::matmul(kinv.t(), dm).to(out_type);
}

at::Tensor tps_grid_cuda(const at::Tensor& ctrl, const at::Tensor& target, const at::Tensor& kinv,
                         int64_t height, int64_t width, bool align_corners) {
  const TpsGeometry g = check_tps_ctrl("tps_grid", ctrl, target, kinv, height, width);
  check_cuda("tps_grid", ctrl);
  const c10::cuda::CUDAGuard guard(ctrl.device());
  const at::Tensor cc = ctrl.contiguous(), tc = target.contiguous(), kc = kinv.contiguous();
  at::Tensor grid = at::empty({g.n, g.h, g.w, 2}, ctrl.options());
  if (g.n == 0) return grid;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ctrl.scalar_type(), "tps_grid_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_smem<acc_t>("tps_grid", g.k, false);
    tps_grid_kernel<scalar_t, acc_t><<<launch_grid(g.h * g.w, g.n), kThreads,
                                       smem_bytes<acc_t>(g.k, false), stream>>>(
        cc.const_data_ptr<scalar_t>(), tc.const_data_ptr<acc_t>(), kc.const_data_ptr<acc_t>(),
        grid.mutable_data_ptr<scalar_t>(), g.n, static_cast<int>(g.k), g.h, g.w, align_corners);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grid;
}

at::Tensor tps_grid_backward_cuda(const at::Tensor& grad, const at::Tensor& target,
                                  const at::Tensor& kinv, int64_t height, int64_t width,
                                  bool align_corners) {
  const TpsGeometry g = check_tps_grid_grad("tps_grid_backward", grad, target, kinv, height, width);
  check_cuda("tps_grid_backward", grad);
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor tc = target.contiguous(), kc = kinv.contiguous();
  const at::ScalarType acc_type = tps_acc_type(grad.scalar_type());
  if (g.n == 0) return at::empty({0, g.k, 2}, grad.options());
  const dim3 blocks = launch_grid(g.h * g.w, g.n);
  at::Tensor partial = at::empty({g.n, blocks.x, 2 * (g.k + 3)}, grad.options().dtype(acc_type));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
                                  "tps_grid_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_smem<acc_t>("tps_grid_backward", g.k, true);
    tps_grid_backward_kernel<scalar_t, acc_t><<<blocks, kThreads, smem_bytes<acc_t>(g.k, true),
                                                stream>>>(
        grad.const_data_ptr<scalar_t>(), grad.stride(0), grad.stride(1), grad.stride(2),
        grad.stride(3), tc.const_data_ptr<acc_t>(), partial.mutable_data_ptr<acc_t>(), g.n,
        static_cast<int>(g.k), g.h, g.w, align_corners);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return ctrl_grad_from_partials(partial, kc, g, grad.scalar_type());
}

at::Tensor tps_warp_cuda(const at::Tensor& x, const at::Tensor& ctrl, const at::Tensor& target,
                         const at::Tensor& kinv, int64_t height, int64_t width,
                         bool align_corners) {
  const TpsGeometry g = check_tps_ctrl("tps_warp", ctrl, target, kinv, height, width);
  check_tps_image("tps_warp", x, ctrl);
  check_cuda("tps_warp", x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), cc = ctrl.contiguous(), tc = target.contiguous(),
                   kc = kinv.contiguous();
  const int64_t c = x.size(1);
  at::Tensor out = at::empty({g.n, c, g.h, g.w}, x.options());
  if (g.n == 0 || c == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tps_warp_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_smem<acc_t>("tps_warp", g.k, false);
    tps_warp_kernel<scalar_t, acc_t><<<launch_grid(g.h * g.w, g.n), kThreads,
                                       smem_bytes<acc_t>(g.k, false), stream>>>(
        xc.const_data_ptr<scalar_t>(), cc.const_data_ptr<scalar_t>(), tc.const_data_ptr<acc_t>(),
        kc.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), g.n, c,
        static_cast<int>(g.k), x.size(2), x.size(3), g.h, g.w, align_corners);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> tps_warp_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& x, const at::Tensor& ctrl,
    const at::Tensor& target, const at::Tensor& kinv, bool align_corners, bool need_x,
    bool need_ctrl) {
  TORCH_CHECK(grad_in.dim() == 4, "tps_warp_backward: grad must be [N, C, H, W], got shape ",
              grad_in.sizes());
  const TpsGeometry g = check_tps_ctrl("tps_warp_backward", ctrl, target, kinv, grad_in.size(2),
                                       grad_in.size(3));
  check_tps_image("tps_warp_backward", x, ctrl);
  check_cuda("tps_warp_backward", x);
  const int64_t c = x.size(1);
  check_tps_grad("tps_warp_backward", grad_in, {g.n, c, g.h, g.w}, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc_type = tps_acc_type(x.scalar_type());
  // Scattered: every element must start at 0.
  at::Tensor dx_acc = need_x ? at::zeros(x.sizes(), x.options().dtype(acc_type))
                             : at::empty({0}, x.options());
  at::Tensor dctrl = at::empty({0}, ctrl.options());
  if ((!need_x && !need_ctrl) || g.n == 0) {
    if (need_ctrl) dctrl = at::empty({g.n, g.k, 2}, ctrl.options());
    return {need_x && acc_type != x.scalar_type() ? dx_acc.to(x.scalar_type()) : dx_acc, dctrl};
  }
  const at::Tensor grad = grad_in.to(x.scalar_type()).contiguous();
  const at::Tensor xc = x.contiguous(), cc = ctrl.contiguous(), tc = target.contiguous(),
                   kc = kinv.contiguous();
  const dim3 blocks = launch_grid(g.h * g.w, g.n);
  at::Tensor partial = need_ctrl ? at::empty({g.n, blocks.x, 2 * (g.k + 3)},
                                             x.options().dtype(acc_type))
                                 : at::empty({0}, x.options().dtype(acc_type));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "tps_warp_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_smem<acc_t>("tps_warp_backward", g.k, true);
    tps_warp_backward_kernel<scalar_t, acc_t><<<blocks, kThreads, smem_bytes<acc_t>(g.k, true),
                                                stream>>>(
        grad.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(),
        cc.const_data_ptr<scalar_t>(), tc.const_data_ptr<acc_t>(), kc.const_data_ptr<acc_t>(),
        need_x ? dx_acc.mutable_data_ptr<acc_t>() : nullptr,
        need_ctrl ? partial.mutable_data_ptr<acc_t>() : nullptr, g.n, c, static_cast<int>(g.k),
        x.size(2), x.size(3), g.h, g.w, align_corners);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (need_ctrl) dctrl = ctrl_grad_from_partials(partial, kc, g, ctrl.scalar_type());
  at::Tensor dx = need_x && acc_type != x.scalar_type() ? dx_acc.to(x.scalar_type()) : dx_acc;
  return {dx, dctrl};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CUDA, m) {
  m.impl("tps_grid", &tps_grid_cuda);
  m.impl("tps_grid_backward", &tps_grid_backward_cuda);
  m.impl("tps_warp", &tps_warp_cuda);
  m.impl("tps_warp_backward", &tps_warp_backward_cuda);
}

}  // namespace fastpose
