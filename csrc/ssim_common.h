// Host-side argument validation and shape logic of the ssim op, shared by the
// CPU and CUDA entry points so both reject bad input with the same messages.
#pragma once

#include <ATen/ATen.h>

#include "ssim_math.h"

namespace fastpose {

struct SsimGeometry {
  int64_t n, c, h, w;    // input [N, C, H, W]
  int64_t ho, wo;        // map [N, C, Ho, Wo]
  int64_t pad;           // zero padding of the forward correlation
};

inline SsimGeometry check_ssim_inputs(const at::Tensor& x, const at::Tensor& y, int64_t window,
                                      double sigma, bool same_padding) {
  TORCH_CHECK(x.dim() == 4, "ssim: x must be [N, C, H, W], got shape ", x.sizes());
  TORCH_CHECK(y.sizes() == x.sizes(), "ssim: y must have the shape of x ", x.sizes(), ", got ",
              y.sizes());
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "ssim: x and y must share a dtype, got ",
              x.scalar_type(), " and ", y.scalar_type());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "ssim: x must be a floating tensor, got ",
              x.scalar_type());
  TORCH_CHECK(x.device() == y.device(), "ssim: x and y must be on one device, got ", x.device(),
              " and ", y.device());
  TORCH_CHECK(window >= 1 && window % 2 == 1, "ssim: window must be a positive odd integer, got ",
              window);
  TORCH_CHECK(sigma > 0, "ssim: sigma must be positive, got ", sigma);
  SsimGeometry g;
  g.n = x.size(0);
  g.c = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  TORCH_CHECK(window <= g.h && window <= g.w, "ssim: window ", window,
              " is larger than the image (H=", g.h, ", W=", g.w, ")");
  g.pad = same_padding ? window / 2 : 0;
  g.ho = g.h + 2 * g.pad - window + 1;
  g.wo = g.w + 2 * g.pad - window + 1;
  return g;
}

// dtype of the stored derivative maps: the accumulation type (float for half inputs).
inline at::ScalarType ssim_acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_ssim_backward_inputs(const at::Tensor& grad, const at::Tensor& x,
                                       const at::Tensor& dmaps, const SsimGeometry& g) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == g.n && grad.size(1) == g.c &&
                  grad.size(2) == g.ho && grad.size(3) == g.wo,
              "ssim_backward: grad must be [", g.n, ", ", g.c, ", ", g.ho, ", ", g.wo, "], got ",
              grad.sizes());
  TORCH_CHECK(dmaps.dim() == 5 && dmaps.size(0) == g.n && dmaps.size(1) == g.c &&
                  dmaps.size(2) == ssim_math::kNumDerivMaps && dmaps.size(3) == g.ho &&
                  dmaps.size(4) == g.wo,
              "ssim_backward: dmaps must be [", g.n, ", ", g.c, ", ", ssim_math::kNumDerivMaps, ", ",
              g.ho, ", ", g.wo,
              "] (the second output of fastpose::ssim with need_grad=True), got ", dmaps.sizes());
  TORCH_CHECK(grad.device() == x.device() && dmaps.device() == x.device(),
              "ssim_backward: grad, x and dmaps must be on one device");
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), "ssim_backward: grad must be floating, got ",
              grad.scalar_type());
  TORCH_CHECK(dmaps.scalar_type() == ssim_acc_type(x.scalar_type()), "ssim_backward: dmaps must be ",
              ssim_acc_type(x.scalar_type()), ", got ", dmaps.scalar_type());
}

}  // namespace fastpose
