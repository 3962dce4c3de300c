// CPU kernels of fastpose::tps_grid, tps_warp and their backwards.
//
// The TPS mapping is linear in the control points: grid(p) = b(p)^T coef with
// coef = kinv @ ctrl ((K+3) x 2, computed once per sample) and the basis b(p)
// (K radial terms U(|p - t_j|^2) and 1, p_x, p_y). The basis of a block of
// output pixels is evaluated on the fly and shared by every sample (the
// output lattice and the target layout are the same for the whole batch), so
// there is no [N, HW, K] tensor and the logs cost K per pixel, not per pixel
// and sample. Loops run over pixels, the vectorised dimension (tps_math::rbf
// uses a branch-free float log so they vectorise).
//
// Warp forward: the grid of every (sample, pixel) from the shared basis, then
// per (sample, pixel chunk) the bilinear taps once, as two row pairs
// (tps_math::pair_taps, a vectorised loop), and a gather pass per channel (one
// input plane in cache, one contiguous output run) that reads each row pair as
// one 64-bit element. Warp backward: (A) the grid; (B) per (sample, channel
// chunk) the scatter into dx, one 64-bit read-modify-write per row pair (each
// task owns its dx planes: no races, no atomics), and the position gradient
// summed over its channels in groups held in registers; (C) per (pixel block,
// sample) the basis-weighted sum of the position gradient, then a fixed-order
// sum over blocks and dctrl = kinv^T dM. Block, chunk and group sizes are
// constants, so results do not depend on the thread count.
//
// Feature maps (>= 16 channels, input rows of >= 2 pixels) take the channel-vector
// path instead of the gather and scatter passes of (forward) and (B): per (sample,
// V x 16 channels, V = 1, 2 or 4 by shape) the input pixel-major (lanes.h), so a row
// pair is V contiguous 16-channel loads, the dx update V 16-wide adds into the task's
// own buffer, and the position gradient a dot product over the task's channels (its V
// vectors added, then a lane sum over 16 pixels at a time by a shuffle tree). The grid
// and (C) are shared with the planar path; the path and V are chosen by shape alone,
// so the thread count still changes nothing.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "../tps_common.h"
#include "../tps_math.h"
#include "lanes.h"

namespace fastpose {
namespace {

namespace tm = tps_math;

constexpr int64_t kBlock = 256;         // output pixels per vectorised block
constexpr int64_t kChannelChunk = 16;   // channels per task of the warp backward
constexpr int64_t kGatherChunk = 2048;  // output pixels whose taps one forward gather pass reuses

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// An uninitialised heap array for buffers that are written in full before they are read
// (std::vector would zero them first: megabytes per call for the grid of an image batch, in
// the calling thread while the others wait).
template <typename T>
std::unique_ptr<T[]> uninit_array(int64_t count) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(count)]);
}

// coef[n] = kinv @ ctrl[n], [N, K+3, 2] in acc_t, in a fixed order.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> tps_coefficients(const scalar_t* ctrl, const acc_t* kinv, int64_t n,
                                    int64_t k) {
  std::vector<acc_t> coef(static_cast<size_t>(n * (k + 3) * 2));
  for (int64_t b = 0; b < n; ++b) {
    const scalar_t* c = ctrl + b * k * 2;
    acc_t* out = coef.data() + b * (k + 3) * 2;
    for (int64_t r = 0; r < k + 3; ++r) {
      acc_t sx = 0, sy = 0;
      for (int64_t j = 0; j < k; ++j) {
        const acc_t a = kinv[r * k + j];
        sx += a * static_cast<acc_t>(c[2 * j]);
        sy += a * static_cast<acc_t>(c[2 * j + 1]);
      }
      out[2 * r] = sx;
      out[2 * r + 1] = sy;
    }
  }
  return coef;
}

// The TPS basis of a block of output pixels: lattice positions and the K
// radial terms U(|p - t_j|^2), computed once and shared by every sample of the
// batch (the lattice and the layout are the same for all), so the logs cost
// K per pixel rather than K per pixel and sample. Loops run over pixels, the
// vectorised dimension (tps_math::rbf is branch-free).
template <typename acc_t>
struct BasisBlock {
  alignas(64) acc_t px[kBlock], py[kBlock];
  std::vector<acc_t> radial;  // [K][kBlock]
  int64_t p0 = 0, cnt = 0, k;

  explicit BasisBlock(int64_t k_) : radial(static_cast<size_t>(k_ * kBlock)), k(k_) {}

  // Pixels whose grid sums grid() keeps in registers across the K terms (four vectors),
  // instead of loading and storing the whole block's sums once per term.
  static constexpr int64_t kStrip = 4 * 64 / static_cast<int64_t>(sizeof(acc_t));
  static_assert(kBlock % kStrip == 0, "strips tile the block");

  void compute(int64_t first, int64_t count, int64_t h, int64_t w, bool ac, const acc_t* target) {
    p0 = first;
    cnt = count;
    // The last strip's pixels past the block's end get position 0: finite values that
    // grid() computes and never stores.
    const int64_t padded = ceil_div(cnt, kStrip) * kStrip;
    for (int64_t q = 0; q < padded; ++q) {
      const int64_t p = p0 + q;
      px[q] = q < cnt ? tm::lattice<acc_t>(p % w, w, ac) : acc_t(0);
      py[q] = q < cnt ? tm::lattice<acc_t>(p / w, h, ac) : acc_t(0);
    }
    for (int64_t j = 0; j < k; ++j) {
      const acc_t tx = target[2 * j], ty = target[2 * j + 1];
      acc_t* __restrict__ u = radial.data() + j * kBlock;
      _Pragma("omp simd")
      for (int64_t q = 0; q < padded; ++q) {
        const acc_t dx = px[q] - tx, dy = py[q] - ty;
        u[q] = tm::rbf(dx * dx + dy * dy);
      }
    }
  }

