// Per-pixel and per-part math of fastpose::part_stats, written once for the
// CPU and CUDA kernels.
//
// Semantics (the published part-SSIM code): per (n, k, c), with weights
// w = m / (S + eps) and S = sum of the mask,
//   mu_x = sum w x,  var_x = sum w x^2 - mu_x^2,  cov = sum w x y - mu_x mu_y.
// Computed without the E[x^2] - E[x]^2 cancellation: every chunk of pixels
// first sums shifted data (x - x at the chunk's first pixel), is turned into
// centred moments (S, mean, M2) and the chunks are merged Chan-style in
// double. Because sum w = rho = S / (S + eps) is not exactly 1, the published
// moments are, in terms of the centred ones (a = mean under m / S, M2 = sum
// m (x - a)^2):
//   mu_x = rho a_x,  var_x = M2_xx / D + rho (1 - rho) a_x^2,
//   cov = M2_xy / D + rho (1 - rho) a_x a_y,   D = S + eps,
// which are sums of non-negative terms for the variances.
#pragma once

#include <cstdint>

#include "macros.h"

namespace fastpose {
namespace part_stats_math {

constexpr int kNumStats = 5;     // mu_x, mu_y, var_x, var_y, cov per (n, k, c)
constexpr int kNumPartials = 6;  // S, a_x, a_y, M2_xx, M2_yy, M2_xy per chunk
// Pixels per partial. Fixed (not derived from the thread count) so results are
// bitwise identical for any number of threads.
constexpr int64_t kChunk = 4096;

template <typename T>
struct Centred {
  T s;              // sum of the mask over the chunk
  T ax, ay;         // means of x and y under m / s
  T mxx, myy, mxy;  // sum m (x - ax)^2, sum m (y - ay)^2, sum m (x - ax)(y - ay)
};

// Shifted raw sums of one chunk (sdx = sum m (x - shx), sdxx = sum m (x - shx)^2,
// ...) to centred moments. M2 is clamped at 0 (rounding), and the cross term
// set to 0 where a variance is 0, so identical x and y stay identical.
template <typename T>
FASTPOSE_HD Centred<T> centre_chunk(T s, T sdx, T sdy, T sdxx, T sdyy, T sdxy, T shx, T shy) {
  Centred<T> r;
  r.s = s;
  if (!(s > T(0))) {
    r.s = T(0);
    r.ax = r.ay = r.mxx = r.myy = r.mxy = T(0);
    return r;
  }
  const T mdx = sdx / s, mdy = sdy / s;
  r.ax = shx + mdx;
  r.ay = shy + mdy;
  const T vxx = sdxx - sdx * mdx;
  const T vyy = sdyy - sdy * mdy;
  const T vxy = sdxy - sdx * mdy;
  r.mxx = vxx > T(0) ? vxx : T(0);
  r.myy = vyy > T(0) ? vyy : T(0);
  r.mxy = (vxx > T(0) && vyy > T(0)) ? vxy : T(0);
  return r;
}

// Chan et al.'s pairwise merge: a <- a (+) b.
template <typename T>
FASTPOSE_HD void merge(Centred<T>& a, const Centred<T>& b) {
  if (!(b.s > T(0))) return;
  if (!(a.s > T(0))) {
    a = b;
    return;
  }
  const T s = a.s + b.s;
  const T f = b.s / s;
  const T g = a.s * f;  // a.s b.s / s
  const T dx = b.ax - a.ax, dy = b.ay - a.ay;
  a.ax += dx * f;
  a.ay += dy * f;
  a.mxx += b.mxx + dx * dx * g;
  a.myy += b.myy + dy * dy * g;
  a.mxy += b.mxy + dx * dy * g;
  a.s = s;
}

// The published moments from the merged centred ones (see the file comment).
template <typename T>
struct Stats {
  T mx, my, vx, vy, cxy;
};

template <typename T>
FASTPOSE_HD Stats<T> finalize(const Centred<T>& c, T eps) {
  Stats<T> r;
  if (!(c.s > T(0))) {
    r.mx = r.my = r.vx = r.vy = r.cxy = T(0);
    return r;
  }
  const T d = c.s + eps;
  const T rho = c.s / d;
  const T rr = rho * (eps / d);  // rho (1 - rho) without the cancellation of 1 - rho
  r.mx = rho * c.ax;
  r.my = rho * c.ay;
  r.vx = c.mxx / d + rr * c.ax * c.ax;
  r.vy = c.myy / d + rr * c.ay * c.ay;
  r.cxy = c.mxy / d + rr * c.ax * c.ay;
  return r;
}

// Writes the kNumStats moments of one (n, k, c) in the output's order, rounded to its dtype.
template <typename T, typename Out>
FASTPOSE_HD void store_stats(const Stats<T>& r, Out* o) {
  o[0] = static_cast<Out>(r.mx);
  o[1] = static_cast<Out>(r.my);
  o[2] = static_cast<Out>(r.vx);
  o[3] = static_cast<Out>(r.vy);
  o[4] = static_cast<Out>(r.cxy);
}

// --- backward ---------------------------------------------------------------
// With e_x = x - mu_x, e_y = y - mu_y and D = S + eps, the gradients of one
// pixel are
//   dL/dx = sum_k (m_k / D_k) (g_mx + 2 g_vx e_x + g_c e_y)
//   dL/dy = sum_k (m_k / D_k) (g_my + 2 g_vy e_y + g_c e_x)
//   dL/dm_k = g_S + (1 / D_k) sum_c [g_mx e_x + g_my e_y + g_vx (e_x^2 - var_x)
//                                    + g_vy (e_y^2 - var_y) + g_c (e_x e_y - cov)]
// (w depends on m_k directly and through S). The constant parts of dL/dm_k
// are folded per (n, k) into `dm_bias`.

// Per-(n, k, c) coefficients of the pixel loops.
template <typename T>
struct Coef {
  T mx, my;     // means
  T gmx, gmy;   // upstream grads of the means
  T gvx, gvy;   // upstream grads of the variances
  T gc;         // upstream grad of the covariance
};

template <typename T>
FASTPOSE_HD Coef<T> make_coef(const T* grad5, const T* stats5) {
  Coef<T> q;
  q.mx = stats5[0];
  q.my = stats5[1];
  q.gmx = grad5[0];
  q.gmy = grad5[1];
  q.gvx = grad5[2];
  q.gvy = grad5[3];
  q.gc = grad5[4];
  return q;
}

// The pixel-independent part of sum_c [...] in dL/dm_k for one (n, k, c).
template <typename T>
FASTPOSE_HD T dm_constant(const T* grad5, const T* stats5) {
  return grad5[2] * stats5[2] + grad5[3] * stats5[3] + grad5[4] * stats5[4];
}

template <typename T>
FASTPOSE_HD T grad_x_term(const Coef<T>& q, T x, T y) {
  const T ex = x - q.mx, ey = y - q.my;
  return q.gmx + T(2) * q.gvx * ex + q.gc * ey;
}

template <typename T>
FASTPOSE_HD T grad_y_term(const Coef<T>& q, T x, T y) {
  const T ex = x - q.mx, ey = y - q.my;
  return q.gmy + T(2) * q.gvy * ey + q.gc * ex;
}

template <typename T>
FASTPOSE_HD T grad_m_term(const Coef<T>& q, T x, T y) {
  const T ex = x - q.mx, ey = y - q.my;
  return ex * (q.gmx + q.gvx * ex + q.gc * ey) + ey * (q.gmy + q.gvy * ey);
}

}  // namespace part_stats_math
}  // namespace fastpose
