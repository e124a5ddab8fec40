// facet: max-pool in ceil mode (k x k, stride s, no padding) on NHWC feature maps, xsimd.
//
// One channel vector at a time; each output pixel is the max over its window, which is clipped at
// the far edges: ceil mode pools the partial windows there (maxpool_size.hpp). The zero ring
// cannot stand in for the missing pixels, as it does for a conv's padding: the values pooled
// (PReLU outputs) may all be negative.
#pragma once
#include <algorithm>

#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// out must be maxpool_out_size(in, K, S) in each axis, with in's channel stride.
template <class Arch, int K, int S>
void maxpool_nhwc(const FeatureMap& in, const FeatureMap& out, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const int y0 = oy * S, y1 = std::min(y0 + K, in.h);
        for (int ox = 0; ox < out.w; ++ox) {
            const int x0 = ox * S, x1 = std::min(x0 + K, in.w);
            float* dst = out.at(oy, ox);
            for (int ch = 0; ch < out.cstride; ch += N) {
                B m = B::load_unaligned(in.at(y0, x0) + ch);
                for (int y = y0; y < y1; ++y)
                    for (int x = x0; x < x1; ++x) m = xsimd::max(m, B::load_unaligned(in.at(y, x) + ch));
                m.store_unaligned(dst + ch);
            }
        }
    });
}

} // namespace
} // namespace facet::simd