  // grid = b^T coef for one sample, in tps_math::tps_map's term order (affine first).
  void grid(const acc_t* coef, acc_t* __restrict__ gx, acc_t* __restrict__ gy) const {
    const acc_t* aff = coef + 2 * k;
    for (int64_t q0 = 0; q0 < cnt; q0 += kStrip) {
      acc_t sx[kStrip], sy[kStrip];
      _Pragma("omp simd")
      for (int64_t q = 0; q < kStrip; ++q) {
        sx[q] = aff[0] + aff[2] * px[q0 + q] + aff[4] * py[q0 + q];
        sy[q] = aff[1] + aff[3] * px[q0 + q] + aff[5] * py[q0 + q];
      }
      for (int64_t j = 0; j < k; ++j) {
        const acc_t wx = coef[2 * j], wy = coef[2 * j + 1];
        const acc_t* u = radial.data() + j * kBlock + q0;
        _Pragma("omp simd")
        for (int64_t q = 0; q < kStrip; ++q) {
          sx[q] += u[q] * wx;
          sy[q] += u[q] * wy;
        }
      }
      const int64_t len = std::min(kStrip, cnt - q0);
      for (int64_t q = 0; q < len; ++q) {
        gx[q0 + q] = sx[q];
        gy[q0 + q] = sy[q];
      }
    }
  }

  // out[(K+3) x 2] = sum over the block of b(p) dg(p)^T for one sample.
  void reduce(const acc_t* dgx, const acc_t* dgy, acc_t* out) const {
    for (int64_t j = 0; j < k; ++j) {
      const acc_t* u = radial.data() + j * kBlock;
      acc_t sx = 0, sy = 0;
      _Pragma("omp simd reduction(+ : sx, sy)")
      for (int64_t q = 0; q < cnt; ++q) {
        sx += u[q] * dgx[q];
        sy += u[q] * dgy[q];
      }
      out[2 * j] = sx;
      out[2 * j + 1] = sy;
    }
    acc_t s1x = 0, s1y = 0, sxx = 0, sxy = 0, syx = 0, syy = 0;
    _Pragma("omp simd reduction(+ : s1x, s1y, sxx, sxy, syx, syy)")
    for (int64_t q = 0; q < cnt; ++q) {
      s1x += dgx[q];
      s1y += dgy[q];
      sxx += px[q] * dgx[q];
      sxy += px[q] * dgy[q];
      syx += py[q] * dgx[q];
      syy += py[q] * dgy[q];
    }
    out[2 * k] = s1x;
    out[2 * k + 1] = s1y;
    out[2 * k + 2] = sxx;
    out[2 * k + 3] = sxy;
    out[2 * k + 4] = syx;
    out[2 * k + 5] = syy;
  }
};

// Per-task buffers of the callbacks below (heap-allocated once per task range).
template <typename acc_t>
struct GridScratch {
  alignas(64) acc_t gx[kBlock], gy[kBlock];
};

// Runs fn(basis, scratch, blk, n) for every (pixel block, sample), in parallel
// over (block, group of samples): each task computes its block's basis once for
// its group. Groups exist only so small images still spread over the threads;
// no result depends on the grouping.
template <typename acc_t, typename Scratch, typename Fn>
void for_each_block_and_sample(const TpsGeometry& g, bool ac, const acc_t* target, const Fn& fn) {
  const int64_t pixels = g.h * g.w, blocks = ceil_div(pixels, kBlock);
  const int64_t want = 4 * static_cast<int64_t>(at::get_num_threads());
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(g.n, ceil_div(want, blocks)));
  const int64_t per_group = ceil_div(g.n, groups);
  at::parallel_for(0, blocks * groups, 1, [&](int64_t begin, int64_t end) {
    BasisBlock<acc_t> basis(g.k);
    auto scratch = std::make_unique<Scratch>();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t blk = task / groups, grp = task % groups;
      const int64_t n0 = grp * per_group, n1 = std::min(g.n, n0 + per_group);
      if (n0 >= n1) continue;
      const int64_t p0 = blk * kBlock;
      basis.compute(p0, std::min(kBlock, pixels - p0), g.h, g.w, ac, target);
      for (int64_t n = n0; n < n1; ++n) fn(basis, *scratch, blk, n);
    }
  });
}

// dctrl from the position gradient of every output pixel. load(n, p0, cnt, dgx, dgy) fills
// the gradient of pixels [p0, p0 + cnt) of sample n. One partial per (block, sample), summed
// over blocks in order: the result does not depend on the thread count.
template <typename scalar_t, typename acc_t, typename Load>
void ctrl_grad_from_grid_grad(const acc_t* target, const acc_t* kinv, const TpsGeometry& g,
                              bool ac, scalar_t* dctrl, const Load& load) {
  const int64_t blocks = ceil_div(g.h * g.w, kBlock);
  const int64_t m = (g.k + 3) * 2;
  const std::unique_ptr<acc_t[]> partial = uninit_array<acc_t>(blocks * g.n * m);
  for_each_block_and_sample<acc_t, GridScratch<acc_t>>(
      g, ac, target,
      [&](const BasisBlock<acc_t>& b, GridScratch<acc_t>& sc, int64_t blk, int64_t n) {
        load(n, b.p0, b.cnt, sc.gx, sc.gy);
        b.reduce(sc.gx, sc.gy, partial.get() + (blk * g.n + n) * m);
      });
  std::vector<acc_t> dm(static_cast<size_t>(m));
  for (int64_t n = 0; n < g.n; ++n) {
    std::fill(dm.begin(), dm.end(), acc_t(0));
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const acc_t* part = partial.get() + (blk * g.n + n) * m;
      for (int64_t i = 0; i < m; ++i) dm[i] += part[i];
    }
    // grid = b^T kinv ctrl, so dctrl = kinv^T (sum_p b dg^T).
    for (int64_t i = 0; i < g.k; ++i) {
      acc_t sx = 0, sy = 0;
      for (int64_t r = 0; r < g.k + 3; ++r) {
        const acc_t a = kinv[r * g.k + i];
        sx += a * dm[2 * r];
        sy += a * dm[2 * r + 1];
      }
      dctrl[(n * g.k + i) * 2] = static_cast<scalar_t>(sx);
      dctrl[(n * g.k + i) * 2 + 1] = static_cast<scalar_t>(sy);
    }
  }
}

