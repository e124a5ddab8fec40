// facet: depthwise 3 x 3 convolution (stride 1 or 2) on NHWC feature maps, xsimd.
//
// One channel vector at a time, its 9 weights and bias held in registers across a whole output
// row; each output vector is 9 FMAs on loads from the three input rows. Stride 2 is only a
// different pixel step, which is why the layout keeps channels innermost. The kernel is bound by
// memory traffic, not arithmetic.
#pragma once
#include <cstddef>

#include "simd.hpp"

namespace facet::simd {

// One output row of out_w pixels at `dst` (pixels dst_step apart) from the three input rows
// above, at and below it; rows[ky] points at pixel -1 of its row (the zero padding), pixels
// src_step apart.
template <class Arch, int S>
inline void dwconv3x3_row(const float* const (&rows)[3], std::ptrdiff_t src_step, const PackedDepthwise& w, float* dst,
                          std::ptrdiff_t dst_step, int out_w) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    for (int v = 0; v < w.c_pad / N; ++v) {
        B k[9];
        for (int t = 0; t < 9; ++t) k[t] = B::load_aligned(w.weights.get() + t * w.c_pad + v * N);
        const B bias = B::load_aligned(w.bias.get() + v * N);
        float* out = dst + v * N;
        for (int ox = 0; ox < out_w; ++ox, out += dst_step) {
            const std::ptrdiff_t x0 = static_cast<std::ptrdiff_t>(ox) * S * src_step + v * N;
            B acc = bias;
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) acc = xsimd::fma(B::load_unaligned(rows[ky] + x0 + kx * src_step), k[ky * 3 + kx], acc);
            activate<Arch>(acc, w.epilogue, v * N).store_unaligned(out);
        }
    }
}

template <class Arch, int S>
void dwconv3x3_nhwc(const FeatureMap& in, const PackedDepthwise& w, const FeatureMap& out, int threads) {
    parallel_for(0, out.h, threads, [&](int oy) {
        const float* const rows[3] = {in.at(oy * S - 1, -1), in.at(oy * S, -1), in.at(oy * S + 1, -1)};
        dwconv3x3_row<Arch, S>(rows, in.cstride, w, out.at(oy, 0), out.cstride, out.w);
    });
}

} // namespace facet::simd
