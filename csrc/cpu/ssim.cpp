// CPU kernels of fastpose::ssim and fastpose::ssim_backward.
//
// Forward: one separable pass over the five products (x, y, x^2, y^2, xy) of
// each plane, then the SSIM formula and, for training, the five per-pixel
// derivative maps. Backward: the adjoint of the Gaussian blur is the same
// blur with complementary padding, so it is one separable pass over
// grad * dmaps followed by a pointwise combination with x and y.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../ssim_common.h"
#include "../ssim_math.h"
#include "separable.h"

namespace fastpose {
namespace {

using cpu::SeparableCorrelation;
namespace sm = ssim_math;

template <typename acc_t>
std::vector<acc_t> taps_as(int64_t window, double sigma) {
  std::vector<acc_t> taps(window);
  for (int64_t t = 0; t < window; ++t)
    taps[t] = static_cast<acc_t>(sm::gaussian_tap(static_cast<int>(window), sigma, static_cast<int>(t)));
  return taps;
}

void check_cpu_window(int64_t window) {
  TORCH_CHECK(window <= cpu::kMaxSeparableTaps, "ssim: window ", window,
              " exceeds the CPU kernel's limit of ", cpu::kMaxSeparableTaps);
}

std::tuple<at::Tensor, at::Tensor> ssim_cpu(const at::Tensor& x, const at::Tensor& y,
                                            int64_t window, double sigma, double c1, double c2,
                                            bool same_padding, bool need_grad) {
  const SsimGeometry g = check_ssim_inputs(x, y, window, sigma, same_padding);
  check_cpu_window(window);
  TORCH_CHECK(x.device().is_cpu(), "ssim: expected CPU tensors, got ", x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  at::Tensor map = at::empty({g.n, g.c, g.ho, g.wo}, x.options());
  at::Tensor dmaps = need_grad ? at::empty({g.n, g.c, sm::kNumDerivMaps, g.ho, g.wo},
                                           x.options().dtype(ssim_acc_type(x.scalar_type())))
                               : at::empty({0}, x.options().dtype(ssim_acc_type(x.scalar_type())));
  const int64_t planes = g.n * g.c;
  if (planes == 0 || g.ho == 0 || g.wo == 0) return {map, dmaps};
  const int64_t chunks = cpu::row_chunks_per_plane(planes, g.ho, at::get_num_threads(), window);
  const int64_t rows_per_chunk = (g.ho + chunks - 1) / chunks;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ssim_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const std::vector<acc_t> taps = taps_as<acc_t>(window, sigma);
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* yp = yc.const_data_ptr<scalar_t>();
    scalar_t* mp = map.mutable_data_ptr<scalar_t>();
    acc_t* dp = need_grad ? dmaps.mutable_data_ptr<acc_t>() : nullptr;
    const acc_t k1 = static_cast<acc_t>(c1), k2 = static_cast<acc_t>(c2);
    cpu::dispatch_window(window, [&](auto wc) {
      constexpr int W = decltype(wc)::value;
      using Corr = SeparableCorrelation<acc_t, 5, W>;
      constexpr int64_t B = Corr::B;
      at::parallel_for(0, planes * chunks, 1, [&](int64_t begin, int64_t end) {
        Corr corr(taps.data(), static_cast<int>(window), g.h, g.w, g.pad);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t p = task / chunks;
          const int64_t r0 = (task % chunks) * rows_per_chunk;
          const int64_t r1 = std::min(g.ho, r0 + rows_per_chunk);
          if (r0 >= r1) continue;
          const scalar_t* xplane = xp + p * g.h * g.w;
          const scalar_t* yplane = yp + p * g.h * g.w;
          scalar_t* mplane = mp + p * g.ho * g.wo;
          acc_t* dplane = need_grad ? dp + p * sm::kNumDerivMaps * g.ho * g.wo : nullptr;
          corr.run(
              r0, r1,
              [&](int64_t s, acc_t* const* dst) {
                const scalar_t* xr = xplane + s * g.w;
                const scalar_t* yr = yplane + s * g.w;
                acc_t* __restrict__ d0 = dst[0];
                acc_t* __restrict__ d1 = dst[1];
                acc_t* __restrict__ d2 = dst[2];
                acc_t* __restrict__ d3 = dst[3];
                acc_t* __restrict__ d4 = dst[4];
                _Pragma("omp simd")
                for (int64_t j = 0; j < g.w; ++j) {
                  const acc_t a = static_cast<acc_t>(xr[j]);
                  const acc_t b = static_cast<acc_t>(yr[j]);
                  d0[j] = a;
                  d1[j] = b;
                  d2[j] = a * a;
                  d3[j] = b * b;
                  d4[j] = a * b;
                }
              },
              [&](int64_t i, int64_t j0, const acc_t (*v)[B]) {
                const int64_t n = std::min(B, g.wo - j0);
                scalar_t* mrow = mplane + i * g.wo + j0;
                alignas(64) acc_t out[B];
                if (dplane == nullptr) {
                _Pragma("omp simd")
                  for (int64_t k = 0; k < B; ++k)
                    out[k] = sm::ssim_value(v[0][k], v[1][k], v[2][k], v[3][k], v[4][k], k1, k2);
                  for (int64_t k = 0; k < n; ++k) mrow[k] = static_cast<scalar_t>(out[k]);
                  return;
                }
                alignas(64) acc_t d[sm::kNumDerivMaps][B];
                _Pragma("omp simd")
                for (int64_t k = 0; k < B; ++k) {
                  const sm::SsimGrad<acc_t> r = sm::ssim_value_and_derivs(
                      v[0][k], v[1][k], v[2][k], v[3][k], v[4][k], k1, k2);
                  out[k] = r.s;
                  d[0][k] = r.d0;
                  d[1][k] = r.d1;
                  d[2][k] = r.d2;
                  d[3][k] = r.d3;
                  d[4][k] = r.d4;
                }
                for (int64_t k = 0; k < n; ++k) mrow[k] = static_cast<scalar_t>(out[k]);
                for (int m = 0; m < sm::kNumDerivMaps; ++m) {
                  acc_t* drow = dplane + (m * g.ho + i) * g.wo + j0;
                  for (int64_t k = 0; k < n; ++k) drow[k] = d[m][k];
                }
              });
        }
      });
    });
  });
  return {map, dmaps};
}

