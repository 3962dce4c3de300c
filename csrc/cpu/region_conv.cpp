// CPU kernels of fastpose::region_conv and fastpose::region_conv_backward.
//
// One pass over each image's labels validates them and writes, per pixel, the table slots of its
// kh*kw taps (o * R + label, or a zero slot for taps in the padding; region_conv_math.h). Those
// int32 indices are then reused by every channel. A task takes kCh channels of one image and
// copies their table columns into a small channel-interleaved table (slot-major, kCh values per
// slot: one vector per slot, L1-resident), so that
//  * forward: per pixel, the kh*kw slot rows are added as kCh-wide vectors into a pixel-major
//    tile of kCh x kCh values, which one in-register transpose (lanes.h) turns into kCh rows of
//    the [N, C, H, W] output;
//  * backward: kCh x kCh tiles of the upstream gradient are transposed the other way, and each
//    pixel's kCh-vector is added into the kh*kw slot rows of the task's private bins (no atomics).
//    Consecutive pixels of one region hit the same rows, so pixels go round-robin to several bin
//    sets (breaking the store-to-load dependency of the repeated adds); the sets are combined in a
//    fixed order at the end.
// Every sum has a fixed order and tasks never share outputs, so results do not depend on the
// thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../region_conv_common.h"
#include "../region_conv_math.h"
#include "../region_pool_math.h"
#include "lanes.h"

namespace fastpose {
namespace {

namespace cm = region_conv_math;

// Channels per task: one 64-byte vector of float per table slot; also the pixels per layout tile.
constexpr int kCh = static_cast<int>(lanes::kLanes);
static_assert(lanes::kTile == lanes::kLanes, "tiles of kCh pixels");

// acc = sum over the taps of the slot rows of the kCh-wide table tb, in tap order.
template <typename acc_t>
inline void sum_rows(const acc_t* tb, const int32_t* slots, int64_t taps, acc_t* acc) {
  const acc_t* first = tb + static_cast<int64_t>(slots[0]) * kCh;
  for (int k = 0; k < kCh; ++k) acc[k] = first[k];
  for (int64_t o = 1; o < taps; ++o) {
    const acc_t* row = tb + static_cast<int64_t>(slots[o]) * kCh;
    for (int k = 0; k < kCh; ++k) acc[k] += row[k];
  }
}

// bins' slot rows += v, for every tap.
template <typename acc_t>
inline void add_to_rows(acc_t* bins, const int32_t* slots, int64_t taps, const acc_t* v) {
  for (int64_t o = 0; o < taps; ++o) {
    acc_t* row = bins + static_cast<int64_t>(slots[o]) * kCh;
    for (int k = 0; k < kCh; ++k) row[k] += v[k];
  }
}

#if defined(__AVX512F__)
// float: one 16-lane register per row (GCC would otherwise mix in gathers across the taps).
template <>
inline void sum_rows<float>(const float* tb, const int32_t* slots, int64_t taps, float* acc) {
  static_assert(kCh == 16, "the AVX-512 rows are 16 floats");
  __m512 a = _mm512_loadu_ps(tb + static_cast<int64_t>(slots[0]) * 16);
  for (int64_t o = 1; o < taps; ++o)
    a = _mm512_add_ps(a, _mm512_loadu_ps(tb + static_cast<int64_t>(slots[o]) * 16));
  _mm512_storeu_ps(acc, a);
}

template <>
inline void add_to_rows<float>(float* bins, const int32_t* slots, int64_t taps, const float* v) {
  const __m512 x = _mm512_loadu_ps(v);
  for (int64_t o = 0; o < taps; ++o) {
    float* row = bins + static_cast<int64_t>(slots[o]) * 16;
    _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), x));
  }
}

#endif

void check_cpu(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), op, ": expected CPU tensors, got ", t.device());
}

