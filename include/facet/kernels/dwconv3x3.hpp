// facet: depthwise 3 x 3 convolution (stride 1 or 2) on NHWC feature maps, xsimd.
//
// One channel vector at a time, its 9 weights and bias held in registers across a whole output
// row; each output vector is 9 FMAs on loads from the three input rows, at stride 1 four outputs
// at a time so that neighbouring windows share their loads. Stride 2 is only a different pixel
// step, which is why the layout keeps channels innermost. In a network the kernel is bound by
// memory traffic more than by arithmetic.
#pragma once
#include <cstddef>

#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// P neighbouring outputs of one channel vector, from the three input rows: each input vector the
// block needs is loaded once and FMA'd into every output whose window holds it, so 4 outputs at
// stride 1 load 6 vectors a row instead of 12, and the 4 accumulators are independent chains
// (AVX-512, 32 x 120 x 160: 144 -> 131 us, now near the FMA throughput). Stride 2 keeps P = 1:
// there the kernel is bound by reading 4 inputs per output, and blocks of 4 measured 3-7% slower.
// `src` points at the block's first window (pixel -1 of it), `out` at its first output.
template <int S>
constexpr int kDwPixels = S == 1 ? 4 : 1;

template <class Arch, int S, int P>
inline void dwconv3x3_pixels(const float* const (&rows)[3], std::ptrdiff_t src, std::ptrdiff_t src_step,
                             const Batch<Arch> (&k)[9], const Batch<Arch>& bias, const Epilogue& epilogue, int channel,
                             float* out, std::ptrdiff_t dst_step) {
    using B = Batch<Arch>;
    constexpr int kColumns = S * (P - 1) + 3;
    B acc[P];
    for (int p = 0; p < P; ++p) acc[p] = bias;
    for (int ky = 0; ky < 3; ++ky)
        for (int col = 0; col < kColumns; ++col) {
            const B x = B::load_unaligned(rows[ky] + src + col * src_step);
            for (int p = 0; p < P; ++p) {
                const int kx = col - S * p; // this column's tap in output p's window, if any
                if (kx >= 0 && kx < 3) acc[p] = xsimd::fma(x, k[ky * 3 + kx], acc[p]);
            }
        }
    for (int p = 0; p < P; ++p) activate<Arch>(acc[p], epilogue, channel).store_unaligned(out + p * dst_step);
}

// One output row of out_w pixels at `dst` (pixels dst_step apart) from the three input rows
// above, at and below it; rows[ky] points at pixel -1 of its row (the zero padding), pixels
// src_step apart. One channel vector at a time, its 9 weights and bias held in registers across
// the row.
template <class Arch, int S>
inline void dwconv3x3_row(const float* const (&rows)[3], std::ptrdiff_t src_step, const PackedDepthwise& w, float* dst,
                          std::ptrdiff_t dst_step, int out_w) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    for (int v = 0; v < w.c_pad / N; ++v) {
        B k[9];
        for (int t = 0; t < 9; ++t) k[t] = B::load_aligned(w.weights.get() + t * w.c_pad + v * N);
        const B bias = B::load_aligned(w.bias.get() + v * N);
        const auto at = [&](int ox) { return static_cast<std::ptrdiff_t>(ox) * S * src_step + v * N; };
        int ox = 0;
        for (; ox + kDwPixels<S> <= out_w; ox += kDwPixels<S>)
            dwconv3x3_pixels<Arch, S, kDwPixels<S>>(rows, at(ox), src_step, k, bias, w.epilogue, v * N, dst + ox * dst_step + v * N, dst_step);
        for (; ox < out_w; ++ox)
            dwconv3x3_pixels<Arch, S, 1>(rows, at(ox), src_step, k, bias, w.epilogue, v * N, dst + ox * dst_step + v * N, dst_step);
    }
}

template <class Arch, int S>
void dwconv3x3_nhwc(const FeatureMap& in, const PackedDepthwise& w, const FeatureMap& out, int threads) {
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const float* const rows[3] = {in.at(oy * S - 1, -1), in.at(oy * S, -1), in.at(oy * S + 1, -1)};
        dwconv3x3_row<Arch, S>(rows, in.cstride, w, out.at(oy, 0), out.cstride, out.w);
    });
}

} // namespace
} // namespace facet::simd
