// facet: average and max pooling with any window, stride and padding on NHWC feature maps, xsimd.
//
// Each output pixel reduces the input pixels its window covers, clipped to the input (padding is
// never read: max-pooling's padding is minus infinity, average-pooling's counts only through the
// divisor). Global pooling is the window of the whole map. The window's pixels are the inner
// loop and a run of up to kPoolVectors channel vectors the accumulators, so each input pixel's
// channels are read as one contiguous span. Lanes past the last channel are written as zeros
// (lane_mask.hpp).
#pragma once
#include <algorithm>
#include <limits>

#include "lane_mask.hpp"
#include "pool_geometry.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

constexpr int kPoolVectors = 8;

// The input rows (or columns) [begin, end) of window `o`, and its size clipped to the padded input.
struct PoolSpan {
    int begin, end, padded;
};
inline PoolSpan pool_span(int o, int stride, int pad_begin, int pad_end, int kernel, int size) {
    const int start = o * stride - pad_begin, stop = std::min(start + kernel, size + pad_end);
    return {std::max(start, 0), std::min(stop, size), stop - start};
}

template <class Arch, bool Max>
void pool2d_nhwc(const FeatureMap& in, const PoolGeometry& g, const FeatureMap& out, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const int vectors = written_lanes(out.c) / N;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const PoolSpan rows = pool_span(oy, g.stride_h, g.pad_top, g.pad_bottom, g.kernel_h, in.h);
        for (int ox = 0; ox < out.w; ++ox) {
            const PoolSpan cols = pool_span(ox, g.stride_w, g.pad_left, g.pad_right, g.kernel_w, in.w);
            const long long divisor = g.count_include_pad ? static_cast<long long>(rows.padded) * cols.padded
                                                          : static_cast<long long>(rows.end - rows.begin) * (cols.end - cols.begin);
            const B scale(1.0f / static_cast<float>(divisor));
            float* dst = out.at(oy, ox);
            for (int v0 = 0; v0 < vectors; v0 += kPoolVectors) {
                const int count = std::min(kPoolVectors, vectors - v0);
                B acc[kPoolVectors];
                for (int v = 0; v < count; ++v) acc[v] = B(Max ? -std::numeric_limits<float>::infinity() : 0.0f);
                for (int y = rows.begin; y < rows.end; ++y)
                    for (int x = cols.begin; x < cols.end; ++x) {
                        const float* src = in.at(y, x) + v0 * N;
                        for (int v = 0; v < count; ++v)
                            acc[v] = Max ? xsimd::max(acc[v], B::load_unaligned(src + v * N)) : acc[v] + B::load_unaligned(src + v * N);
                    }
                for (int v = 0; v < count; ++v)
                    keep_lanes<Arch>(Max ? acc[v] : acc[v] * scale, out.c - (v0 + v) * N).store_unaligned(dst + (v0 + v) * N);
            }
        }
    });
}

// out = average pooling of in (out has in's channels).
template <class Arch>
void avg_pool2d_nhwc(const FeatureMap& in, const PoolGeometry& g, const FeatureMap& out, int threads) {
    pool2d_nhwc<Arch, false>(in, g, out, threads);
}

// out = max pooling of in.
template <class Arch>
void max_pool2d_nhwc(const FeatureMap& in, const PoolGeometry& g, const FeatureMap& out, int threads) {
    pool2d_nhwc<Arch, true>(in, g, out, threads);
}

} // namespace
} // namespace facet::simd
