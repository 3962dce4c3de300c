// CPU kernels of fastpose::region_avg_pool, fastpose::region_broadcast and
// their backward schemas.
//
// Label maps: parsing maps are piecewise constant, so each image's label map
// is first cut into runs of equal labels over its flattened pixels (one pass
// over the labels, which also validates them and counts the areas). Every
// (n, c) plane is then processed run by run: pooling adds a contiguous
// (vectorised) sum per run into that region's accumulator; broadcasting fills
// each run with its region's value. Both are one streaming pass over the
// features, parallel over (n, c) planes; each plane is reduced by one thread in
// a fixed order, so results do not depend on the thread count and no atomics
// are used. Soft masks go through at::bmm (region_pool_common.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../region_pool_common.h"
#include "../region_pool_math.h"

namespace fastpose {
namespace {

namespace rm = region_math;

struct Run {
  int32_t start, len, label;
};

// Runs of equal labels of every image, and the area (pixel count) of every (n, r).
struct LabelRuns {
  std::vector<std::vector<Run>> runs;  // [N] runs covering the image's H*W pixels in order
  std::vector<int64_t> counts;         // [N * R]
};

LabelRuns label_runs(const char* op, const at::Tensor& seg_in, const RegionGeometry& g) {
  const at::Tensor seg = seg_in.contiguous();
  const int64_t P = g.pixels();
  LabelRuns out;
  out.runs.resize(g.n);
  out.counts.assign(g.n * g.r, 0);
  std::vector<int64_t> bad_at(g.n, -1), bad_value(g.n, 0);
  dispatch_label_type(seg.scalar_type(), [&](auto tag) {
    using label_t = decltype(tag);
    const label_t* lp = seg.const_data_ptr<label_t>();
    at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const label_t* l = lp + n * P;
        std::vector<Run>& runs = out.runs[n];
        int64_t* counts = out.counts.data() + n * g.r;
        int64_t p = 0;
        while (p < P) {
          const int64_t label = static_cast<int64_t>(l[p]);
          if (!rm::label_ok(label, g.r)) {
            bad_at[n] = p;
            bad_value[n] = label;
            break;
          }
          int64_t q = p + 1;
          while (q < P && l[q] == l[p]) ++q;
          runs.push_back({static_cast<int32_t>(p), static_cast<int32_t>(q - p), static_cast<int32_t>(label)});
          counts[label] += q - p;
          p = q;
        }
      }
    });
  });
  for (int64_t n = 0; n < g.n; ++n) {
    TORCH_CHECK(bad_at[n] < 0, op, ": seg has label ", bad_value[n], " at (n=", n, ", y=", bad_at[n] / g.w,
                ", x=", bad_at[n] % g.w, "), outside [0, num_regions=", g.r, ")");
  }
  return out;
}

// Planes per parallel task so that a task streams at least ~32k values.
int64_t plane_grain(int64_t pixels) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(pixels, 1)); }

// out[n, r, c] = (sum of x[n, c, p] over p labelled r), divided by the area when `area` is given.
template <typename scalar_t, typename acc_t>
void sum_by_label(const scalar_t* x, const LabelRuns& lr, const acc_t* area, const RegionGeometry& g,
                  scalar_t* out) {
  const int64_t P = g.pixels();
  at::parallel_for(0, g.n * g.c, plane_grain(P), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> bins(g.r);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.c, c = plane % g.c;
      const scalar_t* xp = x + plane * P;
      std::fill(bins.begin(), bins.end(), acc_t(0));
      for (const Run& run : lr.runs[n]) {
        const scalar_t* v = xp + run.start;
        acc_t s = 0;
        _Pragma("omp simd reduction(+:s)")
        for (int32_t i = 0; i < run.len; ++i) s += static_cast<acc_t>(v[i]);
        bins[run.label] += s;
      }
      for (int64_t r = 0; r < g.r; ++r) {
        const acc_t value = area == nullptr ? bins[r] : rm::finish_sum(bins[r], area[n * g.r + r], true);
        out[(n * g.r + r) * g.c + c] = static_cast<scalar_t>(value);
      }
    }
  });
}

// out[n, c, p] = src[n, label(p), c], times 1 / area[n, label(p)] when `area` is given.
template <typename scalar_t, typename acc_t>
void gather_by_label(const scalar_t* src, const LabelRuns& lr, const acc_t* area, const RegionGeometry& g,
                     scalar_t* out) {
  const int64_t P = g.pixels();
  at::parallel_for(0, g.n * g.c, plane_grain(P), [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> table(g.r);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.c, c = plane % g.c;
      const acc_t* an = area == nullptr ? nullptr : area + n * g.r;
      for (int64_t r = 0; r < g.r; ++r)
        table[r] = static_cast<scalar_t>(
            rm::gather_value(static_cast<acc_t>(src[(n * g.r + r) * g.c + c]), an, r));
      scalar_t* op = out + plane * P;
      for (const Run& run : lr.runs[n]) std::fill_n(op + run.start, run.len, table[run.label]);
    }
  });
}

