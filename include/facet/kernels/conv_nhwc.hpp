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
#include <cstddef>

#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// The register tile: P output pixels x V vectors of output channels from vec0 on.
template <class Arch, int P, int V>
struct ConvTile {
    using B = Batch<Arch>;
    static constexpr int N = B::size;
    B acc[P][V];

    explicit ConvTile(const PackedConv& w, int vec0) {
        for (int v = 0; v < V; ++v) {
            const B b = B::load_aligned(w.bias.get() + (vec0 + v) * N);
            for (int p = 0; p < P; ++p) acc[p][v] = b;
        }
    }

    // Adds one tap: input value ci of pixel p is src[p * pixel_step + ci * channel_step] (NHWC:
    // channel_step 1; channel-planar rows: pixel_step 1), its weights the V vectors at
    // wt + ci * w.cout_pad.
    void accumulate(const float* src, std::ptrdiff_t pixel_step, std::ptrdiff_t channel_step, int cin, const float* wt,
                    int cout_pad) {
        for (int ci = 0; ci < cin; ++ci, wt += cout_pad, src += channel_step) {
            B wv[V];
            for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + v * N);
            for (int p = 0; p < P; ++p) {
                const B x(src[p * pixel_step]);
                for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(x, wv[v], acc[p][v]);
            }
        }
    }

    // Stores pixel p's channels at dst + p * pixel_stride, after the epilogue.
    void store(const PackedConv& w, int vec0, float* dst, std::ptrdiff_t pixel_stride) const {
        for (int p = 0; p < P; ++p, dst += pixel_stride)
            for (int v = 0; v < V; ++v)
                activate<Arch>(acc[p][v], w.epilogue, (vec0 + v) * N).store_unaligned(dst + (vec0 + v) * N);
    }
};

template <class Arch, int K, int S, int P, int V>
inline void conv_tile(const FeatureMap& in, const PackedConv& w, int vec0, int oy, int ox, const FeatureMap& out) {
    constexpr int pad = (K - 1) / 2;
    ConvTile<Arch, P, V> tile(w, vec0);
    for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx)
            tile.accumulate(in.at(oy * S - pad + ky, ox * S - pad + kx), static_cast<std::ptrdiff_t>(S) * in.cstride, 1, w.cin,
                            w.weights.get() + static_cast<std::ptrdiff_t>(ky * K + kx) * w.cin * w.cout_pad + vec0 * Batch<Arch>::size,
                            w.cout_pad);
    tile.store(w, vec0, out.at(oy, ox), out.cstride);
}

// conv_tile<Arch, 3, 1, P, V> for an image's pixels (three floats a pixel, packed: MTCNN's first
// convs) on AVX-512. The generic tile broadcasts each input value once per output that reads it,
// 27 broadcasts a pixel: with one channel vector (P-Net's 10 outputs) one broadcast per FMA, and
// 7.7 ns a pixel whether the map fits L2 or not (Zen 5). Here a row's values are broadcast once each and FMA'd into the up to three
// outputs whose windows hold them (kx = 0, 1, 2), the row's 9 x V weight vectors in registers.
// Each output still adds its taps in (ky, kx, ci) order, the generic tile's: the same bits. (The
// weights and accumulators need AVX-512's 32 registers; with 16 they spill: SSE4.1 ran 1.2x
// slower than the generic tile, AVX2 no faster.) V is every output vector of the layer (conv_nhwc takes it for
// up to two), so the tile starts at channel 0.
template <class Arch, int P, int V>
inline void conv3x3_image_tile(const FeatureMap& in, const PackedConv& w, int oy, int ox, const FeatureMap& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size, C = 3;
    ConvTile<Arch, P, V> tile(w, 0);
    for (int ky = 0; ky < 3; ++ky) {
        const float* src = in.at(oy - 1 + ky, ox - 1);
        B wv[3][C][V]; // [kx][ci]
        for (int kx = 0; kx < 3; ++kx)
            for (int ci = 0; ci < C; ++ci)
                for (int v = 0; v < V; ++v)
                    wv[kx][ci][v] = B::load_aligned(w.weights.get() + static_cast<std::ptrdiff_t>((ky * 3 + kx) * C + ci) * w.cout_pad + v * N);
        // Unrolled whole, so that the accumulators stay registers (GCC's own limit leaves the
        // j loop rolled, the accumulators in memory indexed at run time: 3x slower).
#pragma GCC unroll 16
        for (int j = 0; j < P + 2; ++j) // input pixel j feeds outputs j - kx
#pragma GCC unroll 3
            for (int ci = 0; ci < C; ++ci) {
                const B x(src[j * C + ci]);
                for (int kx = 0; kx < 3; ++kx)
                    if (j - kx >= 0 && j - kx < P)
                        for (int v = 0; v < V; ++v) tile.acc[j - kx][v] = xsimd::fma(x, wv[kx][ci][v], tile.acc[j - kx][v]);
            }
    }
    tile.store(w, 0, out.at(oy, ox), out.cstride);
}

