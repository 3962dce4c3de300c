// Host-side validation of fastpose::region_conv and its backward, shared by the CPU and CUDA
// entry points so both reject bad input with the same messages.
//
// The kernel-level op takes the tap table T [N, K, R, C] (K = kh * kw taps, R regions; see
// region_conv_math.h) and an integer label map seg [N, H, W] with values in [0, R); the output is
// [N, C, H, W]. A bias is not an argument: the Python composite adds it to the centre tap's rows
// of the table, which every output pixel reads exactly once (the centre is never in the padding).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "region_pool_common.h"

namespace fastpose {

struct ConvGeometry {
  int64_t n, c, h, w;  // output [N, C, H, W]
  int64_t kh, kw;      // kernel size (odd)
  int64_t r;           // number of regions
  int64_t taps() const { return kh * kw; }
  int64_t slots() const { return kh * kw * r; }  // table rows per image
  int64_t pixels() const { return h * w; }
};

inline void check_conv_kernel(const char* op, int64_t kh, int64_t kw) {
  TORCH_CHECK(kh >= 1 && kw >= 1 && kh % 2 == 1 && kw % 2 == 1, op,
              ": the kernel must have odd positive sizes (kh, kw) so that 'same' zero padding is symmetric, got (",
              kh, ", ", kw, ")");
}

// seg: an integer label map [N, H, W] on `like`'s device with N = n.
inline void check_conv_seg(const char* op, const at::Tensor& seg, const at::Tensor& like, const char* like_name,
                           int64_t n) {
  TORCH_CHECK(seg.device() == like.device(), op, ": ", like_name, " and seg must be on one device, got ",
              like.device(), " and ", seg.device());
  TORCH_CHECK(seg.dim() == 3, op, ": seg must be a label map [N, H, W], got shape ", seg.sizes());
  TORCH_CHECK(is_label_dtype(seg.scalar_type()), op, ": seg must be a uint8, int32 or int64 label map, got ",
              seg.scalar_type());
  TORCH_CHECK(seg.size(0) == n, op, ": seg must have N=", n, " like ", like_name, ", got shape ", seg.sizes());
  TORCH_CHECK(seg.size(1) * seg.size(2) < (int64_t(1) << 31), op,
              ": images of 2^31 pixels or more are not supported");
}

inline ConvGeometry check_conv_inputs(const char* op, const at::Tensor& table, const at::Tensor& seg, int64_t kh,
                                      int64_t kw) {
  check_conv_kernel(op, kh, kw);
  TORCH_CHECK(table.dim() == 4, op, ": table must be [N, kh*kw, R, C], got shape ", table.sizes());
  TORCH_CHECK(at::isFloatingType(table.scalar_type()), op, ": table must be a floating tensor, got ",
              table.scalar_type());
  TORCH_CHECK(table.size(1) == kh * kw, op, ": table must have kh*kw=", kh * kw, " taps in dim 1, got shape ",
              table.sizes());
  TORCH_CHECK(table.size(2) >= 1, op, ": table must have at least one region, got shape ", table.sizes());
  ConvGeometry g;
  g.n = table.size(0);
  g.c = table.size(3);
  g.kh = kh;
  g.kw = kw;
  g.r = table.size(2);
  check_conv_seg(op, seg, table, "table", g.n);
  g.h = seg.size(1);
  g.w = seg.size(2);
  // Slots are int32 indices on the CPU, with one extra zero slot for the padding.
  TORCH_CHECK(g.slots() < (int64_t(1) << 31) - 1, op, ": kh*kw*R must be below 2^31 - 1, got ", g.slots());
  return g;
}

// The backward: grad [N, C, H, W] is the output's gradient; R comes from num_regions.
inline ConvGeometry check_conv_backward_inputs(const char* op, const at::Tensor& grad, const at::Tensor& seg,
                                               int64_t kh, int64_t kw, int64_t num_regions) {
  check_conv_kernel(op, kh, kw);
  TORCH_CHECK(grad.dim() == 4, op, ": grad must be [N, C, H, W], got shape ", grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": grad must be a floating tensor, got ",
              grad.scalar_type());
  TORCH_CHECK(num_regions >= 1, op, ": num_regions must be at least 1, got ", num_regions);
  ConvGeometry g;
  g.n = grad.size(0);
  g.c = grad.size(1);
  g.h = grad.size(2);
  g.w = grad.size(3);
  g.kh = kh;
  g.kw = kw;
  g.r = num_regions;
  check_conv_seg(op, seg, grad, "grad", g.n);
  TORCH_CHECK(seg.size(1) == g.h && seg.size(2) == g.w, op, ": seg is ", seg.size(1), "x", seg.size(2),
              " but grad is ", g.h, "x", g.w, " (H x W)");
  TORCH_CHECK(g.slots() < (int64_t(1) << 31) - 1, op, ": kh*kw*R must be below 2^31 - 1, got ", g.slots());
  return g;
}

}  // namespace fastpose
