// Row-streaming separable correlation with zero padding, for several channels
// at once. The SSIM forward (5 moments of x and y) and backward (5 derivative
// maps scaled by the upstream gradient) are each one such correlation
// followed by per-pixel math.
//
// Speed comes from (a) a compile-time window length for the common windows,
// so the tap loops unroll, and (b) fixed-width column blocks with buffers
// padded to whole blocks, so every inner loop is a full SIMD vector with no
// scalar remainder. Results beyond the true width are computed from zero
// padding and never emitted.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace fastpose {
namespace cpu {

// Windows above this many taps are rejected by the callers (fixed-size pointer tables).
constexpr int kMaxSeparableTaps = 255;

// Columns per block: one 64-byte vector of the accumulation type.
template <typename acc_t>
constexpr int64_t block_width() {
  return 64 / static_cast<int64_t>(sizeof(acc_t));
}

// A 64-byte SIMD vector through the GCC/Clang vector extension: the tap loops
// are written with it explicitly, because auto-vectorisers pick the wrong loop
// (gathers across taps) in this nest. It lowers to AVX-512, 2x AVX2 or 4x SSE.
template <typename acc_t>
struct Simd {
  typedef acc_t type __attribute__((vector_size(64)));
  static type load(const acc_t* p) {
    type v;
    std::memcpy(&v, p, sizeof(type));
    return v;
  }
  static void store(acc_t* p, type v) { std::memcpy(p, &v, sizeof(type)); }
};

// Correlates NCH source planes of size hi x wi with `taps` (odd length w; W > 0
// fixes it at compile time, W == 0 reads it from `w`) after zero-padding by
// `pad`, giving rows of an (hi + 2 pad - w + 1) x (wi + 2 pad - w + 1) output.
// Horizontal results of the last w source rows live in a ring buffer, so the
// memory per instance is O(w * wo).
template <typename acc_t, int NCH, int W>
class SeparableCorrelation {
 public:
  static constexpr int64_t B = block_width<acc_t>();
  using S = Simd<acc_t>;
  using V = typename S::type;

  SeparableCorrelation(const acc_t* taps, int w, int64_t hi, int64_t wi, int64_t pad)
      : taps_(taps), w_(W > 0 ? W : w), hi_(hi), wi_(wi), pad_(pad),
        wo_(wi + 2 * pad - w_ + 1), wo_pad_((wo_ + B - 1) / B * B),
        row_stride_(wo_pad_ + w_ - 1),
        row_(static_cast<size_t>(NCH) * row_stride_, acc_t(0)),
        ring_(static_cast<size_t>(NCH) * w_ * wo_pad_) {}

  int64_t out_width() const { return wo_; }

  // fill_row(s, acc_t* dst[NCH]) writes the wi values of source row s per channel.
  // emit(i, j0, const acc_t v[NCH][B]) receives columns j0 .. j0+B-1 of output
  // row i (columns >= out_width() are padding and must be ignored).
  template <typename FillRow, typename Emit>
  void run(int64_t r0, int64_t r1, FillRow&& fill_row, Emit&& emit) {
    const int w = W > 0 ? W : w_;
    for (int64_t s = r0 - pad_; s < r0 - pad_ + w - 1; ++s) horizontal(s, fill_row);
    const acc_t* rows[NCH][kMaxSeparableTaps];
    alignas(64) acc_t v[NCH][B];
    for (int64_t i = r0; i < r1; ++i) {
      horizontal(i - pad_ + w - 1, fill_row);
      const int64_t first = slot_of(i - pad_);
      for (int t = 0; t < w; ++t) {
        const int64_t slot = first + t < w ? first + t : first + t - w;
        for (int ch = 0; ch < NCH; ++ch)
          rows[ch][t] = ring_.data() + (static_cast<size_t>(ch) * w + slot) * wo_pad_;
      }
      for (int64_t j0 = 0; j0 < wo_pad_; j0 += B) {
        for (int ch = 0; ch < NCH; ++ch) {
          V acc = taps_[0] * S::load(rows[ch][0] + j0);
          for (int t = 1; t < w; ++t) acc += taps_[t] * S::load(rows[ch][t] + j0);
          S::store(v[ch], acc);
        }
        emit(i, j0, v);
      }
    }
  }

 private:
  int64_t slot_of(int64_t s) const {
    const int64_t w = W > 0 ? W : w_;
    return ((s % w) + w) % w;
  }

  acc_t* ring_row(int ch, int64_t s) {
    const int64_t w = W > 0 ? W : w_;
    return ring_.data() + (static_cast<size_t>(ch) * w + slot_of(s)) * wo_pad_;
  }

  template <typename FillRow>
  void horizontal(int64_t s, FillRow& fill_row) {
    const int w = W > 0 ? W : w_;
    if (s < 0 || s >= hi_) {
      for (int ch = 0; ch < NCH; ++ch) std::fill_n(ring_row(ch, s), wo_pad_, acc_t(0));
      return;
    }
    acc_t* dst[NCH];
    for (int ch = 0; ch < NCH; ++ch) dst[ch] = row_.data() + ch * row_stride_ + pad_;
    fill_row(s, dst);  // the zero padding around the wi values is never written
    for (int ch = 0; ch < NCH; ++ch) {
      const acc_t* src = row_.data() + ch * row_stride_;
      acc_t* out = ring_row(ch, s);
      for (int64_t j0 = 0; j0 < wo_pad_; j0 += B) {
        V acc = taps_[0] * S::load(src + j0);
        for (int t = 1; t < w; ++t) acc += taps_[t] * S::load(src + j0 + t);
        S::store(out + j0, acc);
      }
    }
  }

  const acc_t* taps_;
  int w_;
  int64_t hi_, wi_, pad_, wo_, wo_pad_, row_stride_;
  std::vector<acc_t> row_;   // zero-padded source row per channel (wi values at offset pad)
  std::vector<acc_t> ring_;  // horizontal results of the last w source rows, wo_pad wide
};

// Calls fn(std::integral_constant<int, W>) with W the compile-time window for
// the windows the models use (3..11 odd), or W = 0 (runtime length) otherwise.
template <typename Fn>
void dispatch_window(int64_t window, Fn&& fn) {
  switch (window) {
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    case 9: fn(std::integral_constant<int, 9>{}); break;
    case 11: fn(std::integral_constant<int, 11>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

// Splits `planes` independent planes of `rows` output rows into tasks so that
// two threads or more stay busy even when there are few planes (N*C small).
inline int64_t row_chunks_per_plane(int64_t planes, int64_t rows, int64_t nthreads, int64_t window) {
  if (planes >= 2 * nthreads) return 1;
  const int64_t want = (2 * nthreads + planes - 1) / planes;
  const int64_t most = std::max<int64_t>(1, rows / std::max<int64_t>(2 * window, 16));
  return std::max<int64_t>(1, std::min(want, most));
}

}  // namespace cpu
}  // namespace fastpose