// Calls tile(std::integral_constant<int, P>{}, x) over a row of `width` pixels (or the Winograd
// GEMM's `width` rows of tiles): full kTilePixels tiles, then one narrower tile for the rest (a
// one-pixel tile would load V weight vectors per single broadcast).
template <class Tile>
inline void for_each_pixel_tile(int width, Tile&& tile) {
    static_assert(kTilePixels == 6, "the remainder switch below covers 1 to 5 pixels");
    int x = 0;
    for (; x + kTilePixels <= width; x += kTilePixels) tile(std::integral_constant<int, kTilePixels>{}, x);
    switch (width - x) {
    case 1: tile(std::integral_constant<int, 1>{}, x); break;
    case 2: tile(std::integral_constant<int, 2>{}, x); break;
    case 3: tile(std::integral_constant<int, 3>{}, x); break;
    case 4: tile(std::integral_constant<int, 4>{}, x); break;
    case 5: tile(std::integral_constant<int, 5>{}, x); break;
    default: break;
    }
}

// out = epilogue(conv_KxK_strideS(in) + bias). in.c == w.cin; out is (conv_out_size) x cout and
// may be a channel slice of a wider map as long as its first channel is vector aligned.
template <class Arch, int K, int S>
void conv_nhwc(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads) {
    constexpr int N = Batch<Arch>::size;
    const int vectors = w.cout_pad / N;
    constexpr bool image_tiles = K == 3 && S == 1 && std::is_same<Arch, xsimd::avx512f>::value;
    if (image_tiles && in.cstride == 3 && w.cin == 3 && vectors <= 2) {
        const auto rows = [&](auto width, auto tile_pixels) {
            constexpr int V = width, P = tile_pixels;
            parallel_for<Arch>(0, out.h, threads, [&](int oy) {
                int x = 0;
                for (; x + P <= out.w; x += P) conv3x3_image_tile<Arch, P, V>(in, w, oy, x, out);
                for_each_pixel_tile(out.w - x, [&](auto pixels, int ox) { conv3x3_image_tile<Arch, pixels, V>(in, w, oy, x + ox, out); });
            });
        };
        // One vector: 12 pixels, 12 FMA chains; two (R-Net's 28 outputs): 6, as 18 weights and 12
        // accumulators fill the registers.
        if (vectors == 1) rows(std::integral_constant<int, 1>{}, std::integral_constant<int, 2 * kTilePixels>{});
        else rows(std::integral_constant<int, 2>{}, std::integral_constant<int, kTilePixels>{});
        return;
    }
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        for_each_vector_block<Arch>(vectors, [&](auto width, int v) {
            for_each_pixel_tile(out.w, [&](auto pixels, int ox) { conv_tile<Arch, K, S, pixels, width>(in, w, v, oy, ox, out); });
        });
    });
}

} // namespace
} // namespace facet::simd