at::Tensor areas_as(const LabelRuns& lr, const RegionGeometry& g, at::ScalarType acc, const at::Tensor& like) {
  at::Tensor area = at::empty({g.n, g.r}, like.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES(acc, "region_area", [&] {
    scalar_t* a = area.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < g.n * g.r; ++i) a[i] = static_cast<scalar_t>(lr.counts[i]);
  });
  return area;
}

void check_cpu(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), op, ": expected CPU tensors, got ", t.device());
}

std::tuple<at::Tensor, at::Tensor> region_avg_pool_cpu(const at::Tensor& feat, const at::Tensor& seg,
                                                       int64_t num_regions) {
  constexpr const char* op = "region_avg_pool";
  const RegionGeometry g = check_pool_inputs(op, feat, seg, num_regions);
  check_cpu(op, feat);
  if (!g.labels) return soft::pool(feat, seg);
  const LabelRuns lr = label_runs(op, seg, g);
  const auto acc = region_acc_type(feat.scalar_type());
  at::Tensor area = areas_as(lr, g, acc, feat);
  at::Tensor codes = at::empty({g.n, g.r, g.c}, feat.options());
  const at::Tensor fc = feat.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    sum_by_label<scalar_t, acc_t>(fc.const_data_ptr<scalar_t>(), lr, area.const_data_ptr<acc_t>(), g,
                                  codes.mutable_data_ptr<scalar_t>());
  });
  return {codes, area};
}

std::tuple<at::Tensor, at::Tensor> region_avg_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& feat,
                                                                const at::Tensor& seg, const at::Tensor& codes,
                                                                const at::Tensor& area, bool seg_grad) {
  constexpr const char* op = "region_avg_pool_backward";
  const RegionGeometry g = check_pool_backward_inputs(op, grad, feat, seg, codes, area, seg_grad);
  check_cpu(op, feat);
  const at::Tensor gc = grad.to(feat.scalar_type()).contiguous();
  if (!g.labels) return soft::pool_backward(gc, feat, seg, codes, area, seg_grad);
  const LabelRuns lr = label_runs(op, seg, g);
  at::Tensor dfeat = at::empty({g.n, g.c, g.h, g.w}, feat.options());
  const at::Tensor ac = area.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    gather_by_label<scalar_t, acc_t>(gc.const_data_ptr<scalar_t>(), lr, ac.const_data_ptr<acc_t>(), g,
                                     dfeat.mutable_data_ptr<scalar_t>());
  });
  return {dfeat, no_grad_output(feat)};
}

at::Tensor region_broadcast_cpu(const at::Tensor& codes, const at::Tensor& seg) {
  constexpr const char* op = "region_broadcast";
  const RegionGeometry g = check_broadcast_inputs(op, codes, seg);
  check_cpu(op, codes);
  if (!g.labels) return soft::broadcast(codes, seg, g);
  const LabelRuns lr = label_runs(op, seg, g);
  at::Tensor out = at::empty({g.n, g.c, g.h, g.w}, codes.options());
  const at::Tensor cc = codes.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, codes.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    gather_by_label<scalar_t, acc_t>(cc.const_data_ptr<scalar_t>(), lr, nullptr, g,
                                     out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> region_broadcast_backward_cpu(const at::Tensor& grad, const at::Tensor& codes,
                                                                 const at::Tensor& seg, bool seg_grad) {
  constexpr const char* op = "region_broadcast_backward";
  const RegionGeometry g = check_broadcast_inputs(op, codes, seg);
  check_cpu(op, codes);
  check_grad(op, "grad", grad, {g.n, g.c, g.h, g.w}, codes);
  TORCH_CHECK(!(seg_grad && g.labels), op, ": a label map has no gradient (seg_grad must be false)");
  const at::Tensor gc = grad.to(codes.scalar_type()).contiguous();
  if (!g.labels) return soft::broadcast_backward(gc, codes, seg, seg_grad);
  const LabelRuns lr = label_runs(op, seg, g);
  at::Tensor dcodes = at::empty({g.n, g.r, g.c}, codes.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, codes.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    sum_by_label<scalar_t, acc_t>(gc.const_data_ptr<scalar_t>(), lr, nullptr, g,
                                  dcodes.mutable_data_ptr<scalar_t>());
  });
  return {dcodes, no_grad_output(codes)};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CPU, m) {
  m.impl("region_avg_pool", &region_avg_pool_cpu);
  m.impl("region_avg_pool_backward", &region_avg_pool_backward_cpu);
  m.impl("region_broadcast", &region_broadcast_cpu);
  m.impl("region_broadcast_backward", &region_broadcast_backward_cpu);
}

}  // namespace fastpose