void check_cpu(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), op, ": expected CPU tensors, got ", t.device());
}

// --- tps_grid -------------------------------------------------------------------------------

at::Tensor tps_grid_cpu(const at::Tensor& ctrl, const at::Tensor& target, const at::Tensor& kinv,
                        int64_t height, int64_t width, bool align_corners) {
  const TpsGeometry g = check_tps_ctrl("tps_grid", ctrl, target, kinv, height, width);
  check_cpu("tps_grid", ctrl);
  const at::Tensor cc = ctrl.contiguous(), tc = target.contiguous(), kc = kinv.contiguous();
  at::Tensor grid = at::empty({g.n, g.h, g.w, 2}, ctrl.options());
  const int64_t pixels = g.h * g.w;
  if (g.n == 0) return grid;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ctrl.scalar_type(), "tps_grid_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* tp = tc.const_data_ptr<acc_t>();
    const std::vector<acc_t> coef =
        tps_coefficients(cc.const_data_ptr<scalar_t>(), kc.const_data_ptr<acc_t>(), g.n, g.k);
    scalar_t* out = grid.mutable_data_ptr<scalar_t>();
    for_each_block_and_sample<acc_t, GridScratch<acc_t>>(
        g, align_corners, tp,
        [&](const BasisBlock<acc_t>& b, GridScratch<acc_t>& sc, int64_t, int64_t n) {
          b.grid(coef.data() + n * (g.k + 3) * 2, sc.gx, sc.gy);
          scalar_t* o = out + (n * pixels + b.p0) * 2;
          for (int64_t q = 0; q < b.cnt; ++q) {
            o[2 * q] = static_cast<scalar_t>(sc.gx[q]);
            o[2 * q + 1] = static_cast<scalar_t>(sc.gy[q]);
          }
        });
  });
  return grid;
}

at::Tensor tps_grid_backward_cpu(const at::Tensor& grad_in, const at::Tensor& target,
                                 const at::Tensor& kinv, int64_t height, int64_t width,
                                 bool align_corners) {
  const TpsGeometry g =
      check_tps_grid_grad("tps_grid_backward", grad_in, target, kinv, height, width);
  check_cpu("tps_grid_backward", grad_in);
  const at::Tensor tc = target.contiguous(), kc = kinv.contiguous();
  at::Tensor dctrl = at::empty({g.n, g.k, 2}, grad_in.options());
  if (g.n == 0) return dctrl;
  const int64_t s0 = grad_in.stride(0), s1 = grad_in.stride(1), s2 = grad_in.stride(2),
                s3 = grad_in.stride(3);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_in.scalar_type(),
                                  "tps_grid_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad_in.const_data_ptr<scalar_t>();
    ctrl_grad_from_grid_grad<scalar_t, acc_t>(
        tc.const_data_ptr<acc_t>(), kc.const_data_ptr<acc_t>(), g, align_corners,
        dctrl.mutable_data_ptr<scalar_t>(),
        [&](int64_t n, int64_t p0, int64_t cnt, acc_t* dgx, acc_t* dgy) {
          for (int64_t q = 0; q < cnt; ++q) {
            const int64_t p = p0 + q;
            const scalar_t* e = gp + n * s0 + (p / g.w) * s1 + (p % g.w) * s2;
            dgx[q] = static_cast<acc_t>(e[0]);
            dgy[q] = static_cast<acc_t>(e[s3]);
          }
        });
  });
  return dctrl;
}

// --- tps_warp -------------------------------------------------------------------------------

// The bilinear taps (tps_math::pair_taps) of a chunk of output pixels, shared by every
// channel. Rows are padded by one cache line: rows a power of two apart map to the same
// L1 sets, and the store streams of fill() then thrash them.
template <typename acc_t, int64_t kCap = kGatherChunk>
struct PairBlock {
  static constexpr int64_t kRow = kCap + 64 / sizeof(acc_t);
  alignas(64) int32_t r[2][kCap + 16];  // plane offsets of the row pairs
  alignas(64) acc_t a[2][kRow];         // column weights
  alignas(64) acc_t da[2][kRow];        // their x derivatives
  alignas(64) acc_t b[2][kRow];         // row weights
  alignas(64) acc_t db[2][kRow];        // their y derivatives

  void fill(const acc_t* __restrict__ gx, const acc_t* __restrict__ gy, int64_t cnt,
            const tm::Axis<acc_t>& ax_in, const tm::Axis<acc_t>& ay_in) {
    // Local copies: a load of the whole struct inside the loop blocks vectorisation.
    const tm::Axis<acc_t> ax = ax_in, ay = ay_in;
    _Pragma("omp simd")
    for (int64_t q = 0; q < cnt; ++q) {
      const tm::PairTaps<acc_t> t = tm::pair_taps(gx[q], gy[q], ax, ay);
      r[0][q] = t.r0, r[1][q] = t.r1;
      a[0][q] = t.a0, a[1][q] = t.a1, da[0][q] = t.da0, da[1][q] = t.da1;
      b[0][q] = t.b0, b[1][q] = t.b1, db[0][q] = t.db0, db[1][q] = t.db1;
    }
  }

