// facet: nearest-neighbour resampling of NHWC feature maps to another size, xsimd: on its own
// (an imported graph's Resize), or added onto the finer map (the FPN top-down step).
#pragma once
#include "lane_mask.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Calls combine(source vector, destination pointer) for every channel vector of every pixel of
// `to` (lanes [0, round_up(c, 16))), the source pixel being floor(d * from / to) in each axis, as
// the reference and PyTorch's F.interpolate(mode="nearest") with an explicit size. Lanes past the
// last channel come out zero.
template <class Arch, class Combine>
inline void for_each_nearest(const FeatureMap& from, const FeatureMap& to, int threads, Combine&& combine) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const int lanes = written_lanes(to.c);
    parallel_for<Arch>(0, to.h, threads, [&](int y) {
        const int sy = static_cast<int>(static_cast<long long>(y) * from.h / to.h);
        for (int x = 0; x < to.w; ++x) {
            const int sx = static_cast<int>(static_cast<long long>(x) * from.w / to.w);
            const float* src = from.at(sy, sx);
            float* dst = to.at(y, x);
            for (int ch = 0; ch < lanes; ch += N) combine(keep_lanes<Arch>(B::load_unaligned(src + ch), to.c - ch), dst + ch);
        }
    });
}

// fine += nearest up-sampling of coarse to fine's size.
template <class Arch>
void upsample_nearest_add_nhwc(const FeatureMap& coarse, const FeatureMap& fine, int threads) {
    for_each_nearest<Arch>(coarse, fine, threads, [](const Batch<Arch>& v, float* dst) {
        (Batch<Arch>::load_unaligned(dst) + v).store_unaligned(dst);
    });
}

// out = nearest resampling of in to out's size.
template <class Arch>
void resize_nearest_nhwc(const FeatureMap& in, const FeatureMap& out, int threads) {
    for_each_nearest<Arch>(in, out, threads, [](const Batch<Arch>& v, float* dst) { v.store_unaligned(dst); });
}

} // namespace
} // namespace facet::simd
