// facet: dense k x k convolution (k = 1, 2 or 3; stride 1 or 2) on NHWC feature maps, xsimd.
//
// Direct convolution, no im2col: an output tile of P pixels x V channel vectors lives in registers;
// for each tap and each input channel, V weight vectors are loaded once and each of the P input
// values is broadcast and FMA'd into them. That is P x V FMAs for P + V loads, the ratio that made
// libfacedetection's pointwise conv 3.6x faster than one dot product per output channel. The same
// code is the pointwise (k = 1) GEMM: pixels are rows, input channels the reduction.
// Borders need no tests: the input's zero ring is the padding.
#pragma once
#include <algorithm>

#include "simd.hpp"

namespace facet::simd {

template <class Arch, int K, int S, int P, int V>
inline void conv_tile(const FeatureMap& in, const PackedConv& w, int vec0, int oy, int ox, const FeatureMap& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    constexpr int pad = (K - 1) / 2;
    const int cin = w.cin, cout_pad = w.cout_pad;

    B acc[P][V];
    for (int v = 0; v < V; ++v) {
        const B b = B::load_aligned(w.bias.get() + (vec0 + v) * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    for (int ky = 0; ky < K; ++ky) {
        for (int kx = 0; kx < K; ++kx) {
            const float* src = in.at(oy * S - pad + ky, ox * S - pad + kx);
            const float* wt = w.weights.get() + static_cast<std::ptrdiff_t>(ky * K + kx) * cin * cout_pad + vec0 * N;
            for (int ci = 0; ci < cin; ++ci, wt += cout_pad) {
                B wv[V];
                for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + v * N);
                for (int p = 0; p < P; ++p) {
                    const B x(src[static_cast<std::ptrdiff_t>(p) * S * in.cstride + ci]);
                    for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(x, wv[v], acc[p][v]);
                }
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        float* dst = out.at(oy, ox + p) + vec0 * N;
        for (int v = 0; v < V; ++v) activate<Arch>(acc[p][v], w.epilogue, (vec0 + v) * N).store_unaligned(dst + v * N);
    }
}

// One output row, channel vectors [vec0, vec0 + V): full P-pixel tiles, then one narrower tile for
// the rest of the row (a one-pixel tile would load V weight vectors per single broadcast).
template <class Arch, int K, int S, int V>
inline void conv_row_block(const FeatureMap& in, const PackedConv& w, int vec0, int oy, const FeatureMap& out) {
    static_assert(kTilePixels == 6, "the remainder switch below covers 1 to 5 pixels");
    int ox = 0;
    for (; ox + kTilePixels <= out.w; ox += kTilePixels) conv_tile<Arch, K, S, kTilePixels, V>(in, w, vec0, oy, ox, out);
    switch (out.w - ox) {
    case 1: conv_tile<Arch, K, S, 1, V>(in, w, vec0, oy, ox, out); break;
    case 2: conv_tile<Arch, K, S, 2, V>(in, w, vec0, oy, ox, out); break;
    case 3: conv_tile<Arch, K, S, 3, V>(in, w, vec0, oy, ox, out); break;
    case 4: conv_tile<Arch, K, S, 4, V>(in, w, vec0, oy, ox, out); break;
    case 5: conv_tile<Arch, K, S, 5, V>(in, w, vec0, oy, ox, out); break;
    default: break;
    }
}

// out = epilogue(conv_KxK_strideS(in) + bias). in.c == w.cin; out is (conv_out_size) x cout and
// may be a channel slice of a wider map as long as its first channel is vector aligned.
template <class Arch, int K, int S>
void conv_nhwc(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads) {
    constexpr int N = Batch<Arch>::size;
    const int vectors = w.cout_pad / N;
    parallel_for(0, out.h, threads, [&](int oy) {
        for_each_vector_block<Arch>(vectors, [&](auto width, int v) { conv_row_block<Arch, K, S, width>(in, w, v, oy, out); });
    });
}

} // namespace facet::simd