std::tuple<at::Tensor, at::Tensor> ssim_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x,
                                                     const at::Tensor& y, const at::Tensor& dmaps,
                                                     int64_t window, double sigma,
                                                     bool same_padding) {
  const SsimGeometry g = check_ssim_inputs(x, y, window, sigma, same_padding);
  check_cpu_window(window);
  check_ssim_backward_inputs(grad_in, x, dmaps, g);
  // The upstream gradient is read through its strides: a mean reduction hands
  // us an expanded scalar, which must not be materialised.
  const at::Tensor grad = grad_in.scalar_type() == x.scalar_type() ? grad_in
                                                                   : grad_in.to(x.scalar_type());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const at::Tensor dc = dmaps.contiguous();
  at::Tensor dx = at::empty_like(xc);
  at::Tensor dy = at::empty_like(yc);
  const int64_t planes = g.n * g.c;
  if (planes == 0 || g.h == 0 || g.w == 0) return {dx, dy};
  const int64_t bpad = window - 1 - g.pad;  // padding of the adjoint correlation
  const int64_t chunks = cpu::row_chunks_per_plane(planes, g.h, at::get_num_threads(), window);
  const int64_t rows_per_chunk = (g.h + chunks - 1) / chunks;
  const int64_t gs0 = grad.stride(0), gs1 = grad.stride(1), gs2 = grad.stride(2),
                gs3 = grad.stride(3);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ssim_backward_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const std::vector<acc_t> taps = taps_as<acc_t>(window, sigma);
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* yp = yc.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const acc_t* dp = dc.const_data_ptr<acc_t>();
    scalar_t* dxp = dx.mutable_data_ptr<scalar_t>();
    scalar_t* dyp = dy.mutable_data_ptr<scalar_t>();
    cpu::dispatch_window(window, [&](auto wc) {
      constexpr int W = decltype(wc)::value;
      using Corr = SeparableCorrelation<acc_t, 5, W>;
      constexpr int64_t B = Corr::B;
      at::parallel_for(0, planes * chunks, 1, [&](int64_t begin, int64_t end) {
        Corr corr(taps.data(), static_cast<int>(window), g.ho, g.wo, bpad);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t p = task / chunks;
          const int64_t n = p / g.c, c = p % g.c;
          const int64_t r0 = (task % chunks) * rows_per_chunk;
          const int64_t r1 = std::min(g.h, r0 + rows_per_chunk);
          if (r0 >= r1) continue;
          const scalar_t* gplane = gp + n * gs0 + c * gs1;
          const acc_t* dplane = dp + p * sm::kNumDerivMaps * g.ho * g.wo;
          const int64_t off = p * g.h * g.w;
          corr.run(
              r0, r1,
              [&](int64_t s, acc_t* const* dst) {
                const scalar_t* grow = gplane + s * gs2;
                for (int m = 0; m < sm::kNumDerivMaps; ++m) {
                  const acc_t* drow = dplane + (m * g.ho + s) * g.wo;
                  acc_t* o = dst[m];
                  if (gs3 == 0) {
                    const acc_t gv = static_cast<acc_t>(grow[0]);
                    _Pragma("omp simd")
                    for (int64_t j = 0; j < g.wo; ++j) o[j] = gv * drow[j];
                  } else if (gs3 == 1) {
                    _Pragma("omp simd")
                    for (int64_t j = 0; j < g.wo; ++j) o[j] = static_cast<acc_t>(grow[j]) * drow[j];
                  } else {
                    for (int64_t j = 0; j < g.wo; ++j)
                      o[j] = static_cast<acc_t>(grow[j * gs3]) * drow[j];
                  }
                }
              },
              [&](int64_t i, int64_t j0, const acc_t (*u)[B]) {
                const int64_t cnt = std::min(B, g.w - j0);
                const scalar_t* xr = xp + off + i * g.w + j0;
                const scalar_t* yr = yp + off + i * g.w + j0;
                scalar_t* dxr = dxp + off + i * g.w + j0;
                scalar_t* dyr = dyp + off + i * g.w + j0;
                _Pragma("omp simd")
                for (int64_t k = 0; k < cnt; ++k) {
                  const acc_t a = static_cast<acc_t>(xr[k]);
                  const acc_t b = static_cast<acc_t>(yr[k]);
                  dxr[k] = static_cast<scalar_t>(sm::ssim_grad_x(u[0][k], u[2][k], u[4][k], a, b));
                  dyr[k] = static_cast<scalar_t>(sm::ssim_grad_y(u[1][k], u[3][k], u[4][k], a, b));
                }
              });
        }
      });
    });
  });
  return {dx, dy};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CPU, m) {
  m.impl("ssim", &ssim_cpu);
  m.impl("ssim_backward", &ssim_backward_cpu);
}

}  // namespace fastpose
