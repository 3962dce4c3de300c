// Per-pixel thin-plate-spline and bilinear-sampling math, written once for
// the CPU and CUDA kernels of fastpose::tps_grid and fastpose::tps_warp.
//
// Conventions (those of torch.nn.functional.affine_grid / grid_sample):
// coordinates are (x, y) = (width, height) in [-1, 1]; the output lattice and
// the source unnormalisation both follow align_corners; samples outside the
// source read 0 (padding_mode="zeros").
//
// For a fixed target layout t_0..t_{K-1}, the TPS mapping of an output pixel p
// is grid(p) = sum_j b_j(p) * coef_j with the basis
//   b(p) = [U(|p - t_0|^2), ..., U(|p - t_{K-1}|^2), 1, p_x, p_y]
// and coef = Linv[:, :K] @ ctrl ((K+3) x 2), so both the grid and its
// gradient to ctrl need only the basis, evaluated on the fly.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "macros.h"

namespace fastpose {
namespace tps_math {

// Natural log of a positive normal float by range reduction to m in
// [sqrt(1/2), sqrt(2)) and log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172,
// summed to s^9 (truncation below 1e-9 relative); about 1 ulp. The reduction
// is integer arithmetic on the bits (offsetting them by sqrt(1/2)'s makes the
// exponent of v/sqrt(1/2) fall out of a shift), with no select or branch, so
// compilers vectorise loops over it (std::log needs libmvec for that, and a
// float operation under a branch, which may trap, blocks if-conversion).
FASTPOSE_HD float log_series(float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  const uint32_t off = bits - 0x3f3504f3u;  // 0x3f3504f3 = bits of sqrt(1/2)
  const int32_t e = static_cast<int32_t>(off) >> 23;
  const uint32_t mbits = (off & 0x007fffffu) + 0x3f3504f3u;
  float m;
  memcpy(&m, &mbits, sizeof(m));
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float poly = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return 2.0f * s * poly + static_cast<float>(e) * 0.69314718056f;
}

FASTPOSE_HD float log_positive(float v) {
#if defined(__CUDA_ARCH__)
  return __logf(v);  // MUFU; abs error < 2^-21 on [0.5, 2], 3 ulp elsewhere
#else
  return log_series(v);
#endif
}

FASTPOSE_HD double log_positive(double v) { return log(v); }

// The argument of the log in U(d2): d2 itself from the smallest normal number
// up (NaN and inf propagate), else 1, whose log is exactly 0, so U(0) = 0 is
// its limit (never 0 * log(0) = NaN) and denormals stay out of log_series'
// range reduction. The float version selects with integer masks: branch-free,
// so loops over rbf vectorise (see log_series).
FASTPOSE_HD float log_arg(float d2) {
  uint32_t bits;
  memcpy(&bits, &d2, sizeof(bits));
  const uint32_t keep = 0u - static_cast<uint32_t>(bits >= 0x00800000u);  // valid for d2 >= 0
  const uint32_t out = (bits & keep) | (0x3f800000u & ~keep);
  float r;
  memcpy(&r, &out, sizeof(r));
  return r;
}

FASTPOSE_HD double log_arg(double d2) { return d2 < 2.2250738585072014e-308 ? 1.0 : d2; }

// Radial basis U(r) = r^2 log r written on d2 = r^2: 0.5 * d2 * log(d2), 0 at d2 = 0.
template <typename T>
FASTPOSE_HD T rbf(T d2) {
  return T(0.5) * d2 * log_positive(log_arg(d2));
}

// Normalised coordinate of output pixel i of an axis of `size` pixels, as
// affine_grid lays out its base grid: pixel centres for align_corners=false,
// corner pixels at -1/+1 otherwise; 0 for a single pixel.
template <typename T>
FASTPOSE_HD T lattice(int64_t i, int64_t size, bool align_corners) {
  if (size <= 1) return T(0);
  return align_corners ? T(-1) + T(2) * static_cast<T>(i) / static_cast<T>(size - 1)
                       : (T(2) * static_cast<T>(i) + T(1)) / static_cast<T>(size) - T(1);
}

// d(unnormalised)/d(normalised) along an axis of `size` source pixels.
template <typename T>
FASTPOSE_HD T unnormalize_scale(int64_t size, bool align_corners) {
  return align_corners ? T(0.5) * static_cast<T>(size - 1) : T(0.5) * static_cast<T>(size);
}

// One source axis: grid_sample's unnormalisation, (g + 1) / 2 * (size - 1) for
// align_corners and ((g + 1) * size - 1) / 2 otherwise, as the multiply-add
// (g + 1) * scale + shift. Built once per launch, so the per-pixel code has no
// branch on align_corners.
template <typename T>
struct Axis {
  T scale, shift;  // unnormalised = (g + 1) * scale + shift
  T hi;            // size + 1: positions beyond [-2, hi] read only padding
  int32_t size;
};

template <typename T>
FASTPOSE_HD Axis<T> make_axis(int64_t size, bool align_corners) {
  Axis<T> a;
  a.scale = unnormalize_scale<T>(size, align_corners);
  a.shift = align_corners ? T(0) : T(-0.5);
  a.hi = static_cast<T>(size + 1);
  a.size = static_cast<int32_t>(size);
  return a;
}

template <typename T>
FASTPOSE_HD T unnormalize(T g, const Axis<T>& a) {
  return (g + T(1)) * a.scale + a.shift;
}

// Clamp an unnormalised coordinate to [-2, size + 1] (NaN to -2): beyond that
// every tap reads padding either way, and the float-to-int conversion cannot
// overflow.
template <typename T>
FASTPOSE_HD T park(T v, T hi) {
  v = v >= T(-2) ? v : T(-2);
  return v <= hi ? v : hi;
}

// The four bilinear taps of one sample position with zero padding, grouped as
// two row pairs: the two columns x0, x0+1 of a sample are adjacent in memory, so each row is read (and, in the backward,
// updated) as one pair starting at column bx = clamp(x0, 0, max(W-2, 0)), and
// the rows y0, y0+1 are clamped into the plane. Taps outside the plane get
// weight 0 in whichever slot their clamped column lands, so
//   value = b0 (a0 x[r0] + a1 x[r0+1]) + b1 (a0 x[r1] + a1 x[r1+1])
// needs no masks, and every pair lies inside one row of the plane (when
// W >= 2; a one-column plane has a1 = 0 and its second slot must not be read).
// A CPU gather then fetches two taps per 64-bit element, half the lanes of four
// separate taps. Written with integer selects only, so loops over it vectorise.
// Offsets are int32 (callers check that a plane has fewer than 2^31 elements).
template <typename T>
struct PairTaps {
  int32_t r0, r1;  // plane offsets of the pairs' first elements in rows y0 and y0+1
  T a0, a1;        // weights of the pair's two columns (0 for columns outside the plane)
  T da0, da1;      // their derivatives to the unnormalised x position
  T b0, b1;        // weights of the two rows (0 for rows outside the plane)
  T db0, db1;      // their derivatives to the unnormalised y position
};

// floor(v) as an integer for |v| < 2^31: truncation, minus one where it rounded up.
// Exact, and unlike floor() it vectorises without -fno-trapping-math.
template <typename T>
FASTPOSE_HD int32_t floor_int(T v) {
  const int32_t t = static_cast<int32_t>(v);
  return t - static_cast<int32_t>(static_cast<T>(t) > v);
}

template <typename T>
FASTPOSE_HD PairTaps<T> pair_taps(T gx, T gy, const Axis<T>& ax, const Axis<T>& ay) {
  const T ix = park(unnormalize(gx, ax), ax.hi);
  const T iy = park(unnormalize(gy, ay), ay.hi);
  const int32_t x0 = floor_int(ix), y0 = floor_int(iy);
  const T fx = ix - static_cast<T>(x0), fy = iy - static_cast<T>(y0);
  const T vx0 = static_cast<T>((x0 >= 0) & (x0 < ax.size));
  const T vx1 = static_cast<T>((x0 >= -1) & (x0 + 1 < ax.size));
  const T vy0 = static_cast<T>((y0 >= 0) & (y0 < ay.size));
  const T vy1 = static_cast<T>((y0 >= -1) & (y0 + 1 < ay.size));
  // Pair start column and the slot of tap x0 in it (tap x0+1 sits one slot right).
  const int32_t last = ax.size >= 2 ? ax.size - 2 : 0;
  const int32_t bx = x0 < 0 ? 0 : (x0 > last ? last : x0);
  const int32_t e = x0 - bx;
  const T s0 = static_cast<T>(e == 0), sm = static_cast<T>(e == -1), sp = static_cast<T>(e == 1);
  const T t0 = (T(1) - fx) * vx0, t1 = fx * vx1;  // tap weights of columns x0, x0+1
  PairTaps<T> p;
  p.a0 = s0 * t0 + sm * t1;
  p.a1 = sp * t0 + s0 * t1;
  p.da0 = sm * vx1 - s0 * vx0;
  p.da1 = s0 * vx1 - sp * vx0;
  p.b0 = (T(1) - fy) * vy0;
  p.b1 = fy * vy1;
  p.db0 = -vy0;
  p.db1 = vy1;
  const int32_t ylast = ay.size - 1;
  const int32_t ry0 = y0 < 0 ? 0 : (y0 > ylast ? ylast : y0);
  const int32_t ry1 = y0 + 1 < 0 ? 0 : (y0 + 1 > ylast ? ylast : y0 + 1);
  p.r0 = ry0 * ax.size + bx;
  p.r1 = ry1 * ax.size + bx;
  return p;
}

// One bilinear sample from the two row pairs' values (v*0 at column bx, v*1 at bx+1).
template <typename T>
FASTPOSE_HD T pair_sample(const PairTaps<T>& t, T v00, T v01, T v10, T v11) {
  return t.b0 * (t.a0 * v00 + t.a1 * v01) + t.b1 * (t.a0 * v10 + t.a1 * v11);
}

// Its derivatives to the unnormalised source position.
template <typename T>
FASTPOSE_HD void pair_pos_grad(const PairTaps<T>& t, T v00, T v01, T v10, T v11, T& dx, T& dy) {
  dx = t.b0 * (t.da0 * v00 + t.da1 * v01) + t.b1 * (t.da0 * v10 + t.da1 * v11);
  dy = t.db0 * (t.a0 * v00 + t.a1 * v01) + t.db1 * (t.a0 * v10 + t.a1 * v11);
}

// TPS mapping of one normalised output position: coef is [(K+3) x 2]
// row-major (K radial rows, then the affine rows 1, x, y), target [K x 2].
template <typename T>
struct Point {
  T x, y;
};

template <typename T>
FASTPOSE_HD Point<T> tps_map(T px, T py, const T* target, const T* coef, int64_t k) {
  Point<T> g;
  g.x = coef[2 * k] + coef[2 * k + 2] * px + coef[2 * k + 4] * py;
  g.y = coef[2 * k + 1] + coef[2 * k + 3] * px + coef[2 * k + 5] * py;
  for (int64_t j = 0; j < k; ++j) {
    const T dx = px - target[2 * j], dy = py - target[2 * j + 1];
    const T u = rbf(dx * dx + dy * dy);
    g.x += u * coef[2 * j];
    g.y += u * coef[2 * j + 1];
  }
  return g;
}

}  // namespace tps_math
}  // namespace fastpose