  tm::PairTaps<acc_t> at(int64_t q) const {
    tm::PairTaps<acc_t> t;
    t.r0 = r[0][q], t.r1 = r[1][q];
    t.a0 = a[0][q], t.a1 = a[1][q], t.da0 = da[0][q], t.da1 = da[1][q];
    t.b0 = b[0][q], t.b1 = b[1][q], t.db0 = db[0][q], t.db1 = db[1][q];
    return t;
  }
};

// The two values of a row pair. kPair=false is the one-column plane, whose second slot
// has weight 0 and lies outside the row. float reads the pair as one 64-bit element, so
// a vectorised loop gathers two taps per lane.
template <bool kPair, typename scalar_t, typename acc_t>
inline void load_pair(const scalar_t* p, acc_t& v0, acc_t& v1) {
  if constexpr (kPair && std::is_same_v<scalar_t, float>) {
    uint64_t u;
    std::memcpy(&u, p, sizeof(u));
    const uint32_t lo = static_cast<uint32_t>(u), hi = static_cast<uint32_t>(u >> 32);
    std::memcpy(&v0, &lo, sizeof(lo));
    std::memcpy(&v1, &hi, sizeof(hi));
  } else {
    v0 = static_cast<acc_t>(p[0]);
    v1 = kPair ? static_cast<acc_t>(p[1]) : acc_t(0);
  }
}

// p[0] += d0, p[1] += d1 (p[1] untouched for a one-column plane); float as one 64-bit
// load, add and store.
template <bool kPair, typename acc_t>
inline void add_pair(acc_t* p, acc_t d0, acc_t d1) {
#if defined(__SSE2__)
  if constexpr (kPair && std::is_same_v<acc_t, float>) {
    const __m128 v = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
    _mm_store_sd(reinterpret_cast<double*>(p),
                 _mm_castps_pd(_mm_add_ps(v, _mm_setr_ps(d0, d1, 0.0f, 0.0f))));
    return;
  }
#endif
  p[0] += d0;
  if constexpr (kPair) p[1] += d1;
}

// One channel of the forward: out[q] = the sample of plane at the chunk's taps.
template <bool kPair, typename scalar_t, typename acc_t, int64_t kCap>
void sample_run(const PairBlock<acc_t, kCap>& tb, const scalar_t* plane, scalar_t* out,
                int64_t cnt) {
  const int32_t* r0 = tb.r[0];
  const int32_t* r1 = tb.r[1];
  _Pragma("omp simd")
  for (int64_t q = 0; q < cnt; ++q) {
    acc_t v00, v01, v10, v11;
    load_pair<kPair>(plane + r0[q], v00, v01);
    load_pair<kPair>(plane + r1[q], v10, v11);
    out[q] = static_cast<scalar_t>(tm::pair_sample(tb.at(q), v00, v01, v10, v11));
  }
}

// Output pixels that update dx back to back are kScatterStride apart: neighbouring pixels
// share source pairs, and a load overlapping half of a store still in flight stalls until
// it retires (4 keeps apart pixels of warps that magnify up to about 4x).
constexpr int64_t kScatterStride = 4;

// One channel of the input gradient: dplane[taps of q] += weights * grow[q].
template <bool kPair, typename scalar_t, typename acc_t, int64_t kCap>
void scatter_run(const PairBlock<acc_t, kCap>& tb, const scalar_t* grow, acc_t* dplane,
                 int64_t cnt) {
  for (int64_t phase = 0; phase < kScatterStride; ++phase) {
    for (int64_t q = phase; q < cnt; q += kScatterStride) {
      const acc_t gv = static_cast<acc_t>(grow[q]);
      const acc_t a0 = tb.a[0][q], a1 = tb.a[1][q];
      const acc_t g0 = tb.b[0][q] * gv, g1 = tb.b[1][q] * gv;
      add_pair<kPair>(dplane + tb.r[0][q], a0 * g0, a1 * g0);
      add_pair<kPair>(dplane + tb.r[1][q], a0 * g1, a1 * g1);
    }
  }
}

// Channels whose position gradient one pass sums in registers: the taps and the running
// sums are loaded once per group rather than once per channel.
constexpr int64_t kPosGradGroup = 4;

// kCh channels of the position gradient: d[xy][q] += sum over the channels of
// grow[q] * d sample / d position (planes and gradient rows `stride` elements apart).
template <int64_t kCh, bool kPair, typename scalar_t, typename acc_t, int64_t kCap>
void pos_grad_run(const PairBlock<acc_t, kCap>& tb, const scalar_t* plane, int64_t plane_stride,
                  const scalar_t* grow, int64_t grow_stride, acc_t* __restrict__ dgx,
                  acc_t* __restrict__ dgy, int64_t cnt) {
  const int32_t* r0 = tb.r[0];
  const int32_t* r1 = tb.r[1];
  _Pragma("omp simd")
  for (int64_t q = 0; q < cnt; ++q) {
    const tm::PairTaps<acc_t> t = tb.at(q);
    acc_t sx = 0, sy = 0;
    for (int64_t i = 0; i < kCh; ++i) {
      const scalar_t* pl = plane + i * plane_stride;
      acc_t v00, v01, v10, v11, px, py;
      load_pair<kPair>(pl + r0[q], v00, v01);
      load_pair<kPair>(pl + r1[q], v10, v11);
      tm::pair_pos_grad(t, v00, v01, v10, v11, px, py);
      const acc_t gv = static_cast<acc_t>(grow[i * grow_stride + q]);
      sx += gv * px;
      sy += gv * py;
    }
    dgx[q] += sx;
    dgy[q] += sy;
  }
}

