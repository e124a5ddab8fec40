// facet: max-pool in ceil mode (k x k, stride s, no padding) on NHWC maps, float or uint8, xsimd.
//
// One channel vector at a time; each output pixel is the max over its window, which is clipped at
// the far edges: ceil mode pools the partial windows there (maxpool_size.hpp). The ring cannot
// stand in for the missing pixels, as it does for a conv's padding: the values pooled (PReLU
// outputs) may all be negative, and a uint8 map's ring holds its zero point, not its minimum.
//
// On a uint8 map (int8 layers, kernels/int8_layout.hpp) the pool is exact: quantisation is
// monotone, so the max of the bytes is the byte of the max, and the output keeps the input's scale
// and zero point. Bytes go 16 at a time (SSE2's pmaxub, on every instruction set): a uint8 map's
// channel stride is a multiple of kChannelAlign = 16 bytes, not of a wider register.
#pragma once
#include <emmintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "int8_layout.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// The vector a pool of Map (FeatureMap or QuantizedMap) steps over its channels with.
template <class Arch, class Map>
using PoolVector = std::conditional_t<std::is_same<Map, QuantizedMap>::value, xsimd::batch<std::uint8_t, xsimd::sse2>, Batch<Arch>>;

// The lane-wise max. xsimd 8.1 makes SSE2's unsigned byte max a compare emulated by sign flips and
// a select; pmaxub is one instruction (the uint8 pools on R-Net's and O-Net's maps took 1.3-1.5x
// the float pools' time with xsimd's).
template <class B>
inline B lane_max(const B& a, const B& b) {
    return xsimd::max(a, b);
}
inline xsimd::batch<std::uint8_t, xsimd::sse2> lane_max(const xsimd::batch<std::uint8_t, xsimd::sse2>& a,
                                                        const xsimd::batch<std::uint8_t, xsimd::sse2>& b) {
    return _mm_max_epu8(a, b);
}

// Output pixel (oy, ox), any window, the far edges' partial ones included.
template <class B, int K, int S, class Map>
inline void pool_window(const Map& in, const Map& out, int oy, int ox) {
    const int y0 = oy * S, y1 = std::min(y0 + K, in.h);
    const int x0 = ox * S, x1 = std::min(x0 + K, in.w);
    auto* dst = out.at(oy, ox);
    for (int ch = 0; ch < out.cstride; ch += B::size) {
        B m = B::load_unaligned(in.at(y0, x0) + ch);
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) m = lane_max(m, B::load_unaligned(in.at(y, x) + ch));
        m.store_unaligned(dst + ch);
    }
}

// Output pixels [0, count) of row oy, whose windows lie inside the map: one channel vector at a
// time along the row, each input column's max over the window's K rows taken once and kept for
// the next window where windows overlap (K > S), so a 3x3 stride-2 output costs 6 loads and 6
// maxes, not 9 and 8, and the loops over a window unroll (R-Net's and O-Net's 3x3 pools run
// 1.4-2.1x as fast in float as one window at a time did, 2.3-3.1x on uint8 maps; Zen 5).
template <class B, int K, int S, class Map>
inline void pool_inner_windows(const Map& in, const Map& out, int oy, int count) {
    static_assert(K >= S, "windows that skip input columns are not needed");
    const auto* top = in.at(oy * S, 0);
    auto* dst = out.at(oy, 0);
    for (int ch = 0; ch < out.cstride; ch += B::size) {
        const auto column_max = [&](int x) {
            const auto* p = top + static_cast<std::ptrdiff_t>(x) * in.cstride + ch;
            B m = B::load_unaligned(p);
            for (int dy = 1; dy < K; ++dy) m = lane_max(m, B::load_unaligned(p + static_cast<std::ptrdiff_t>(dy) * in.rstride));
            return m;
        };
        B columns[K]; // the window's column maxima, left to right
        for (int c = 0; c < K - S; ++c) columns[S + c] = column_max(c);
        for (int ox = 0; ox < count; ++ox) {
            for (int c = 0; c < K - S; ++c) columns[c] = columns[c + S]; // the previous window's last K - S
            for (int c = K - S; c < K; ++c) columns[c] = column_max(ox * S + c);
            B m = columns[0];
            for (int c = 1; c < K; ++c) m = lane_max(m, columns[c]);
            m.store_unaligned(dst + static_cast<std::ptrdiff_t>(ox) * out.cstride + ch);
        }
    }
}

// out must be maxpool_out_size(in, K, S) in each axis, with in's channel stride.
template <class Arch, int K, int S, class Map>
void maxpool_nhwc(const Map& in, const Map& out, int threads) {
    using B = PoolVector<Arch, Map>;
    const int inner_w = in.w < K ? 0 : std::min(out.w, (in.w - K) / S + 1); // windows inside the map's width
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const bool inner_row = oy * S + K <= in.h;
        if (inner_row) pool_inner_windows<B, K, S>(in, out, oy, inner_w);
        for (int ox = inner_row ? inner_w : 0; ox < out.w; ++ox) pool_window<B, K, S>(in, out, oy, ox);
    });
}

} // namespace
} // namespace facet::simd
