// CPU kernels of fastpose::region_avg_pool, fastpose::region_broadcast and
// their backward schemas.
//
// Label maps: one pass over each image's labels validates them and counts the
// areas. Pooling then streams the features once: a task takes kCh channels of
// one image and, per pixel, reads the label once and adds the kCh values into
// that region's bins (private to the task, so no atomics; several bin sets
// break the add-after-add dependency of runs of equal labels). Broadcasting
// is a table lookup per pixel. Every sum has a fixed order, so results do not
// depend on the thread count. The backward passes reuse the same two loops:
// pooling's backward is the lookup of grad / area, broadcasting's is the raw
// sum. Soft masks go through at::bmm (region_pool_common.h).
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

// The label map (contiguous) and the area (pixel count) of every (n, r).
struct Labels {
  at::Tensor map;               // [N, H, W], contiguous
  std::vector<int64_t> counts;  // [N * R]
};

// One pass over the labels per image: validates them (so the kernels below index with them
// unchecked) and counts the pixels of each region.
Labels read_labels(const char* op, const at::Tensor& seg, const RegionGeometry& g) {
  const int64_t P = g.pixels();
  Labels out;
  out.map = seg.contiguous();
  out.counts.assign(g.n * g.r, 0);
  std::vector<int64_t> bad_at(g.n, -1), bad_value(g.n, 0);
  dispatch_label_type(out.map.scalar_type(), [&](auto tag) {
    using label_t = decltype(tag);
    const label_t* lp = out.map.const_data_ptr<label_t>();
    at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const label_t* l = lp + n * P;
        int64_t* counts = out.counts.data() + n * g.r;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t label = static_cast<int64_t>(l[p]);
          if (!rm::label_ok(label, g.r)) {
            bad_at[n] = p;
            bad_value[n] = label;
            break;
          }
          ++counts[label];
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
// Pixels go round-robin to kSets bin sets, so consecutive pixels of one region (the common case)
// update different memory and the adds do not wait on each other; the sets are combined in a
// fixed order at the end. Labels were validated by read_labels, so they are used unchecked.
template <typename scalar_t, typename acc_t, typename label_t>
void sum_by_label(const scalar_t* x, const label_t* labels, const acc_t* area, const RegionGeometry& g,
                  scalar_t* out) {
  constexpr int kSets = 4;   // bin sets, round-robin over pixels
  constexpr int kCh = 4;     // channels per task sharing one label read
  const int64_t P = g.pixels(), R = g.r;
  const int64_t blocks = (g.c + kCh - 1) / kCh;
  at::parallel_for(0, g.n * blocks, std::max<int64_t>(1, plane_grain(P) / kCh), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> bins(kSets * R * kCh);
    acc_t* b = bins.data();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, c0 = (task % blocks) * kCh;
      const int64_t nch = std::min<int64_t>(kCh, g.c - c0);
      const label_t* lp = labels + n * P;
      const scalar_t* xp[kCh];
      for (int k = 0; k < kCh; ++k) xp[k] = x + (n * g.c + c0 + std::min<int64_t>(k, nch - 1)) * P;
      std::fill(bins.begin(), bins.end(), acc_t(0));
      int64_t p = 0;
      for (; p + kSets <= P; p += kSets) {
        _Pragma("GCC unroll 4")
        for (int s = 0; s < kSets; ++s) {
          acc_t* bb = b + (s * R + lp[p + s]) * kCh;
          _Pragma("GCC unroll 4")
          for (int k = 0; k < kCh; ++k) bb[k] += static_cast<acc_t>(xp[k][p + s]);
        }
      }
      for (int s = 0; p < P; ++p, ++s) {
        acc_t* bb = b + (s * R + lp[p]) * kCh;
        for (int k = 0; k < kCh; ++k) bb[k] += static_cast<acc_t>(xp[k][p]);
      }
      for (int64_t k = 0; k < nch; ++k) {
        for (int64_t r = 0; r < R; ++r) {
          const acc_t* t = b + r * kCh + k;
          const acc_t sum = (t[0] + t[R * kCh]) + (t[2 * R * kCh] + t[3 * R * kCh]);
          const acc_t value = area == nullptr ? sum : rm::finish_sum(sum, area[n * R + r], true);
          out[(n * R + r) * g.c + c0 + k] = static_cast<scalar_t>(value);
        }
      }
    }
  });
}

// out[n, c, p] = src[n, label(p), c], times 1 / area[n, label(p)] when `area` is given: a table
// lookup per pixel from a per-plane table of R values.
template <typename scalar_t, typename acc_t, typename label_t>
void gather_by_label(const scalar_t* src, const label_t* labels, const acc_t* area, const RegionGeometry& g,
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
      const label_t* lp = labels + n * P;
      const scalar_t* tp = table.data();
      scalar_t* op = out + plane * P;
      _Pragma("omp simd")
      for (int64_t p = 0; p < P; ++p) op[p] = tp[lp[p]];
    }
  });
}

at::Tensor areas_as(const Labels& lr, const RegionGeometry& g, at::ScalarType acc, const at::Tensor& like) {
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
  const Labels lr = read_labels(op, seg, g);
  const auto acc = region_acc_type(feat.scalar_type());
  at::Tensor area = areas_as(lr, g, acc, feat);
  at::Tensor codes = at::empty({g.n, g.r, g.c}, feat.options());
  const at::Tensor fc = feat.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(lr.map.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      sum_by_label<scalar_t, acc_t, label_t>(fc.const_data_ptr<scalar_t>(), lr.map.const_data_ptr<label_t>(),
                                             area.const_data_ptr<acc_t>(), g, codes.mutable_data_ptr<scalar_t>());
    });
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
  const Labels lr = read_labels(op, seg, g);
  at::Tensor dfeat = at::empty({g.n, g.c, g.h, g.w}, feat.options());
  const at::Tensor ac = area.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(lr.map.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      gather_by_label<scalar_t, acc_t, label_t>(gc.const_data_ptr<scalar_t>(), lr.map.const_data_ptr<label_t>(),
                                                ac.const_data_ptr<acc_t>(), g, dfeat.mutable_data_ptr<scalar_t>());
    });
  });
  return {dfeat, no_grad_output(feat)};
}

at::Tensor region_broadcast_cpu(const at::Tensor& codes, const at::Tensor& seg) {
  constexpr const char* op = "region_broadcast";
  const RegionGeometry g = check_broadcast_inputs(op, codes, seg);
  check_cpu(op, codes);
  if (!g.labels) return soft::broadcast(codes, seg, g);
  const Labels lr = read_labels(op, seg, g);
  at::Tensor out = at::empty({g.n, g.c, g.h, g.w}, codes.options());
  const at::Tensor cc = codes.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, codes.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(lr.map.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      gather_by_label<scalar_t, acc_t, label_t>(cc.const_data_ptr<scalar_t>(), lr.map.const_data_ptr<label_t>(),
                                                nullptr, g, out.mutable_data_ptr<scalar_t>());
    });
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
  const Labels lr = read_labels(op, seg, g);
  at::Tensor dcodes = at::empty({g.n, g.r, g.c}, codes.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, codes.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_label_type(lr.map.scalar_type(), [&](auto tag) {
      using label_t = decltype(tag);
      sum_by_label<scalar_t, acc_t, label_t>(gc.const_data_ptr<scalar_t>(), lr.map.const_data_ptr<label_t>(),
                                             nullptr, g, dcodes.mutable_data_ptr<scalar_t>());
    });
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
