// facet: pointwise (1x1) convolution with bf16 weights and activations, float32 accumulation
// (AVX512-BF16 `vdpbf16ps`, gemm_bf16.hpp).
//
// The weights are packed once at load (conv_weights_bf16.hpp). The activations are float32 maps
// like every other layer's: each output row first converts its input row to bf16 pairs (one
// `vcvtneps2bf16` per 16 channels of a pixel) into a per-thread panel that stays in L1, which every
// register tile of the row then reads. Bias, activation and stores are the fp32 kernel's
// (ConvTile, conv_nhwc.hpp).
#pragma once
#if defined(__AVX512BF16__)
#include <cstddef>

#include "conv_nhwc.hpp"
#include "conv_weights_bf16.hpp"
#include "gemm_bf16.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// The input channels of pixels [0, width) of `row` as bf16 pairs, `pixel_pairs` pairs a pixel
// (round_up(cin, 16) / 2). Channels past cin are read as zero: an odd cin's last pair gets a zero
// partner, and an input that is a channel slice of a wider map does not lend its neighbours'.
inline void bf16_panel_row(const float* row, std::ptrdiff_t pixel_stride, int width, int cin, std::uint32_t* panel,
                           int pixel_pairs) {
    for (int x = 0; x < width; ++x, row += pixel_stride, panel += pixel_pairs)
        for (int c = 0; c < cin; c += 16) {
            const __mmask16 real = cin - c >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (cin - c)) - 1);
            store_bf16_pairs(panel + c / 2, _mm512_maskz_loadu_ps(real, row + c));
        }
}

// out = epilogue(conv1x1(in) + bias) with w.bf16 (add_bf16_weights), as conv_nhwc<Arch, 1, 1>.
void conv1x1_bf16_nhwc(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads) {
    constexpr int N = Batch<Bf16Arch>::size;
    const int vectors = w.cout_pad / N, pairs = bf16_pairs(w.cin), pixel_pairs = round_up(w.cin, N) / 2;
    parallel_for<Bf16Arch>(0, out.h, threads, [&](int oy) {
        // Per-thread panel, kept across calls so a frame allocates nothing once warm.
        static thread_local AlignedBf16Pairs panel;
        static thread_local std::size_t capacity = 0;
        const std::size_t need = static_cast<std::size_t>(out.w) * pixel_pairs;
        if (capacity < need) {
            panel = make_aligned_bf16_pairs(need);
            capacity = need;
        }
        bf16_panel_row(in.at(oy, 0), in.cstride, out.w, w.cin, panel.get(), pixel_pairs);
        for_each_vector_block<Bf16Arch>(vectors, [&](auto width, int vec) {
            for_each_pixel_tile(out.w, [&](auto pixels, int ox) {
                ConvTile<Bf16Arch, pixels, width> tile(w, vec);
                accumulate_bf16(tile.acc, panel.get() + static_cast<std::ptrdiff_t>(ox) * pixel_pairs, pixel_pairs, pairs,
                                w.bf16.get() + vec * N, w.cout_pad);
                tile.store(w, vec, out.at(oy, ox), out.cstride);
            });
        });
    });
}

} // namespace
} // namespace facet::simd
#endif
