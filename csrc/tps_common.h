// Host-side argument validation of the tps ops, shared by the CPU and CUDA
// entry points so both reject bad input with the same messages.
#pragma once

#include <ATen/ATen.h>

namespace fastpose {

// Accumulation dtype: float64 stays float64, float32/float16/bfloat16 accumulate in float32.
inline at::ScalarType tps_acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

struct TpsGeometry {
  int64_t n;  // batch
  int64_t k;  // control points
  int64_t h, w;  // output size
};

// The target layout: target [K, 2] and kinv [K+3, K] (the first K columns of
// the inverse TPS system), in the accumulation dtype of `data_type`, on `device`.
// Returns K.
inline int64_t check_tps_layout(const char* op, const at::Tensor& target, const at::Tensor& kinv,
                                at::ScalarType data_type, const at::Device& device) {
  TORCH_CHECK(target.dim() == 2 && target.size(1) == 2, op, ": target must be [K, 2], got shape ",
              target.sizes());
  const int64_t k = target.size(0);
  TORCH_CHECK(k >= 3, op, ": a thin-plate spline needs at least 3 control points, got K=", k);
  TORCH_CHECK(kinv.dim() == 2 && kinv.size(0) == k + 3 && kinv.size(1) == k, op,
              ": kinv must be [K+3, K] = [", k + 3, ", ", k, "], got shape ", kinv.sizes());
  const at::ScalarType acc = tps_acc_type(data_type);
  TORCH_CHECK(target.scalar_type() == acc && kinv.scalar_type() == acc, op,
              ": target and kinv must be ", acc, " for ", data_type, " data, got ",
              target.scalar_type(), " and ", kinv.scalar_type());
  TORCH_CHECK(target.device() == device && kinv.device() == device, op,
              ": target and kinv must be on ", device, ", got ", target.device(), " and ",
              kinv.device());
  return k;
}

inline void check_tps_size(const char* op, int64_t height, int64_t width) {
  TORCH_CHECK(height >= 1 && width >= 1, op, ": size must be positive, got (", height, ", ", width,
              ")");
}

// ctrl [N, K, 2]: the source positions of the K target points.
inline TpsGeometry check_tps_ctrl(const char* op, const at::Tensor& ctrl, const at::Tensor& target,
                                  const at::Tensor& kinv, int64_t height, int64_t width) {
  TORCH_CHECK(ctrl.dim() == 3 && ctrl.size(2) == 2, op, ": ctrl must be [N, K, 2], got shape ",
              ctrl.sizes());
  TORCH_CHECK(at::isFloatingType(ctrl.scalar_type()), op, ": ctrl must be a floating tensor, got ",
              ctrl.scalar_type());
  const int64_t k = check_tps_layout(op, target, kinv, ctrl.scalar_type(), ctrl.device());
  TORCH_CHECK(ctrl.size(1) == k, op, ": ctrl must be [N, K, 2] with the layout's K=", k,
              ", got shape ", ctrl.sizes());
  check_tps_size(op, height, width);
  return TpsGeometry{ctrl.size(0), k, height, width};
}

// grad [N, H, W, 2] of tps_grid.
inline TpsGeometry check_tps_grid_grad(const char* op, const at::Tensor& grad,
                                       const at::Tensor& target, const at::Tensor& kinv,
                                       int64_t height, int64_t width) {
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": grad must be floating, got ",
              grad.scalar_type());
  const int64_t k = check_tps_layout(op, target, kinv, grad.scalar_type(), grad.device());
  check_tps_size(op, height, width);
  TORCH_CHECK(grad.dim() == 4 && grad.size(1) == height && grad.size(2) == width &&
                  grad.size(3) == 2,
              op, ": grad must be [N, ", height, ", ", width, ", 2], got shape ", grad.sizes());
  return TpsGeometry{grad.size(0), k, height, width};
}

inline void check_tps_image(const char* op, const at::Tensor& x, const at::Tensor& ctrl) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be [N, C, H, W], got shape ", x.sizes());
  TORCH_CHECK(x.size(0) == ctrl.size(0), op, ": x and ctrl must have the same batch size, got ",
              x.size(0), " and ", ctrl.size(0));
  TORCH_CHECK(x.size(2) >= 1 && x.size(3) >= 1, op, ": x must have a non-empty image, got shape ",
              x.sizes());
  TORCH_CHECK(x.size(2) * x.size(3) < (int64_t{1} << 31), op,
              ": an image plane of x must have fewer than 2^31 elements, got shape ", x.sizes());
  TORCH_CHECK(x.scalar_type() == ctrl.scalar_type(), op, ": x and ctrl must share a dtype, got ",
              x.scalar_type(), " and ", ctrl.scalar_type());
  TORCH_CHECK(x.device() == ctrl.device(), op, ": x and ctrl must be on one device, got ",
              x.device(), " and ", ctrl.device());
}

inline void check_tps_grad(const char* op, const at::Tensor& grad, at::IntArrayRef expected,
                           const at::Tensor& like) {
  TORCH_CHECK(grad.sizes() == expected, op, ": grad must be ", expected, ", got ", grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": grad must be floating, got ",
              grad.scalar_type());
  TORCH_CHECK(grad.device() == like.device(), op, ": grad must be on ", like.device(), ", got ",
              grad.device());
}

}  // namespace fastpose
