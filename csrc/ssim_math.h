// Per-pixel SSIM math, written once for the CPU and CUDA kernels.
//
// Both backends call exactly these functions, so the CPU kernels that CI runs
// exercise the same formulas the GPU executes.
#pragma once

#include <cmath>

#include "macros.h"

namespace fastpose {
namespace ssim_math {

// Number of per-pixel derivative maps the forward stores for the backward:
// dS/dmu_x, dS/dmu_y, dS/dE[x^2], dS/dE[y^2], dS/dE[xy] (raw moments, so the
// backward is a blur of these maps followed by a pointwise combination).
constexpr int kNumDerivMaps = 5;

// Tap t of the normalised Gaussian window of odd length `window`, computed in
// double so every backend (and the Python reference) starts from identical
// weights. O(window) per call: taps are computed once per launch.
FASTPOSE_HD double gaussian_tap(int window, double sigma, int t) {
  const int r = window / 2;
  double sum = 0.0;
  for (int i = 0; i < window; ++i) {
    const double d = static_cast<double>(i - r);
    sum += exp(-(d * d) / (2.0 * sigma * sigma));
  }
  const double d = static_cast<double>(t - r);
  return exp(-(d * d) / (2.0 * sigma * sigma)) / sum;
}

// The central moments behind one SSIM value, with the clamps that absorb
// rounding: variances at 0 (E[x^2] - mu^2 cancels), and the covariance to 0
// where a variance is 0 (Cauchy-Schwarz), so identical windows, constant ones
// included, give exactly 1. A clamped quantity is treated as constant by the
// derivatives (g* = 0 where clamped), matching torch.clamp / torch.where in the
// reference, which pass the gradient at the boundary itself. Branch-free so
// the CPU loops vectorise.
template <typename T>
struct SsimTerms {
  T vx, vy;   // clamped variances
  T gx, gy;   // 1 where vx, vy are unclamped, else 0
  T gc;       // 1 where the covariance is kept, else 0
  T a1, a2, b1, b2;
  T raw;      // (a1 a2) / (b1 b2) before the final clamp at 1
};

template <typename T>
FASTPOSE_HD SsimTerms<T> ssim_terms(T mx, T my, T exx, T eyy, T exy, T c1, T c2) {
  SsimTerms<T> q;
  const T vx = exx - mx * mx;
  const T vy = eyy - my * my;
  q.gx = vx < T(0) ? T(0) : T(1);
  q.gy = vy < T(0) ? T(0) : T(1);
  q.vx = vx * q.gx;
  q.vy = vy * q.gy;
  q.gc = q.vx * q.vy > T(0) ? T(1) : T(0);
  // The numerators are written as b - (a non-negative difference):
  // a1 = b1 - (mx - my)^2 and 2 cov + c2 = b2 - vd with vd = Var(x - y) =
  // E[x^2] + E[y^2] - 2 E[xy] - (mx - my)^2. For identical windows dm and vd
  // are exactly 0 under any FMA contraction, so a1 == b1, a2 == b2 and the
  // value is exactly 1. Mathematically a2 = 2 (E[xy] - mx my) + c2.
  const T dm = mx - my;
  const T vd = (exx + eyy - T(2) * exy) - dm * dm;
  q.b1 = mx * mx + my * my + c1;
  q.b2 = q.vx + q.vy + c2;
  q.a1 = q.b1 - dm * dm;
  q.a2 = q.gc > T(0) ? q.b2 - vd : c2;
  q.raw = (q.a1 * q.a2) / (q.b1 * q.b2);
  return q;
}

// SSIM from the five windowed raw moments (formula (5) of the part-SSIM paper,
// population covariance), clamped at 1.
template <typename T>
FASTPOSE_HD T ssim_value(T mx, T my, T exx, T eyy, T exy, T c1, T c2) {
  const SsimTerms<T> q = ssim_terms(mx, my, exx, eyy, exy, c1, c2);
  return q.raw > T(1) ? T(1) : q.raw;
}

// SSIM and its derivatives d0..d4 with respect to the five raw moments
// (mu_x, mu_y, E[x^2], E[y^2], E[xy]). Returned by value so loops over
// pixels vectorise.
template <typename T>
struct SsimGrad {
  T s, d0, d1, d2, d3, d4;
};

template <typename T>
FASTPOSE_HD SsimGrad<T> ssim_value_and_derivs(T mx, T my, T exx, T eyy, T exy, T c1, T c2) {
  const SsimTerms<T> q = ssim_terms(mx, my, exx, eyy, exy, c1, c2);
  const T live = q.raw > T(1) ? T(0) : T(1);
  const T s = q.raw > T(1) ? T(1) : q.raw;
  const T inv_b = T(1) / (q.b1 * q.b2);
  // Partials with respect to (mu_x, mu_y, var_x, var_y, cov) holding the
  // others fixed, then the chain rule to the raw moments.
  const T ds_dmx = T(2) * my * q.a2 * inv_b - s * T(2) * mx / q.b1;
  const T ds_dmy = T(2) * mx * q.a2 * inv_b - s * T(2) * my / q.b1;
  const T ds_dcov = T(2) * q.a1 * inv_b * q.gc;
  const T ds_dvar = -s / q.b2;
  const T ds_dvx = ds_dvar * q.gx;
  const T ds_dvy = ds_dvar * q.gy;
  SsimGrad<T> r;
  r.s = s;
  r.d0 = live * (ds_dmx - T(2) * mx * ds_dvx - my * ds_dcov);
  r.d1 = live * (ds_dmy - T(2) * my * ds_dvy - mx * ds_dcov);
  r.d2 = live * ds_dvx;
  r.d3 = live * ds_dvy;
  r.d4 = live * ds_dcov;
  return r;
}

// The backward blurs g*d_k back to input space (u0..u4); this turns them into
// the gradients of one input pixel: dx = u0 + 2x u2 + y u4, dy = u1 + 2y u3 + x u4.
template <typename T>
FASTPOSE_HD T ssim_grad_x(T u0, T u2, T u4, T x, T y) {
  return u0 + T(2) * x * u2 + y * u4;
}

template <typename T>
FASTPOSE_HD T ssim_grad_y(T u1, T u3, T u4, T x, T y) {
  return u1 + T(2) * y * u3 + x * u4;
}

}  // namespace ssim_math
}  // namespace fastpose