// idx[(n * P + p) * K + o] = the table slot tap o of pixel p reads in image n: o * R + label, or
// K * R (the zero slot) in the padding. Validates every label first, so the kernels index unchecked.
std::vector<int32_t> tap_slots(const char* op, const at::Tensor& seg, const ConvGeometry& g) {
  const int64_t P = g.pixels(), K = g.taps(), zero = g.slots();
  const at::Tensor map = seg.contiguous();
  std::vector<int32_t> idx(g.n * P * K);
  std::vector<int64_t> bad_at(g.n, -1), bad_value(g.n, 0);
  dispatch_label_type(map.scalar_type(), [&](auto tag) {
    using label_t = decltype(tag);
    const label_t* lp = map.const_data_ptr<label_t>();
    at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const label_t* l = lp + n * P;
        bool ok = true;
        for (int64_t p = 0; p < P && ok; ++p) {
          const int64_t label = static_cast<int64_t>(l[p]);
          if (!region_math::label_ok(label, g.r)) {
            bad_at[n] = p;
            bad_value[n] = label;
            ok = false;
          }
        }
        if (!ok) continue;
        int32_t* out = idx.data() + n * P * K;
        const int64_t ph = g.kh / 2, pw = g.kw / 2;
        for (int64_t y = 0; y < g.h; ++y) {
          const bool rows_inside = y >= ph && y + ph < g.h;
          for (int64_t x = 0; x < g.w; ++x) {
            int32_t* slots = out + (y * g.w + x) * K;
            if (rows_inside && x >= pw && x + pw < g.w) {  // every tap inside: no bounds tests
              const label_t* centre = l + y * g.w + x;
              for (int64_t i = 0; i < g.kh; ++i)
                for (int64_t j = 0; j < g.kw; ++j)
                  slots[i * g.kw + j] = static_cast<int32_t>(
                      cm::tap_slot(i * g.kw + j, static_cast<int64_t>(centre[(i - ph) * g.w + (j - pw)]), g.r));
              continue;
            }
            for (int64_t i = 0; i < g.kh; ++i) {
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t o = i * g.kw + j;
                const int64_t q = cm::tap_source(y, x, i, j, g.kh, g.kw, g.h, g.w);
                slots[o] = static_cast<int32_t>(q < 0 ? zero : cm::tap_slot(o, static_cast<int64_t>(l[q]), g.r));
              }
            }
          }
        }
      }
    });
  });
  for (int64_t n = 0; n < g.n; ++n) {
    TORCH_CHECK(bad_at[n] < 0, op, ": seg has label ", bad_value[n], " at (n=", n, ", y=", bad_at[n] / g.w,
                ", x=", bad_at[n] % g.w, "), outside [0, num_regions=", g.r, ")");
  }
  return idx;
}

// Tasks (image, channel block) per parallel chunk so that a chunk streams at least ~32k values.
int64_t task_grain(int64_t pixels) {
  return std::max<int64_t>(1, 32768 / (std::max<int64_t>(pixels, 1) * kCh));
}

// out[n, c, p] = sum_o table[n, slot(p, o), c] (the zero slot adds 0), taps summed in order.
// Per tile of kCh pixels: one kCh-wide sum per pixel into a pixel-major tile, transposed into kCh
// rows of the output planes.
template <typename scalar_t, typename acc_t, int K>
void gather_taps(const scalar_t* table, const int32_t* idx, const ConvGeometry& g, scalar_t* out) {
  const int64_t P = g.pixels(), taps = K > 0 ? K : g.taps(), S = g.slots(), C = g.c;
  const int64_t blocks = (C + kCh - 1) / kCh;
  at::parallel_for(0, g.n * blocks, task_grain(P), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> tbl((S + 1) * kCh);
    alignas(64) acc_t tile[kCh * kCh];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, c0 = (task % blocks) * kCh;
      const int64_t nch = std::min<int64_t>(kCh, C - c0);
      const scalar_t* tn = table + n * S * C + c0;
      for (int64_t s = 0; s < S; ++s) {
        acc_t* row = tbl.data() + s * kCh;
        for (int64_t k = 0; k < kCh; ++k) row[k] = k < nch ? static_cast<acc_t>(tn[s * C + k]) : acc_t(0);
      }
      std::fill(tbl.begin() + S * kCh, tbl.end(), acc_t(0));
      const acc_t* tb = tbl.data();
      const int32_t* in = idx + n * P * taps;
      for (int64_t p0 = 0; p0 < P; p0 += kCh) {
        const int64_t len = std::min<int64_t>(kCh, P - p0);
        for (int64_t t = 0; t < len; ++t) {
          sum_rows(tb, in + (p0 + t) * taps, taps, tile + t * kCh);
        }
        lanes::from_lanes(tile, P, nch, len, out + (n * C + c0) * P + p0);
      }
    }
  });
}

// Bin sets of the backward: enough to separate the repeated adds of a run of equal slots, few
// enough that the bins stay in L1 (with many taps a pixel's own adds already separate them).
int bin_sets(int64_t taps) { return taps == 1 ? 4 : (taps <= 9 ? 2 : 1); }

