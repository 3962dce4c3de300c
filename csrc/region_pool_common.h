// Host-side validation of the SEAN region ops and their soft-mask path,
// shared by the CPU and CUDA entry points so both reject bad input with the
// same messages and compute soft masks identically.
//
// seg is either an integer label map [N, H, W] (uint8/int32/int64, values in
// [0, R)) -- the fast path, with hand-written kernels per backend -- or
// soft/one-hot masks [N, R, H, W] of the feature dtype, which make pooling a
// batched matrix product (codes = M F^T / area) and are computed with at::bmm.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>

namespace fastpose {

struct RegionGeometry {
  int64_t n, c, h, w;  // features / broadcast output [N, C, H, W]
  int64_t r;           // number of regions
  bool labels;         // seg is an integer label map (else soft masks)
  int64_t pixels() const { return h * w; }
};

inline bool is_label_dtype(at::ScalarType t) {
  return t == at::kByte || t == at::kInt || t == at::kLong;
}

// Accumulation dtype of the sums and of the area output: float64 stays float64, the rest float32.
inline at::ScalarType region_acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Checks seg against the values tensor (feat or codes) whose N, dtype and device it must share,
// and against the resolution (h, w) it must have; fills the seg-dependent part of g.
inline void check_region_seg(const char* op, const at::Tensor& seg, const at::Tensor& values,
                             const char* values_name, int64_t h, int64_t w, RegionGeometry& g) {
  TORCH_CHECK(seg.device() == values.device(), op, ": ", values_name, " and seg must be on one device, got ",
              values.device(), " and ", seg.device());
  if (seg.dim() == 3) {
    TORCH_CHECK(is_label_dtype(seg.scalar_type()), op,
                ": a label map seg [N, H, W] must be uint8, int32 or int64, got ", seg.scalar_type(),
                " (soft masks are [N, R, H, W] floating tensors)");
    g.labels = true;
  } else {
    TORCH_CHECK(seg.dim() == 4, op,
                ": seg must be a label map [N, H, W] or masks [N, R, H, W], got shape ", seg.sizes());
    TORCH_CHECK(seg.scalar_type() == values.scalar_type(), op, ": masks seg [N, R, H, W] must have the dtype of ",
                values_name, " (", values.scalar_type(), "), got ", seg.scalar_type());
    g.labels = false;
  }
  TORCH_CHECK(seg.size(0) == g.n, op, ": seg must have N=", g.n, " like ", values_name, ", got shape ",
              seg.sizes());
  const int64_t sh = seg.size(seg.dim() - 2), sw = seg.size(seg.dim() - 1);
  TORCH_CHECK(sh == h && sw == w, op, ": seg is ", sh, "x", sw, " but the features are ", h, "x", w,
              " (H x W); resize the label map first, e.g. fastpose.ops.resize_labels(seg, (", h, ", ", w,
              "))");
  TORCH_CHECK(sh * sw < (int64_t(1) << 31), op, ": images of 2^31 pixels or more are not supported");
}

inline RegionGeometry check_pool_inputs(const char* op, const at::Tensor& feat, const at::Tensor& seg,
                                        int64_t num_regions) {
  TORCH_CHECK(feat.dim() == 4, op, ": feat must be [N, C, H, W], got shape ", feat.sizes());
  TORCH_CHECK(at::isFloatingType(feat.scalar_type()), op, ": feat must be a floating tensor, got ",
              feat.scalar_type());
  RegionGeometry g;
  g.n = feat.size(0);
  g.c = feat.size(1);
  g.h = feat.size(2);
  g.w = feat.size(3);
  check_region_seg(op, seg, feat, "feat", g.h, g.w, g);
  TORCH_CHECK(num_regions >= 1, op, ": num_regions must be at least 1, got ", num_regions);
  if (!g.labels) {
    TORCH_CHECK(seg.size(1) == num_regions, op, ": masks seg have R=", seg.size(1),
                " regions but num_regions is ", num_regions);
  }
  g.r = num_regions;
  return g;
}

inline RegionGeometry check_broadcast_inputs(const char* op, const at::Tensor& codes, const at::Tensor& seg) {
  TORCH_CHECK(codes.dim() == 3, op, ": codes must be [N, R, C], got shape ", codes.sizes());
  TORCH_CHECK(at::isFloatingType(codes.scalar_type()), op, ": codes must be a floating tensor, got ",
              codes.scalar_type());
  TORCH_CHECK(seg.dim() == 3 || seg.dim() == 4, op,
              ": seg must be a label map [N, H, W] or masks [N, R, H, W], got shape ", seg.sizes());
  RegionGeometry g;
  g.n = codes.size(0);
  g.r = codes.size(1);
  g.c = codes.size(2);
  g.h = seg.size(seg.dim() - 2);
  g.w = seg.size(seg.dim() - 1);
  check_region_seg(op, seg, codes, "codes", g.h, g.w, g);
  TORCH_CHECK(g.r >= 1, op, ": codes must have at least one region, got shape ", codes.sizes());
  if (!g.labels) {
    TORCH_CHECK(seg.size(1) == g.r, op, ": masks seg have R=", seg.size(1), " regions but codes have R=", g.r);
  }
  return g;
}

// A gradient argument must have the shape of what it differentiates.
inline void check_grad(const char* op, const char* name, const at::Tensor& grad, at::IntArrayRef shape,
                       const at::Tensor& like) {
  TORCH_CHECK(grad.sizes() == shape, op, ": ", name, " must be ", shape, ", got ", grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": ", name, " must be floating, got ",
              grad.scalar_type());
  TORCH_CHECK(grad.device() == like.device(), op, ": ", name, " must be on ", like.device(), ", got ",
              grad.device());
}

inline void check_area(const char* op, const at::Tensor& area, const RegionGeometry& g,
                       at::ScalarType feat_type) {
  TORCH_CHECK(area.dim() == 2 && area.size(0) == g.n && area.size(1) == g.r, op, ": area must be [", g.n,
              ", ", g.r, "] (the second output of the forward), got ", area.sizes());
  TORCH_CHECK(area.scalar_type() == region_acc_type(feat_type), op, ": area must be ",
              region_acc_type(feat_type), ", got ", area.scalar_type());
}

// The backward of pooling: R comes from the saved codes [N, R, C]; grad must match them.
inline RegionGeometry check_pool_backward_inputs(const char* op, const at::Tensor& grad, const at::Tensor& feat,
                                                 const at::Tensor& seg, const at::Tensor& codes,
                                                 const at::Tensor& area, bool seg_grad) {
  TORCH_CHECK(codes.dim() == 3, op, ": codes must be [N, R, C] (the first output of the forward), got shape ",
              codes.sizes());
  const RegionGeometry g = check_pool_inputs(op, feat, seg, codes.size(1));
  check_grad(op, "codes", codes, {g.n, g.r, g.c}, feat);
  check_grad(op, "grad", grad, {g.n, g.r, g.c}, feat);
  check_area(op, area, g, feat.scalar_type());
  TORCH_CHECK(!(seg_grad && g.labels), op, ": a label map has no gradient (seg_grad must be false)");
  return g;
}

// An output that is not needed: empty, so the schema's return type stays fixed.
inline at::Tensor no_grad_output(const at::Tensor& like) { return at::empty({0}, like.options()); }

// Calls fn(label_t{}) for the label map's integer type.
template <typename Fn>
void dispatch_label_type(at::ScalarType t, Fn&& fn) {
  switch (t) {
    case at::kByte: fn(uint8_t{}); break;
    case at::kInt: fn(int32_t{}); break;
    case at::kLong: fn(int64_t{}); break;
    default: TORCH_CHECK(false, "fastpose region ops: unsupported label dtype ", t);
  }
}

// --- soft / one-hot masks: batched matrix products in the accumulation dtype -------------------

namespace soft {

// [N, K, H, W] -> [N, K, H*W] in dtype t (a view when it can be).
inline at::Tensor flat(const at::Tensor& x, at::ScalarType t) {
  return x.reshape({x.size(0), x.size(1), -1}).to(t);
}

// 1 / area, 0 for regions of total weight <= 0 (empty): [N, R]
inline at::Tensor inv_area(const at::Tensor& area) {
  return at::where(area > 0, area.reciprocal(), at::zeros({}, area.options()));
}

inline std::tuple<at::Tensor, at::Tensor> pool(const at::Tensor& feat, const at::Tensor& masks) {
  const auto acc = region_acc_type(feat.scalar_type());
  const at::Tensor m = flat(masks, acc), f = flat(feat, acc);
  const at::Tensor area = m.sum(2);
  const at::Tensor codes = at::bmm(m, f.transpose(1, 2)).mul_(inv_area(area).unsqueeze(2));
  return {codes.to(feat.scalar_type()), area};
}

// Gradients of pool: dfeat = M^T (g / area); dmasks[n,r,p] = sum_c (g/area)[n,r,c] (f[n,c,p] - code[n,r,c]).
inline std::tuple<at::Tensor, at::Tensor> pool_backward(const at::Tensor& grad, const at::Tensor& feat,
                                                        const at::Tensor& masks, const at::Tensor& codes,
                                                        const at::Tensor& area, bool seg_grad) {
  const auto acc = region_acc_type(feat.scalar_type());
  const at::Tensor m = flat(masks, acc), f = flat(feat, acc);
  const at::Tensor gs = grad.to(acc) * inv_area(area).unsqueeze(2);  // [N, R, C]
  const at::Tensor dfeat = at::bmm(gs.transpose(1, 2), m).view(feat.sizes()).to(feat.scalar_type());
  if (!seg_grad) return {dfeat, no_grad_output(feat)};
  const at::Tensor shift = (gs * codes.to(acc)).sum(2, /*keepdim=*/true);  // [N, R, 1]
  const at::Tensor dmasks = at::bmm(gs, f).sub_(shift).view(masks.sizes()).to(masks.scalar_type());
  return {dfeat, dmasks};
}

// out[n,c,p] = sum_r m[n,r,p] code[n,r,c]
inline at::Tensor broadcast(const at::Tensor& codes, const at::Tensor& masks, const RegionGeometry& g) {
  const auto acc = region_acc_type(codes.scalar_type());
  const at::Tensor m = flat(masks, acc);
  return at::bmm(codes.to(acc).transpose(1, 2), m).view({g.n, g.c, g.h, g.w}).to(codes.scalar_type());
}

inline std::tuple<at::Tensor, at::Tensor> broadcast_backward(const at::Tensor& grad, const at::Tensor& codes,
                                                             const at::Tensor& masks, bool seg_grad) {
  const auto acc = region_acc_type(codes.scalar_type());
  const at::Tensor m = flat(masks, acc), gr = flat(grad, acc);  // [N, R, P], [N, C, P]
  const at::Tensor dcodes = at::bmm(m, gr.transpose(1, 2)).to(codes.scalar_type());
  if (!seg_grad) return {dcodes, no_grad_output(codes)};
  const at::Tensor dmasks = at::bmm(codes.to(acc), gr).view(masks.sizes()).to(masks.scalar_type());
  return {dcodes, dmasks};
}

}  // namespace soft
}  // namespace fastpose
