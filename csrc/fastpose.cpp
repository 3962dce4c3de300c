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
}

// Importing fastpose._C runs the static initialisers above; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