// The grid of every (sample, pixel) from the shared per-block basis, [N][2][pixels].
template <typename scalar_t, typename acc_t>
std::unique_ptr<acc_t[]> warp_grid(const TpsGeometry& g, bool align_corners, const acc_t* target,
                                   const std::vector<acc_t>& coef) {
  const int64_t pixels = g.h * g.w;
  std::unique_ptr<acc_t[]> gbuf = uninit_array<acc_t>(g.n * 2 * pixels);
  for_each_block_and_sample<acc_t, GridScratch<acc_t>>(
      g, align_corners, target,
      [&](const BasisBlock<acc_t>& b, GridScratch<acc_t>&, int64_t, int64_t n) {
        acc_t* gx = gbuf.get() + n * 2 * pixels + b.p0;
        b.grid(coef.data() + n * (g.k + 3) * 2, gx, gx + pixels);
      });
  return gbuf;
}

template <bool kPair, typename scalar_t, typename acc_t>
void warp_forward(const TpsGeometry& g, const acc_t* gbuf, const scalar_t* xp,
                  scalar_t* op, int64_t c, int64_t plane_in, const tm::Axis<acc_t>& ax,
                  const tm::Axis<acc_t>& ay) {
  const int64_t pixels = g.h * g.w, chunks = ceil_div(pixels, kGatherChunk);
  // Per (sample, pixel chunk): the taps once, then one pass per channel, so each pass
  // reads one input plane (cache-resident) and writes one output run.
  at::parallel_for(0, g.n * chunks, 1, [&](int64_t begin, int64_t end) {
    auto taps = std::make_unique<PairBlock<acc_t>>();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks, p0 = (task % chunks) * kGatherChunk;
      const int64_t cnt = std::min(kGatherChunk, pixels - p0);
      const acc_t* gx = gbuf + n * 2 * pixels + p0;
      taps->fill(gx, gx + pixels, cnt, ax, ay);
      for (int64_t ch = 0; ch < c; ++ch) {
        sample_run<kPair>(*taps, xp + (n * c + ch) * plane_in, op + (n * c + ch) * pixels + p0,
                          cnt);
      }
    }
  });
}

// Per (sample, channel chunk): zero and scatter its own dx planes (no two tasks write one
// plane: no races, no atomics) and sum the position gradient over its channels into
// dgpart [N][cchunks][2][pixels], scaled to normalised coordinates.
template <bool kPair, typename scalar_t, typename acc_t>
void warp_backward_input(const TpsGeometry& g, const acc_t* gbuf,
                         const scalar_t* xp, const scalar_t* gp, acc_t* dxp, acc_t* dgpart,
                         int64_t c, int64_t plane_in, const tm::Axis<acc_t>& ax,
                         const tm::Axis<acc_t>& ay) {
  const int64_t pixels = g.h * g.w, cchunks = ceil_div(c, kChannelChunk);
  at::parallel_for(0, g.n * cchunks, 1, [&](int64_t begin, int64_t end) {
    auto taps = std::make_unique<PairBlock<acc_t>>();
    std::vector<acc_t> dgx_buf(kGatherChunk), dgy_buf(kGatherChunk);
    acc_t* __restrict__ dgx = dgx_buf.data();
    acc_t* __restrict__ dgy = dgy_buf.data();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / cchunks, cc0 = (task % cchunks) * kChannelChunk;
      const int64_t cc1 = std::min(c, cc0 + kChannelChunk);
      if (dxp != nullptr) {
        std::memset(dxp + (n * c + cc0) * plane_in, 0,
                    sizeof(acc_t) * static_cast<size_t>((cc1 - cc0) * plane_in));
      }
      const acc_t* gx_all = gbuf + n * 2 * pixels;
      for (int64_t p0 = 0; p0 < pixels; p0 += kGatherChunk) {
        const int64_t cnt = std::min(kGatherChunk, pixels - p0);
        taps->fill(gx_all + p0, gx_all + pixels + p0, cnt, ax, ay);
        std::fill(dgx, dgx + cnt, acc_t(0));
        std::fill(dgy, dgy + cnt, acc_t(0));
        for (int64_t ch = cc0; ch < cc1;) {
          const int64_t group = std::min(kPosGradGroup, cc1 - ch);
          const scalar_t* grow = gp + (n * c + ch) * pixels + p0;
          if (dxp != nullptr) {
            for (int64_t i = 0; i < group; ++i) {
              scatter_run<kPair>(*taps, grow + i * pixels, dxp + (n * c + ch + i) * plane_in, cnt);
            }
          }
          if (dgpart != nullptr) {
            const scalar_t* plane = xp + (n * c + ch) * plane_in;
            const auto run = [&](auto ch_count) {
              pos_grad_run<decltype(ch_count)::value, kPair>(*taps, plane, plane_in, grow, pixels,
                                                             dgx, dgy, cnt);
            };
            static_assert(kPosGradGroup == 4, "one instantiation per group size below");
            switch (group) {
              case 4: run(std::integral_constant<int64_t, 4>{}); break;
              case 3: run(std::integral_constant<int64_t, 3>{}); break;
              case 2: run(std::integral_constant<int64_t, 2>{}); break;
              default: run(std::integral_constant<int64_t, 1>{});
            }
          }
          ch += group;
        }
        if (dgpart != nullptr) {
          acc_t* part = dgpart + (task * 2) * pixels + p0;
          for (int64_t q = 0; q < cnt; ++q) {
            part[q] = dgx[q] * ax.scale;
            part[pixels + q] = dgy[q] * ay.scale;
          }
        }
      }
    }
  });
}

// --- channel-vector path (lanes.h) -------------------------------------------------------

namespace tl = lanes;

// Feature maps with at least this many channels (and input rows of two or more pixels)
// take the channel-vector path. A shape rule only, never the thread count, so a given
// shape always sums in the same order.
constexpr int64_t kLaneMinChannels = 16;

bool use_lanes(int64_t c, int64_t win) { return c >= kLaneMinChannels && win >= 2; }

