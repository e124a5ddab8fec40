// facet: depthwise 3 x 3 convolution (stride 1 or 2) on NHWC feature maps, xsimd.
//
// One channel vector at a time, its 9 weights and bias held in registers across a whole output
// row; each output vector is 9 FMAs on loads from the three input rows. Stride 2 is only a
// different pixel step, which is why the layout keeps channels innermost. The kernel is bound by
// memory traffic, not arithmetic.
#pragma once
#include "simd.hpp"

namespace facet::simd {

template <class Arch, int S>
void dwconv3x3_nhwc(const FeatureMap& in, const PackedDepthwise& w, const FeatureMap& out, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const int vectors = w.c_pad / N;
    parallel_for(0, out.h, threads, [&](int oy) {
        for (int v = 0; v < vectors; ++v) {
            B k[9];
            for (int t = 0; t < 9; ++t) k[t] = B::load_aligned(w.weights.get() + t * w.c_pad + v * N);
            const B bias = B::load_aligned(w.bias.get() + v * N);
            const float* rows[3] = {in.at(oy * S - 1, -1) + v * N, in.at(oy * S, -1) + v * N, in.at(oy * S + 1, -1) + v * N};
            float* dst = out.at(oy, 0) + v * N;
            for (int ox = 0; ox < out.w; ++ox, dst += out.cstride) {
                const std::ptrdiff_t x0 = static_cast<std::ptrdiff_t>(ox) * S * in.cstride;
                B acc = bias;
                for (int ky = 0; ky < 3; ++ky)
                    for (int kx = 0; kx < 3; ++kx)
                        acc = xsimd::fma(B::load_unaligned(rows[ky] + x0 + kx * in.cstride), k[ky * 3 + kx], acc);
                activate<Arch>(acc, w.epilogue, v * N).store_unaligned(dst);
            }
        }
    });
}

} // namespace facet::simd
