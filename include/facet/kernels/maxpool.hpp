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

// out must be maxpool_out_size(in, K, S) in each axis, with in's channel stride.
template <class Arch, int K, int S, class Map>
void maxpool_nhwc(const Map& in, const Map& out, int threads) {
    using B = PoolVector<Arch, Map>;
    constexpr int N = B::size;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const int y0 = oy * S, y1 = std::min(y0 + K, in.h);
        for (int ox = 0; ox < out.w; ++ox) {
            const int x0 = ox * S, x1 = std::min(x0 + K, in.w);
            auto* dst = out.at(oy, ox);
            for (int ch = 0; ch < out.cstride; ch += N) {
                B m = B::load_unaligned(in.at(y0, x0) + ch);
                for (int y = y0; y < y1; ++y)
                    for (int x = x0; x < x1; ++x) m = lane_max(m, B::load_unaligned(in.at(y, x) + ch));
                m.store_unaligned(dst + ch);
            }
        }
    });
}

} // namespace
} // namespace facet::simd
