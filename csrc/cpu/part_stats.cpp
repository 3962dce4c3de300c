// CPU kernels of fastpose::part_stats and fastpose::part_stats_backward.
//
// Forward: one pass over the pixels in fixed chunks of kChunk pixels (tasks
// are (n, chunk) pairs, run in parallel). Each chunk sums the mask and, per
// (k, c), five shifted moments in vector registers, and stores them as
// centred partials; a second, tiny pass merges the partials of each
// (n, k, c) in chunk order in double (Chan et al.), so the result does not
// depend on the thread count and no reduction needs atomics.
// Backward: elementwise in the pixels (no halo); per chunk the gradients of
// x and y accumulate over the parts in a chunk-sized buffer, and the mask
// gradient over the channels.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../part_stats_common.h"
#include "../part_stats_math.h"

namespace fastpose {
namespace {

namespace pm = part_stats_math;

// Kernel bodies as templates over the input type; AT_DISPATCH below only picks the type.
template <typename scalar_t>
void part_stats_cpu_impl(const PartStatsGeometry& g, const at::Tensor& xc, const at::Tensor& yc,
                         const at::Tensor& mc, at::Tensor& stats, at::Tensor& msum, double eps,
                         int64_t tasks, std::vector<uint8_t>& negative) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* xp = xc.const_data_ptr<scalar_t>();
  const scalar_t* yp = yc.const_data_ptr<scalar_t>();
  const scalar_t* mp = mc.const_data_ptr<scalar_t>();
  // partials[((n * chunks + chunk) * K + k) * C + c]; sums[(n * chunks + chunk) * K + k]
  std::vector<pm::Centred<acc_t>> partials(static_cast<size_t>(tasks * g.k * g.c));
  std::vector<acc_t> sums(static_cast<size_t>(tasks * g.k));
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / g.chunks;
      const int64_t p0 = (task % g.chunks) * pm::kChunk;
      const int64_t np = std::min(pm::kChunk, g.hw - p0);
      for (int64_t k = 0; k < g.k; ++k) {
        const scalar_t* __restrict__ mk = mp + (n * g.k + k) * g.hw + p0;
        acc_t s = 0, lo = 0;
        _Pragma("omp simd reduction(+:s) reduction(min:lo)")
        for (int64_t j = 0; j < np; ++j) {
          const acc_t v = static_cast<acc_t>(mk[j]);
          s += v;
          lo = std::min(lo, v);
        }
        if (lo < acc_t(0)) negative[task] = 1;
        sums[task * g.k + k] = s;
        for (int64_t c = 0; c < g.c; ++c) {
          const scalar_t* __restrict__ xk = xp + (n * g.c + c) * g.hw + p0;
          const scalar_t* __restrict__ yk = yp + (n * g.c + c) * g.hw + p0;
          const acc_t shx = static_cast<acc_t>(xk[0]), shy = static_cast<acc_t>(yk[0]);
          acc_t sdx = 0, sdy = 0, sdxx = 0, sdyy = 0, sdxy = 0;
          _Pragma("omp simd reduction(+:sdx,sdy,sdxx,sdyy,sdxy)")
          for (int64_t j = 0; j < np; ++j) {
            const acc_t w = static_cast<acc_t>(mk[j]);
            const acc_t dx = static_cast<acc_t>(xk[j]) - shx;
            const acc_t dy = static_cast<acc_t>(yk[j]) - shy;
            const acc_t t = w * dx, u = w * dy;
            sdx += t;
            sdy += u;
            sdxx += t * dx;
            sdyy += u * dy;
            sdxy += t * dy;
          }
          partials[(task * g.k + k) * g.c + c] =
              pm::centre_chunk<acc_t>(s, sdx, sdy, sdxx, sdyy, sdxy, shx, shy);
        }
      }
    }
  });
  for (int64_t t = 0; t < tasks; ++t)
    TORCH_CHECK(!negative[t], "part_stats: m must be non-negative (soft masks), found a negative "
                "value in image ", t / g.chunks);
  // Deterministic merge, in chunk order and in double.
  acc_t* sp = stats.mutable_data_ptr<acc_t>();
  acc_t* msp = msum.mutable_data_ptr<acc_t>();
  at::parallel_for(0, g.n * g.k, 16, [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / g.k, k = nk % g.k;
      double s = 0;
      for (int64_t ch = 0; ch < g.chunks; ++ch) s += sums[(n * g.chunks + ch) * g.k + k];
      msp[nk] = static_cast<acc_t>(s);
      for (int64_t c = 0; c < g.c; ++c) {
        pm::Centred<double> a{0, 0, 0, 0, 0, 0};
        for (int64_t ch = 0; ch < g.chunks; ++ch) {
          const pm::Centred<acc_t>& b = partials[((n * g.chunks + ch) * g.k + k) * g.c + c];
          pm::merge(a, pm::Centred<double>{b.s, b.ax, b.ay, b.mxx, b.myy, b.mxy});
        }
        pm::store_stats(pm::finalize(a, eps), sp + (nk * g.c + c) * pm::kNumStats);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> part_stats_cpu(const at::Tensor& x, const at::Tensor& y,
                                                  const at::Tensor& m, double eps) {
  const PartStatsGeometry g = check_part_stats_inputs(x, y, m, eps);
  TORCH_CHECK(x.device().is_cpu(), "part_stats: expected CPU tensors, got ", x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor yc = y.contiguous();
  const at::Tensor mc = m.contiguous();
  const auto acc_opts = x.options().dtype(part_stats_acc_type(x.scalar_type()));
  at::Tensor stats = at::empty({g.n, g.k, g.c, pm::kNumStats}, acc_opts);
  at::Tensor msum = at::empty({g.n, g.k}, acc_opts);
  if (g.n == 0 || g.k == 0) return {stats, msum};
  const int64_t tasks = g.n * g.chunks;
  std::vector<uint8_t> negative(static_cast<size_t>(tasks), 0);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "part_stats_cpu", [&] {
    part_stats_cpu_impl<scalar_t>(g, xc, yc, mc, stats, msum, eps, tasks, negative);
  });
  return {stats, msum};
}

template <typename scalar_t>
void part_stats_backward_cpu_impl(const PartStatsGeometry& g, const at::Tensor& gs,
                                  const at::Tensor& gms, const at::Tensor& st, const at::Tensor& ms,
                                  const at::Tensor& xc, const at::Tensor& yc, const at::Tensor& mc,
                                  at::Tensor& dx, at::Tensor& dy, at::Tensor& dm, double eps,
                                  bool need_x_grad, bool need_y_grad, bool need_m_grad) {
  const bool need_xy = need_x_grad || need_y_grad;
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* xp = xc.const_data_ptr<scalar_t>();
  const scalar_t* yp = yc.const_data_ptr<scalar_t>();
  const scalar_t* mp = mc.const_data_ptr<scalar_t>();
  scalar_t* dxp = need_x_grad ? dx.mutable_data_ptr<scalar_t>() : nullptr;
  scalar_t* dyp = need_y_grad ? dy.mutable_data_ptr<scalar_t>() : nullptr;
  scalar_t* dmp = need_m_grad ? dm.mutable_data_ptr<scalar_t>() : nullptr;
  const acc_t* gsp = gs.const_data_ptr<acc_t>();
  const acc_t* gmp = gms.const_data_ptr<acc_t>();
  const acc_t* stp = st.const_data_ptr<acc_t>();
  const acc_t* msp = ms.const_data_ptr<acc_t>();
  // Per-part tables: coefficients per (n, k, c); 1 / D and the bias of dm per (n, k).
  std::vector<pm::Coef<acc_t>> coef(static_cast<size_t>(g.n * g.k * g.c));
  std::vector<acc_t> inv_d(static_cast<size_t>(g.n * g.k)), bias(static_cast<size_t>(g.n * g.k));
  for (int64_t nk = 0; nk < g.n * g.k; ++nk) {
    const acc_t d = msp[nk] + static_cast<acc_t>(eps);
    acc_t cst = 0;
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t i = nk * g.c + c;
      coef[i] = pm::make_coef(gsp + i * pm::kNumStats, stp + i * pm::kNumStats);
      cst += pm::dm_constant(gsp + i * pm::kNumStats, stp + i * pm::kNumStats);
    }
    inv_d[nk] = acc_t(1) / d;
    bias[nk] = gmp[nk] - cst / d;
  }
  const int64_t tasks = g.n * g.chunks;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> bufx(pm::kChunk), bufy(pm::kChunk);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / g.chunks;
      const int64_t p0 = (task % g.chunks) * pm::kChunk;
      const int64_t np = std::min(pm::kChunk, g.hw - p0);
      acc_t* __restrict__ bx = bufx.data();
      acc_t* __restrict__ by = bufy.data();
      for (int64_t c = 0; c < (need_xy ? g.c : 0); ++c) {
        const int64_t off = (n * g.c + c) * g.hw + p0;
        const scalar_t* __restrict__ xk = xp + off;
        const scalar_t* __restrict__ yk = yp + off;
        std::fill(bx, bx + np, acc_t(0));
        std::fill(by, by + np, acc_t(0));
        for (int64_t k = 0; k < g.k; ++k) {
          const pm::Coef<acc_t> q = coef[(n * g.k + k) * g.c + c];
          const acc_t id = inv_d[n * g.k + k];
          const scalar_t* __restrict__ mk = mp + (n * g.k + k) * g.hw + p0;
          // Separate loops per need, so the common training case (a gradient to the
          // generated image only) does half the work.
          if (need_x_grad && need_y_grad) {
            _Pragma("omp simd")
            for (int64_t j = 0; j < np; ++j) {
              const acc_t w = static_cast<acc_t>(mk[j]) * id;
              const acc_t a = static_cast<acc_t>(xk[j]), b = static_cast<acc_t>(yk[j]);
              bx[j] += w * pm::grad_x_term(q, a, b);
              by[j] += w * pm::grad_y_term(q, a, b);
            }
          } else {
            acc_t* __restrict__ bo = need_x_grad ? bx : by;
            _Pragma("omp simd")
            for (int64_t j = 0; j < np; ++j) {
              const acc_t w = static_cast<acc_t>(mk[j]) * id;
              const acc_t a = static_cast<acc_t>(xk[j]), b = static_cast<acc_t>(yk[j]);
              bo[j] += w * (need_x_grad ? pm::grad_x_term(q, a, b) : pm::grad_y_term(q, a, b));
            }
          }
        }
        if (need_x_grad) {
          scalar_t* __restrict__ ox = dxp + off;
          _Pragma("omp simd")
          for (int64_t j = 0; j < np; ++j) ox[j] = static_cast<scalar_t>(bx[j]);
        }
        if (need_y_grad) {
          scalar_t* __restrict__ oy = dyp + off;
          _Pragma("omp simd")
          for (int64_t j = 0; j < np; ++j) oy[j] = static_cast<scalar_t>(by[j]);
        }
      }
      if (!need_m_grad) continue;
      for (int64_t k = 0; k < g.k; ++k) {
        std::fill(bx, bx + np, acc_t(0));
        for (int64_t c = 0; c < g.c; ++c) {
          const pm::Coef<acc_t> q = coef[(n * g.k + k) * g.c + c];
          const int64_t off = (n * g.c + c) * g.hw + p0;
          const scalar_t* __restrict__ xk = xp + off;
          const scalar_t* __restrict__ yk = yp + off;
          _Pragma("omp simd")
          for (int64_t j = 0; j < np; ++j)
            bx[j] += pm::grad_m_term(q, static_cast<acc_t>(xk[j]), static_cast<acc_t>(yk[j]));
        }
        const acc_t id = inv_d[n * g.k + k], b0 = bias[n * g.k + k];
        scalar_t* __restrict__ om = dmp + (n * g.k + k) * g.hw + p0;
        _Pragma("omp simd")
        for (int64_t j = 0; j < np; ++j) om[j] = static_cast<scalar_t>(b0 + id * bx[j]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> part_stats_backward_cpu(
    const at::Tensor& grad_stats, const at::Tensor& grad_msum, const at::Tensor& x,
    const at::Tensor& y, const at::Tensor& m, const at::Tensor& stats, const at::Tensor& msum,
    double eps, bool need_x_grad, bool need_y_grad, bool need_m_grad) {
  const PartStatsGeometry g = check_part_stats_inputs(x, y, m, eps);
  check_part_stats_backward_inputs(grad_stats, grad_msum, x, stats, msum, g);
  const at::ScalarType acc = part_stats_acc_type(x.scalar_type());
  // The per-part tensors are tiny: make them contiguous in the accumulation type.
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
  if (g.n == 0 || g.hw == 0) return {dx, dy, dm};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "part_stats_backward_cpu", [&] {
    part_stats_backward_cpu_impl<scalar_t>(g, gs, gms, st, ms, xc, yc, mc, dx, dy, dm, eps,
                                           need_x_grad, need_y_grad, need_m_grad);
  });
  return {dx, dy, dm};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CPU, m) {
  m.impl("part_stats", &part_stats_cpu);
  m.impl("part_stats_backward", &part_stats_backward_cpu);
}

}  // namespace fastpose
