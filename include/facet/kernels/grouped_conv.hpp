// facet: convolution of any geometry (groups, kernel size, stride, padding, dilation) on NHWC
// feature maps, xsimd.
//
// The dense kernel's register tile (conv_nhwc.hpp), per block of 16 output channels: P output
// pixels x the block's vectors stay in registers; for each tap and each input channel the block
// reads (grouped_conv_weights.hpp), the block's weight vectors are loaded once and each pixel's
// input value is broadcast into them. Padding may be wider than the one-pixel zero ring, so taps
// are bounds-checked: a tap row outside the input is skipped for the whole tile, and columns are
// checked only for the few output pixels near the left and right edges, which run one at a time.
#pragma once
#include <algorithm>

#include "grouped_conv_weights.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Vectors per 16-channel block, and the pixels of a tile: accumulators, the block's weights and
// one broadcast must fit the register file (32 registers with AVX-512, 16 otherwise).
template <class Arch>
constexpr int kBlockVectors = kChannelAlign / static_cast<int>(Batch<Arch>::size);
template <class Arch>
constexpr int kGroupedTilePixels =
    std::min(8, ((std::is_same<Arch, xsimd::avx512f>::value ? 32 : 16) - kBlockVectors<Arch> - 1) / kBlockVectors<Arch>);

// Output pixels (oy, ox .. ox + P) of channel block `block`. CheckColumns: test each tap's column
// (pixels near the left and right edges); otherwise every tap column is inside the input.
template <class Arch, int P, bool CheckColumns>
inline void grouped_conv_tile(const FeatureMap& in, const PackedGroupedConv& w, int block, int oy, int ox,
                              const FeatureMap& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size, V = kBlockVectors<Arch>;
    const ConvGeometry& g = w.geometry;
    const int first = w.block_first[block], count = w.block_count[block];
    const float* block_weights = w.weights.get() + w.block_offset[block];

    B acc[P][V];
    for (int v = 0; v < V; ++v) {
        const B b = B::load_aligned(w.bias.get() + block * kChannelAlign + v * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    const std::ptrdiff_t pixel_step = static_cast<std::ptrdiff_t>(g.stride_w) * in.cstride;
    for (int ky = 0; ky < g.kernel_h; ++ky) {
        const int iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
        if (iy < 0 || iy >= in.h) continue;
        for (int kx = 0; kx < g.kernel_w; ++kx) {
            const int ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
            if (CheckColumns && (ix < 0 || ix >= in.w)) continue;
            const float* src = in.at(iy, ix) + first;
            const float* wt = block_weights + static_cast<std::ptrdiff_t>(ky * g.kernel_w + kx) * count * kChannelAlign;
            for (int ci = 0; ci < count; ++ci, wt += kChannelAlign) {
                B wv[V];
                for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + v * N);
                for (int p = 0; p < P; ++p) {
                    const B x(src[p * pixel_step + ci]);
                    for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(x, wv[v], acc[p][v]);
                }
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        float* dst = out.at(oy, ox + p) + block * kChannelAlign;
        for (int v = 0; v < V; ++v)
            activate<Arch>(acc[p][v], w.epilogue, block * kChannelAlign + v * N).store_unaligned(dst + v * N);
    }
}

// out = epilogue(conv(in) + bias) with w's geometry. in.c == w.cin; out is
// geometry.out_h(in.h) x geometry.out_w(in.w) x w.cout with a channel stride of at least cout_pad.
template <class Arch>
void grouped_conv_nhwc(const FeatureMap& in, const PackedGroupedConv& w, const FeatureMap& out, int threads) {
    constexpr int P = kGroupedTilePixels<Arch>;
    const ConvGeometry& g = w.geometry;
    // Output columns whose every tap column lies inside the input: [inner_begin, inner_end).
    const int reach = (g.kernel_w - 1) * g.dilation_w;
    const int inner_begin = std::min(out.w, (g.pad_left + g.stride_w - 1) / g.stride_w);
    const int last_inside = in.w - 1 - reach + g.pad_left; // ox * stride_w must not exceed it
    const int inner_end = last_inside < 0 ? inner_begin : std::clamp(last_inside / g.stride_w + 1, inner_begin, out.w);
    const int blocks = w.cout_pad / kChannelAlign;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        for (int block = 0; block < blocks; ++block) {
            int ox = 0;
            for (; ox < inner_begin; ++ox) grouped_conv_tile<Arch, 1, true>(in, w, block, oy, ox, out);
            for (; ox + P <= inner_end; ox += P) grouped_conv_tile<Arch, P, false>(in, w, block, oy, ox, out);
            for (; ox < inner_end; ++ox) grouped_conv_tile<Arch, 1, false>(in, w, block, oy, ox, out);
            for (; ox < out.w; ++ox) grouped_conv_tile<Arch, 1, true>(in, w, block, oy, ox, out);
        }
    });
}

} // namespace
} // namespace facet::simd