// Vectors of kLanes channels that one task holds per pixel (1, 2 or 4). Per pixel, the
// taps are loaded and broadcast once for all of them, and the position gradient's sum
// over the task's channels takes V - 1 vector adds before one lane sum (a lane sum is a
// shuffle tree, the expensive part), so wider tasks cost less per channel. Measured on
// the PoT-GAN feature maps (2-core Zen 4): V = 4 cuts the backward by 30-35 % on 32x16
// and 16x8 planes, while on 64x32 planes (a 256-KB pixel-major buffer at V = 2) V > 1 is
// slower, hence the cap of 2048 input pixels x V (128 KB of float buffer). V halves while
// half of it would hold every channel, and the batch must still split into >= 8 tasks.
// Shape only: the thread count never changes V, so the position gradient sums in the same
// order on any number of threads.
int64_t lane_vectors(int64_t n, int64_t c, int64_t plane_in) {
  constexpr int64_t kMaxPixelsTimesV = 2048;
  int64_t v = 4;
  while (v > 1 && (v * plane_in > kMaxPixelsTimesV || (v / 2) * tl::kLanes >= c ||
                   n * ceil_div(c, v * tl::kLanes) < 8)) {
    v /= 2;
  }
  return v;
}

// Channels of the task's vector v that exist (0 past the last channel).
inline int64_t vector_lanes(int64_t c, int64_t c0, int64_t v) {
  return std::clamp<int64_t>(c - c0 - v * tl::kLanes, 0, tl::kLanes);
}

// The task's input planes pixel-major: row p holds V x kLanes channels of pixel p, plus a
// zero row that a pair's second slot may reach at the plane's end.
template <int64_t V, typename scalar_t, typename acc_t>
void load_lanes(const scalar_t* planes, int64_t plane_in, int64_t c, int64_t c0, acc_t* xt) {
  constexpr int64_t W = V * tl::kLanes;
  for (int64_t v = 0; v < V; ++v) {
    tl::to_lanes(planes + v * tl::kLanes * plane_in, plane_in, vector_lanes(c, c0, v), plane_in,
                 xt + v * tl::kLanes, W);
  }
  std::fill(xt + plane_in * W, xt + (plane_in + 1) * W, acc_t(0));
}

// Per (sample, V x kLanes channels): the input pixel-major once, then per pixel the four
// row-pair loads of its channels, written back to the output planes tile by tile.
template <int64_t V, typename scalar_t, typename acc_t>
void warp_forward_lanes(const TpsGeometry& g, const acc_t* gbuf, const scalar_t* xp,
                        scalar_t* op, int64_t c, int64_t plane_in, const tm::Axis<acc_t>& ax,
                        const tm::Axis<acc_t>& ay) {
  constexpr int64_t L = tl::kLanes, W = V * L;
  const int64_t pixels = g.h * g.w, cchunks = ceil_div(c, W);
  at::parallel_for(0, g.n * cchunks, 1, [&](int64_t begin, int64_t end) {
    auto taps = std::make_unique<PairBlock<acc_t>>();
    tl::Buffer<acc_t> xt_buf, tile_buf;
    xt_buf.reserve((plane_in + 1) * W);
    tile_buf.reserve(tl::kTile * W);
    acc_t* xt = xt_buf.get();
    acc_t* tile = tile_buf.get();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / cchunks, c0 = (task % cchunks) * W;
      load_lanes<V>(xp + (n * c + c0) * plane_in, plane_in, c, c0, xt);
      scalar_t* dst = op + (n * c + c0) * pixels;
      const acc_t* gx = gbuf + n * 2 * pixels;
      for (int64_t p0 = 0; p0 < pixels; p0 += kGatherChunk) {
        const int64_t cnt = std::min(kGatherChunk, pixels - p0);
        taps->fill(gx + p0, gx + pixels + p0, cnt, ax, ay);
        for (int64_t q0 = 0; q0 < cnt; q0 += tl::kTile) {
          const int64_t tc = std::min(tl::kTile, cnt - q0);
          for (int64_t q = 0; q < tc; ++q) {
            const tm::PairTaps<acc_t> t = taps->at(q0 + q);
            const acc_t* __restrict__ v0 = xt + t.r0 * W;
            const acc_t* __restrict__ v1 = xt + t.r1 * W;
            acc_t* __restrict__ o = tile + q * W;
            _Pragma("omp simd")
            for (int64_t i = 0; i < W; ++i) {
              o[i] = tm::pair_sample(t, v0[i], v0[W + i], v1[i], v1[W + i]);
            }
          }
          for (int64_t v = 0; v < V; ++v) {
            tl::from_lanes(tile + v * L, pixels, vector_lanes(c, c0, v), tc,
                           dst + v * L * pixels + p0 + q0, W);
          }
        }
      }
    }
  });
}

