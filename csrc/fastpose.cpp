// The fastpose operator library: every schema is declared here, once.
// Backends register implementations in csrc/cpu/<op>.cpp and csrc/cuda/<op>.cu.
#include <Python.h>
#include <torch/library.h>

#include <sstream>
#include <string>

#ifndef FASTPOSE_CUDA_ARCHS
#define FASTPOSE_CUDA_ARCHS ""
#endif

namespace fastpose {

// JSON describing how this binary was built; read by fastpose._ext and `python -m fastpose.info`.
std::string build_info() {
  std::ostringstream s;
  s << "{";
#ifdef FASTPOSE_WITH_CUDA
  s << "\"cuda\": true, \"cuda_version\": \"" << FASTPOSE_CUDA_VERSION << "\", ";
  s << "\"cuda_archs\": \"" << FASTPOSE_CUDA_ARCHS << "\", ";
#else
  s << "\"cuda\": false, \"cuda_version\": null, \"cuda_archs\": null, ";
#endif
  s << "\"torch_version\": \"" << FASTPOSE_TORCH_VERSION << "\", ";
  s << "\"cxx_flags\": \"" << FASTPOSE_CXX_FLAGS << "\"";
  s << "}";
  return s.str();
}

}  // namespace fastpose

TORCH_LIBRARY(fastpose, m) {
  m.def("build_info() -> str", &fastpose::build_info);
  // SSIM map and, when need_grad, the per-pixel derivative maps [N, C, 5, Ho, Wo].
  m.def(
      "ssim(Tensor x, Tensor y, int window, float sigma, float c1, float c2, bool same_padding, "
      "bool need_grad) -> (Tensor, Tensor)");
  m.def(
      "ssim_backward(Tensor grad, Tensor x, Tensor y, Tensor dmaps, int window, float sigma, "
      "bool same_padding) -> (Tensor, Tensor)");
  // Mask-weighted moments per part: stats [N, K, C, 5] = (mu_x, mu_y, var_x, var_y, cov) with
  // w = m / (sum m + eps), and the mask sums [N, K]; both in the accumulation dtype.
  m.def("part_stats(Tensor x, Tensor y, Tensor m, float eps) -> (Tensor, Tensor)");
  // Gradients to x, y and m; each is an empty tensor unless its need_*_grad is set.
  m.def(
      "part_stats_backward(Tensor grad_stats, Tensor grad_msum, Tensor x, Tensor y, Tensor m, "
      "Tensor stats, Tensor msum, float eps, bool need_x_grad, bool need_y_grad, "
      "bool need_m_grad) -> (Tensor, Tensor, Tensor)");
  // SEAN region-wise average pooling: seg is a label map [N, H, W] (uint8/int32/int64) or masks
  // [N, R, H, W]; returns codes [N, R, C] and the region areas [N, R] (accumulation dtype).
  m.def("region_avg_pool(Tensor feat, Tensor seg, int num_regions) -> (Tensor, Tensor)");
  // Gradients to feat and, when seg_grad (soft masks only), to seg (else an empty tensor).
  m.def(
      "region_avg_pool_backward(Tensor grad, Tensor feat, Tensor seg, Tensor codes, Tensor area, "
      "bool seg_grad) -> (Tensor, Tensor)");
  // Broadcast of codes [N, R, C] to the pixels of each region: [N, C, H, W].
  m.def("region_broadcast(Tensor codes, Tensor seg) -> Tensor");
  m.def(
      "region_broadcast_backward(Tensor grad, Tensor codes, Tensor seg, bool seg_grad) -> "
      "(Tensor, Tensor)");
  // Thin-plate-spline grid [N, H, W, 2] from ctrl [N, K, 2]; target [K, 2] and kinv [K+3, K]
  // (first K columns of the inverse TPS system) describe the cached target layout.
  m.def(
      "tps_grid(Tensor ctrl, Tensor target, Tensor kinv, int height, int width, "
      "bool align_corners) -> Tensor");
  // Gradient of tps_grid to ctrl (the grid is linear in ctrl), [N, K, 2].
  m.def(
      "tps_grid_backward(Tensor grad, Tensor target, Tensor kinv, int height, int width, "
      "bool align_corners) -> Tensor");
  // Fused TPS warp: bilinear, zero-padded sampling of x [N, C, Hin, Win] at the TPS grid.
  m.def(
      "tps_warp(Tensor x, Tensor ctrl, Tensor target, Tensor kinv, int height, int width, "
      "bool align_corners) -> Tensor");
  // Gradients of tps_warp to x and to ctrl (empty tensors where not requested).
  m.def(
      "tps_warp_backward(Tensor grad, Tensor x, Tensor ctrl, Tensor target, Tensor kinv, "
      "bool align_corners, bool need_x, bool need_ctrl) -> (Tensor, Tensor)");
  // Convolution of a region-constant map (region_broadcast of codes, then a kh x kw 'same' conv)
  // from its tap table [N, kh*kw, R, C] (table[n, o, r, c] = sum_s weight[c, s, o] codes[n, r, s]):
  // out[n, c, p] = sum_o table[n, o, label(p + o), c], taps in the zero padding skipped; [N, C, H, W].
  m.def("region_conv(Tensor table, Tensor seg, int kh, int kw) -> Tensor");
  // Gradient to the table [N, kh*kw, R, C]: sum of grad over the pixels whose tap o reads region r.
  m.def("region_conv_backward(Tensor grad, Tensor seg, int kh, int kw, int num_regions) -> Tensor");
}

// Importing fastpose._C runs the static initialisers above; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
