// facet: fine += nearest up-sampling of coarse to fine's exact size (the FPN top-down step), xsimd.
#pragma once
#include "simd.hpp"

namespace facet::simd {

// Source index floor(d * in / out), as the reference; both maps have the same channel stride.
template <class Arch>
void upsample_nearest_add_nhwc(const FeatureMap& coarse, const FeatureMap& fine, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    parallel_for(0, fine.h, threads, [&](int y) {
        const int sy = static_cast<int>(static_cast<long long>(y) * coarse.h / fine.h);
        for (int x = 0; x < fine.w; ++x) {
            const int sx = static_cast<int>(static_cast<long long>(x) * coarse.w / fine.w);
            const float* src = coarse.at(sy, sx);
            float* dst = fine.at(y, x);
            for (int ch = 0; ch < fine.cstride; ch += N)
                (B::load_unaligned(dst + ch) + B::load_unaligned(src + ch)).store_unaligned(dst + ch);
        }
    });
}

} // namespace facet::simd
