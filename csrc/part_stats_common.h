// Host-side argument validation of fastpose::part_stats(_backward), shared by
// the CPU and CUDA entry points so both reject bad input with the same messages.
#pragma once

#include <ATen/ATen.h>

#include "part_stats_math.h"

namespace fastpose {

struct PartStatsGeometry {
  int64_t n, c, h, w;  // images [N, C, H, W]
  int64_t k;           // masks [N, K, H, W]
  int64_t hw;          // pixels per plane
  int64_t chunks;      // partials per (n, k, c): ceil(hw / kChunk)
};

// dtype of stats and mask sums: the accumulation type (float for half inputs).
inline at::ScalarType part_stats_acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline PartStatsGeometry check_part_stats_inputs(const at::Tensor& x, const at::Tensor& y,
                                                 const at::Tensor& m, double eps) {
  TORCH_CHECK(x.dim() == 4, "part_stats: x must be [N, C, H, W], got shape ", x.sizes());
  TORCH_CHECK(y.sizes() == x.sizes(), "part_stats: y must have the shape of x ", x.sizes(),
              ", got ", y.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "part_stats: x must be a floating tensor, got ",
              x.scalar_type());
  TORCH_CHECK(y.scalar_type() == x.scalar_type(), "part_stats: x and y must share a dtype, got ",
              x.scalar_type(), " and ", y.scalar_type());
  TORCH_CHECK(m.dim() == 4 && m.size(0) == x.size(0) && m.size(2) == x.size(2) &&
                  m.size(3) == x.size(3),
              "part_stats: m must be [N, K, H, W] = [", x.size(0), ", K, ", x.size(2), ", ",
              x.size(3), "] to match x, got shape ", m.sizes());
  TORCH_CHECK(m.scalar_type() == x.scalar_type(), "part_stats: m must have the dtype of x (",
              x.scalar_type(), "), got ", m.scalar_type());
  TORCH_CHECK(y.device() == x.device() && m.device() == x.device(),
              "part_stats: x, y and m must be on one device, got ", x.device(), ", ", y.device(),
              " and ", m.device());
  TORCH_CHECK(eps > 0, "part_stats: eps must be positive, got ", eps);
  PartStatsGeometry g;
  g.n = x.size(0);
  g.c = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.k = m.size(1);
  g.hw = g.h * g.w;
  g.chunks = (g.hw + part_stats_math::kChunk - 1) / part_stats_math::kChunk;
  return g;
}

inline void check_part_stats_backward_inputs(const at::Tensor& grad_stats,
                                             const at::Tensor& grad_msum, const at::Tensor& x,
                                             const at::Tensor& stats, const at::Tensor& msum,
                                             const PartStatsGeometry& g) {
  namespace pm = part_stats_math;
  const at::ScalarType acc = part_stats_acc_type(x.scalar_type());
  TORCH_CHECK(stats.dim() == 4 && stats.size(0) == g.n && stats.size(1) == g.k &&
                  stats.size(2) == g.c && stats.size(3) == pm::kNumStats,
              "part_stats_backward: stats must be [", g.n, ", ", g.k, ", ", g.c, ", ",
              pm::kNumStats, "] (the first output of fastpose::part_stats), got ", stats.sizes());
  TORCH_CHECK(grad_stats.sizes() == stats.sizes(), "part_stats_backward: grad_stats must be ",
              stats.sizes(), ", got ", grad_stats.sizes());
  TORCH_CHECK(msum.dim() == 2 && msum.size(0) == g.n && msum.size(1) == g.k,
              "part_stats_backward: msum must be [", g.n, ", ", g.k, "], got ", msum.sizes());
  TORCH_CHECK(grad_msum.sizes() == msum.sizes(), "part_stats_backward: grad_msum must be ",
              msum.sizes(), ", got ", grad_msum.sizes());
  TORCH_CHECK(stats.scalar_type() == acc && msum.scalar_type() == acc,
              "part_stats_backward: stats and msum must be ", acc, ", got ", stats.scalar_type(),
              " and ", msum.scalar_type());
  TORCH_CHECK(at::isFloatingType(grad_stats.scalar_type()) &&
                  at::isFloatingType(grad_msum.scalar_type()),
              "part_stats_backward: grads must be floating, got ", grad_stats.scalar_type(),
              " and ", grad_msum.scalar_type());
  TORCH_CHECK(grad_stats.device() == x.device() && grad_msum.device() == x.device() &&
                  stats.device() == x.device() && msum.device() == x.device(),
              "part_stats_backward: all tensors must be on the device of x, ", x.device());
}

}  // namespace fastpose