// Per (sample, V x kLanes channels): the input gradient accumulated pixel-major in the
// task's own buffer (vector adds, no races, no atomics) and written back to its dx planes;
// the position gradient as a dot product over the task's channels (V vectors added, then
// one lane sum per pixel), into dgpart like the planar path.
template <int64_t V, typename scalar_t, typename acc_t>
void warp_backward_lanes(const TpsGeometry& g, const acc_t* gbuf, const scalar_t* xp,
                         const scalar_t* gp, acc_t* dxp, acc_t* dgpart, int64_t c,
                         int64_t plane_in, const tm::Axis<acc_t>& ax, const tm::Axis<acc_t>& ay) {
  constexpr int64_t L = tl::kLanes, W = V * L;
  const int64_t pixels = g.h * g.w, cchunks = ceil_div(c, W);
  at::parallel_for(0, g.n * cchunks, 1, [&](int64_t begin, int64_t end) {
    auto taps = std::make_unique<PairBlock<acc_t>>();
    tl::Buffer<acc_t> xt_buf, dxt_buf, tile_buf;
    if (dgpart != nullptr) xt_buf.reserve((plane_in + 1) * W);
    if (dxp != nullptr) dxt_buf.reserve((plane_in + 1) * W);
    // The grad tile and the two position-gradient tiles; zeroed once, since lane_sums
    // reads whole tiles (rows past a short tile's end are ignored).
    tile_buf.reserve(tl::kTile * (W + 2 * L));
    std::fill(tile_buf.get(), tile_buf.get() + tl::kTile * (W + 2 * L), acc_t(0));
    acc_t* xt = xt_buf.get();
    acc_t* dxt = dxt_buf.get();
    acc_t* gtile = tile_buf.get();
    acc_t* xtile = gtile + tl::kTile * W;
    acc_t* ytile = xtile + tl::kTile * L;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / cchunks, c0 = (task % cchunks) * W;
      if (dgpart != nullptr) load_lanes<V>(xp + (n * c + c0) * plane_in, plane_in, c, c0, xt);
      if (dxp != nullptr) std::fill(dxt, dxt + (plane_in + 1) * W, acc_t(0));
      const scalar_t* grad = gp + (n * c + c0) * pixels;
      const acc_t* gx = gbuf + n * 2 * pixels;
      acc_t* part = dgpart != nullptr ? dgpart + task * 2 * pixels : nullptr;
      for (int64_t p0 = 0; p0 < pixels; p0 += kGatherChunk) {
        const int64_t cnt = std::min(kGatherChunk, pixels - p0);
        taps->fill(gx + p0, gx + pixels + p0, cnt, ax, ay);
        for (int64_t q0 = 0; q0 < cnt; q0 += tl::kTile) {
          const int64_t tc = std::min(tl::kTile, cnt - q0);
          for (int64_t v = 0; v < V; ++v) {
            tl::to_lanes(grad + v * L * pixels + p0 + q0, pixels, vector_lanes(c, c0, v), tc,
                         gtile + v * L, W);
          }
          for (int64_t q = 0; q < tc; ++q) {
            const tm::PairTaps<acc_t> t = taps->at(q0 + q);
            const acc_t* __restrict__ gv = gtile + q * W;
            if (dxp != nullptr) {
              acc_t* d0 = dxt + t.r0 * W;
              acc_t* d1 = dxt + t.r1 * W;
              tl::lane_axpy<W>(d0, t.b0 * t.a0, gv);
              tl::lane_axpy<W>(d0 + W, t.b0 * t.a1, gv);
              tl::lane_axpy<W>(d1, t.b1 * t.a0, gv);
              tl::lane_axpy<W>(d1 + W, t.b1 * t.a1, gv);
            }
            if (part != nullptr) {
              const acc_t* __restrict__ v0 = xt + t.r0 * W;
              const acc_t* __restrict__ v1 = xt + t.r1 * W;
              acc_t* __restrict__ sx = xtile + q * L;
              acc_t* __restrict__ sy = ytile + q * L;
              // The derivative of a sample is linear in the tap values, so the products
              // with the gradient are summed over the task's vectors tap by tap first and
              // pair_pos_grad runs once per lane: 4 V + 12 operations instead of 14 V.
              _Pragma("omp simd")
              for (int64_t i = 0; i < L; ++i) {
                acc_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
                for (int64_t v = 0; v < V; ++v) {
                  const int64_t j = v * L + i;
                  s00 += gv[j] * v0[j];
                  s01 += gv[j] * v0[W + j];
                  s10 += gv[j] * v1[j];
                  s11 += gv[j] * v1[W + j];
                }
                tm::pair_pos_grad(t, s00, s01, s10, s11, sx[i], sy[i]);
              }
            }
          }
          if (part != nullptr) {
            tl::lane_sums(xtile, tc, ax.scale, part + p0 + q0);
            tl::lane_sums(ytile, tc, ay.scale, part + pixels + p0 + q0);
          }
        }
      }
      if (dxp != nullptr) {
        for (int64_t v = 0; v < V; ++v) {
          tl::from_lanes(dxt + v * L, plane_in, vector_lanes(c, c0, v), plane_in,
                         dxp + (n * c + c0 + v * L) * plane_in, W);
        }
      }
    }
  });
}

// Runs fn(std::integral_constant<int64_t, V>) for the shape's lane_vectors.
template <typename Fn>
void with_lane_vectors(int64_t v, const Fn& fn) {
  switch (v) {
    case 4: fn(std::integral_constant<int64_t, 4>{}); break;
    case 2: fn(std::integral_constant<int64_t, 2>{}); break;
    default: fn(std::integral_constant<int64_t, 1>{});
  }
}