// dtable[n, s, c] = sum over (p, o) with slot(p, o) = s of grad[n, c, p]. Per tile of kCh pixels
// the kCh planes' values are transposed to one kCh-vector per pixel, then added to its slots' rows.
template <typename scalar_t, typename acc_t, int K>
void scatter_taps(const scalar_t* grad, const int32_t* idx, const ConvGeometry& g, scalar_t* dtable) {
  const int64_t P = g.pixels(), taps = K > 0 ? K : g.taps(), S = g.slots(), C = g.c;
  const int64_t blocks = (C + kCh - 1) / kCh;
  const int sets = bin_sets(taps);
  const int64_t set_size = (S + 1) * kCh;
  at::parallel_for(0, g.n * blocks, task_grain(P), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> bins(sets * set_size);
    alignas(64) acc_t tile[kCh * kCh];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, c0 = (task % blocks) * kCh;
      const int64_t nch = std::min<int64_t>(kCh, C - c0);
      // Channels past C read zeros; their bins are never written out.
      std::fill(bins.begin(), bins.end(), acc_t(0));
      const scalar_t* gn = grad + (n * C + c0) * P;
      const int32_t* in = idx + n * P * taps;
      int s = 0;
      for (int64_t p0 = 0; p0 < P; p0 += kCh) {
        const int64_t len = std::min<int64_t>(kCh, P - p0);
        lanes::to_lanes(gn + p0, P, nch, len, tile);
        for (int64_t t = 0; t < len; ++t) {
          add_to_rows(bins.data() + s * set_size, in + (p0 + t) * taps, taps, tile + t * kCh);
          s = s + 1 == sets ? 0 : s + 1;
        }
      }
      scalar_t* dn = dtable + n * S * C + c0;
      for (int64_t slot = 0; slot < S; ++slot) {
        for (int64_t k = 0; k < nch; ++k) {
          acc_t sum = bins[slot * kCh + k];
          for (int b = 1; b < sets; ++b) sum += bins[b * set_size + slot * kCh + k];
          dn[slot * C + k] = static_cast<scalar_t>(sum);
        }
      }
    }
  });
}

// Calls fn(std::integral_constant<int, K>) with the tap count compiled in for the common kernels
// (1x1, 3x3), 0 (a runtime count) otherwise.
template <typename Fn>
void dispatch_taps(int64_t taps, Fn&& fn) {
  if (taps == 1) {
    fn(std::integral_constant<int, 1>{});
  } else if (taps == 9) {
    fn(std::integral_constant<int, 9>{});
  } else {
    fn(std::integral_constant<int, 0>{});
  }
}

at::Tensor region_conv_cpu(const at::Tensor& table, const at::Tensor& seg, int64_t kh, int64_t kw) {
  constexpr const char* op = "region_conv";
  const ConvGeometry g = check_conv_inputs(op, table, seg, kh, kw);
  check_cpu(op, table);
  const std::vector<int32_t> idx = tap_slots(op, seg, g);
  at::Tensor out = at::empty({g.n, g.c, g.h, g.w}, table.options());
  if (out.numel() == 0) return out;
  const at::Tensor tc = table.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, table.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_taps(g.taps(), [&](auto k) {
      gather_taps<scalar_t, acc_t, decltype(k)::value>(tc.const_data_ptr<scalar_t>(), idx.data(), g,
                                                       out.mutable_data_ptr<scalar_t>());
    });
  });
  return out;
}

at::Tensor region_conv_backward_cpu(const at::Tensor& grad, const at::Tensor& seg, int64_t kh, int64_t kw,
                                    int64_t num_regions) {
  constexpr const char* op = "region_conv_backward";
  const ConvGeometry g = check_conv_backward_inputs(op, grad, seg, kh, kw, num_regions);
  check_cpu(op, grad);
  const std::vector<int32_t> idx = tap_slots(op, seg, g);
  at::Tensor dtable = at::empty({g.n, g.taps(), g.r, g.c}, grad.options());
  if (dtable.numel() == 0) return dtable;
  if (g.pixels() == 0) return dtable.zero_();
  const at::Tensor gc = grad.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_taps(g.taps(), [&](auto k) {
      scatter_taps<scalar_t, acc_t, decltype(k)::value>(gc.const_data_ptr<scalar_t>(), idx.data(), g,
                                                        dtable.mutable_data_ptr<scalar_t>());
    });
  });
  return dtable;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpose, CPU, m) {
  m.impl("region_conv", &region_conv_cpu);
  m.impl("region_conv_backward", &region_conv_backward_cpu);
}

}  // namespace fastpose
