// Channel-vector ("lane") building blocks shared by CPU kernels whose per-pixel work is the
// same for every channel (tps_warp on feature maps, region_conv).
//
// The planar layout [C][pixels] makes such kernels vectorise over pixels, where every tap is a
// gather and every scatter a scalar read-modify-write. A task instead holds kLanes channels
// pixel-major ([pixel][lane]): a tap is then one contiguous kLanes-wide load, a scatter one
// kLanes-wide add, and a per-pixel sum over channels a dot product over the lanes. The layout
// changes go through kTile x kLanes tiles and one in-register transpose.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// GCC 12 flags its own _mm512_undefined_ps() (inlined from the shuffle intrinsics) as
// (maybe-)uninitialized; the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace fastpose {
namespace lanes {

constexpr int64_t kLanes = 16;  // channels per task: one AVX-512 float vector
constexpr int64_t kTile = 16;   // pixels per layout-change tile

// A 64-byte aligned scratch array (its rows of kLanes floats are cache lines).
template <typename T>
class Buffer {
 public:
  void reserve(int64_t count) {
    if (count <= cap_) return;
    const size_t bytes = (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
    data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw std::bad_alloc();
    cap_ = count;
  }
  T* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  int64_t cap_ = 0;
};

#if defined(__AVX512F__)
// In-register transpose of 16 rows of 16 floats (r[i] holds row i; on return, column i).
__attribute__((always_inline)) inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // r[4b + j] now holds, in its 128-bit quarter L, column 4L + j of rows 4b..4b+3;
  // two rounds of quarter shuffles put the four quarters of column m in r[m].
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
  }
}
#endif

#if defined(__AVX512F__)
// The first n of 16 lanes (all for n >= 16).
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}
#endif

// dst[q * row + i] = src[i * stride + q] for q < count, i < lanes (row >= kLanes, the
// distance between the pixel-major rows; a multiple of kLanes); lanes beyond `lanes` are
// zero (their results are never stored). dst rows are 64-byte aligned.
template <typename scalar_t, typename acc_t>
void to_lanes(const scalar_t* src, int64_t stride, int64_t lanes, int64_t count, acc_t* dst,
              int64_t row = kLanes) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    static_assert(kLanes == 16 && kTile == 16, "one 16 x 16 register transpose per tile");
    for (int64_t q0 = 0; q0 < count; q0 += kTile) {
      const int64_t len = std::min(kTile, count - q0);
      const __mmask16 m = first_lanes(len);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        r[i] = i < lanes ? _mm512_maskz_loadu_ps(m, src + i * stride + q0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t q = 0; q < len; ++q) _mm512_store_ps(dst + (q0 + q) * row, r[q]);
    }
    return;
  }
#endif
  for (int64_t q = 0; q < count; ++q) {
    acc_t* d = dst + q * row;
    for (int64_t i = 0; i < lanes; ++i) d[i] = static_cast<acc_t>(src[i * stride + q]);
    for (int64_t i = lanes; i < kLanes; ++i) d[i] = acc_t(0);
  }
}

// The inverse: dst[i * stride + q] = src[q * row + i] for q < count, i < lanes.
template <typename scalar_t, typename acc_t>
void from_lanes(const acc_t* src, int64_t stride, int64_t lanes, int64_t count, scalar_t* dst,
                int64_t row = kLanes) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    for (int64_t q0 = 0; q0 < count; q0 += kTile) {
      const int64_t len = std::min(kTile, count - q0);
      __m512 r[16];
      for (int q = 0; q < 16; ++q) {
        r[q] = q < len ? _mm512_load_ps(src + (q0 + q) * row) : _mm512_setzero_ps();
      }
      transpose16(r);
      const __mmask16 m = first_lanes(len);
      for (int64_t i = 0; i < lanes; ++i) _mm512_mask_storeu_ps(dst + i * stride + q0, m, r[i]);
    }
    return;
  }
#endif
  for (int64_t i = 0; i < lanes; ++i) {
    scalar_t* d = dst + i * stride;
    for (int64_t q = 0; q < count; ++q) d[q] = static_cast<scalar_t>(src[q * row + i]);
  }
}

// out[q] = scale * (sum over the lanes of tile[q * kLanes + i]), for q < count <= kTile. A
// vectorised loop reducing one row at a time ends in a serial scalar sum of its lanes; a
// shuffle tree instead halves the lanes of pairs of rows and adds them, 16 rows -> 8 -> 4 ->
// 2 -> 1 vector of row sums: 30 shuffles and 15 adds (a full transpose takes 64 shuffles).
template <typename acc_t>
void lane_sums(const acc_t* tile, int64_t count, acc_t scale, acc_t* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<acc_t, float> && kTile == 16) {
    __m512 r[16];
    for (int q = 0; q < 16; ++q) r[q] = _mm512_load_ps(tile + q * kLanes);
    // Per 128-bit quarter, rows 2k and 2k+1: [r2k(0)+r2k(2), r2k+1(0)+r2k+1(2), (1)+(3), ...].
    for (int k = 0; k < 8; ++k) {
      r[k] = _mm512_add_ps(_mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]),
                           _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]));
    }
    // Per quarter, rows 4m..4m+3 each summed over the quarter.
    for (int m = 0; m < 4; ++m) {
      r[m] = _mm512_add_ps(_mm512_shuffle_ps(r[2 * m], r[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_ps(r[2 * m], r[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    // Quarters 0+1 and 2+3 of rows 0-7 (r[0]) and 8-15 (r[1]).
    for (int e = 0; e < 2; ++e) {
      r[e] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * e], r[2 * e + 1], 0x88),
                           _mm512_shuffle_f32x4(r[2 * e], r[2 * e + 1], 0xdd));
    }
    // Quarter j of the result holds rows 4j..4j+3: lane q is row q.
    const __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(r[0], r[1], 0x88),
                                   _mm512_shuffle_f32x4(r[0], r[1], 0xdd));
    _mm512_mask_storeu_ps(out, first_lanes(count), _mm512_mul_ps(s, _mm512_set1_ps(scale)));
    return;
  }
#endif
  for (int64_t q = 0; q < count; ++q) {
    acc_t s = 0;
    for (int64_t i = 0; i < kLanes; ++i) s += tile[q * kLanes + i];
    out[q] = scale * s;
  }
}

// d[i] += w * g[i] for i < kWidth. The four taps of a sample may share a row (clamped
// rows), so each tap's update is its own loop: no two updates of one call are reordered.
template <int64_t kWidth = kLanes, typename acc_t>
inline void lane_axpy(acc_t* d, acc_t w, const acc_t* __restrict__ g) {
  _Pragma("omp simd")
  for (int64_t i = 0; i < kWidth; ++i) d[i] += w * g[i];
}

}  // namespace lanes
}  // namespace fastpose

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