at::Tensor tps_warp_cpu(const at::Tensor& x, const at::Tensor& ctrl, const at::Tensor& target,
                        const at::Tensor& kinv, int64_t height, int64_t width,
                        bool align_corners) {
  const TpsGeometry g = check_tps_ctrl("tps_warp", ctrl, target, kinv, height, width);
  check_tps_image("tps_warp", x, ctrl);
  check_cpu("tps_warp", x);
  const at::Tensor xc = x.contiguous(), cc = ctrl.contiguous(), tc = target.contiguous(),
                   kc = kinv.contiguous();
  const int64_t c = x.size(1), hin = x.size(2), win = x.size(3);
  at::Tensor out = at::empty({g.n, c, g.h, g.w}, x.options());
  if (g.n == 0 || c == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tps_warp_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const std::vector<acc_t> coef =
        tps_coefficients(cc.const_data_ptr<scalar_t>(), kc.const_data_ptr<acc_t>(), g.n, g.k);
    const std::unique_ptr<acc_t[]> gbuf =
        warp_grid<scalar_t, acc_t>(g, align_corners, tc.const_data_ptr<acc_t>(), coef);
    const tm::Axis<acc_t> ax = tm::make_axis<acc_t>(win, align_corners);
    const tm::Axis<acc_t> ay = tm::make_axis<acc_t>(hin, align_corners);
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (use_lanes(c, win)) {
      with_lane_vectors(lane_vectors(g.n, c, hin * win), [&](auto v) {
        warp_forward_lanes<decltype(v)::value>(g, gbuf.get(), xp, op, c, hin * win, ax, ay);
      });
    } else if (win >= 2) {
      warp_forward<true>(g, gbuf.get(), xp, op, c, hin * win, ax, ay);
    } else {
      warp_forward<false>(g, gbuf.get(), xp, op, c, hin * win, ax, ay);
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> tps_warp_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x, const at::Tensor& ctrl,
    const at::Tensor& target, const at::Tensor& kinv, bool align_corners, bool need_x,
    bool need_ctrl) {
  TORCH_CHECK(grad_in.dim() == 4, "tps_warp_backward: grad must be [N, C, H, W], got shape ",
              grad_in.sizes());
  const TpsGeometry g = check_tps_ctrl("tps_warp_backward", ctrl, target, kinv, grad_in.size(2),
                                       grad_in.size(3));
  check_tps_image("tps_warp_backward", x, ctrl);
  check_cpu("tps_warp_backward", x);
  const int64_t c = x.size(1), hin = x.size(2), win = x.size(3);
  check_tps_grad("tps_warp_backward", grad_in, {g.n, c, g.h, g.w}, x);
  const at::ScalarType acc_type = tps_acc_type(x.scalar_type());
  at::Tensor dx_acc = need_x ? at::empty(x.sizes(), x.options().dtype(acc_type))
                             : at::empty({0}, x.options());
  at::Tensor dctrl = need_ctrl ? at::empty({g.n, g.k, 2}, ctrl.options())
                               : at::empty({0}, ctrl.options());
  const auto finish = [&]() -> std::tuple<at::Tensor, at::Tensor> {
    at::Tensor dx = need_x && acc_type != x.scalar_type() ? dx_acc.to(x.scalar_type()) : dx_acc;
    return {dx, dctrl};
  };
  if (!need_x && !need_ctrl) return finish();
  if (g.n == 0) return finish();
  if (c == 0) {
    if (need_ctrl) dctrl.zero_();
    return finish();
  }
  const at::Tensor grad = grad_in.to(x.scalar_type()).contiguous();
  const at::Tensor xc = x.contiguous(), cc = ctrl.contiguous(), tc = target.contiguous(),
                   kc = kinv.contiguous();
  const int64_t pixels = g.h * g.w, plane_in = hin * win;
  // Tasks of the input-gradient pass, each writing its own partial position gradient.
  const bool lanes_path = use_lanes(c, win);
  const int64_t vectors = lanes_path ? lane_vectors(g.n, c, plane_in) : 0;
  const int64_t cchunks = lanes_path ? ceil_div(c, vectors * lanes::kLanes)
                                     : ceil_div(c, kChannelChunk);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tps_warp_backward_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* tp = tc.const_data_ptr<acc_t>();
    const acc_t* kp = kc.const_data_ptr<acc_t>();
    const std::vector<acc_t> coef = tps_coefficients(cc.const_data_ptr<scalar_t>(), kp, g.n, g.k);
    const tm::Axis<acc_t> ax = tm::make_axis<acc_t>(win, align_corners);
    const tm::Axis<acc_t> ay = tm::make_axis<acc_t>(hin, align_corners);

    // (A) the grid; (B) dx and the per-chunk position gradient.
    const std::unique_ptr<acc_t[]> gbuf = warp_grid<scalar_t, acc_t>(g, align_corners, tp, coef);
    const std::unique_ptr<acc_t[]> dgpart =
        need_ctrl ? uninit_array<acc_t>(g.n * cchunks * 2 * pixels) : nullptr;
    acc_t* dxp = need_x ? dx_acc.mutable_data_ptr<acc_t>() : nullptr;
    acc_t* dgp = dgpart.get();
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    if (lanes_path) {
      with_lane_vectors(vectors, [&](auto v) {
        warp_backward_lanes<decltype(v)::value>(g, gbuf.get(), xp, gp, dxp, dgp, c, plane_in, ax,
                                                ay);
      });
    } else if (win >= 2) {
      warp_backward_input<true>(g, gbuf.get(), xp, gp, dxp, dgp, c, plane_in, ax, ay);
    } else {
      warp_backward_input<false>(g, gbuf.get(), xp, gp, dxp, dgp, c, plane_in, ax, ay);
    }

    // (C) dctrl from the position gradient summed over channel chunks in order.
    if (need_ctrl) {
      ctrl_grad_from_grid_grad<scalar_t, acc_t>(
          tp, kp, g, align_corners, dctrl.mutable_data_ptr<scalar_t>(),
          [&](int64_t n, int64_t p0, int64_t cnt, acc_t* dgx, acc_t* dgy) {
            const acc_t* base = dgpart.get() + n * cchunks * 2 * pixels + p0;
            for (int64_t q = 0; q < cnt; ++q) {
              dgx[q] = base[q];
              dgy[q] = base[pixels + q];
            }
            for (int64_t k = 1; k < cchunks; ++k) {
              const acc_t* part = base + k * 2 * pixels;
              for (int64_t q = 0; q < cnt; ++q) {
                dgx[q] += part[q];
                dgy[q] += part[pixels + q];
              }
            }
          });
    }
  });
  return finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CPU, m) {
  m.impl("tps_grid", &tps_grid_cpu);
  m.impl("tps_grid_backward", &tps_grid_backward_cpu);
  m.impl("tps_warp", &tps_warp_cpu);
  m.impl("tps_warp_backward", &tps_warp_backward_cpu);
}

}  // namespace fastpose
