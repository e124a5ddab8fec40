// facet: Winograd F(4x4, 3x3) with its 36 per-position GEMMs in bf16 (AVX512-BF16 `vdpbf16ps`,
// gemm_bf16.hpp), float32 everywhere else.
//
// The fp32 kernel's block loop (winograd.hpp), with two changes: the transformed input tiles V
// are stored as bf16 (rounded to nearest even as they leave the input transform, so V takes half
// the scratch), and the GEMMs read U as bf16 pairs (add_bf16_weights, from the float U of the
// layer's weights). M, the output transform, bias and activation stay float32.
#pragma once
#if defined(__AVX512BF16__)
#include <cstddef>
#include <cstdint>

#include "conv_weights_bf16.hpp"
#include "gemm_bf16.hpp"
#include "winograd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

namespace winograd {

// M[rows][vec0 .. vec0 + V) of one position = V[rows][pairs] x U[pairs][...], R rows at a time.
template <int R, int V>
inline void gemm_tile_bf16(const std::uint32_t* v, const std::uint32_t* u, float* m, int pairs, int cout_pad,
                           std::ptrdiff_t row_pairs) {
    using B = Batch<Bf16Arch>;
    B acc[R][V];
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < V; ++k) acc[r][k] = B(0.0f);
    accumulate_bf16(acc, v, row_pairs, pairs, u, cout_pad);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < V; ++k) acc[r][k].store_aligned(m + r * cout_pad + k * B::size);
}

// One position's GEMM over `rows` tiles, as gemm_position: 6-row tiles, then the rest as one tile.
template <int V>
inline void gemm_position_bf16(const std::uint32_t* v, const std::uint32_t* u, float* m, int rows, int pairs,
                               int row_pairs, int cout_pad, int vec0) {
    constexpr int N = Batch<Bf16Arch>::size;
    for_each_pixel_tile(rows, [&](auto tile_rows, int r) {
        gemm_tile_bf16<tile_rows, V>(v + r * row_pairs, u + vec0 * N, m + r * cout_pad + vec0 * N, pairs, cout_pad, row_pairs);
    });
}

} // namespace winograd

// out = epilogue(conv3x3_stride1_pad1(in) + bias) with w.bf16 (add_bf16_weights), as
// conv3x3_s1_winograd_nhwc. The input's padding lanes must be zero, as every map's are: an odd
// cin's last pair multiplies the padding channel's V by a zero weight.
void conv3x3_s1_winograd_bf16_nhwc(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads) {
    using namespace winograd;
    constexpr int N = Batch<Bf16Arch>::size;
    if (in.cstride % N != 0) return conv_nhwc<Bf16Arch, 3, 1>(in, w, out, threads); // as the fp32 kernel, on the widened weights
    const int row_pairs = in.cstride / 2, pairs = bf16_pairs(w.cin), cout_pad = w.cout_pad, vectors = cout_pad / N;
    winograd_blocks<Bf16Arch, F43, std::uint16_t>(
        in, w, out, threads,
        [](std::uint16_t* dst, const Batch<Bf16Arch>& r) { store_bf16_pairs(reinterpret_cast<std::uint32_t*>(dst), r); },
        [&](const std::uint16_t* vp, int pos, float* mp, int count) {
            const std::uint32_t* u = w.bf16.get() + static_cast<std::ptrdiff_t>(pos) * pairs * cout_pad;
            for_each_vector_block<Bf16Arch>(vectors, [&](auto width, int vec) {
                gemm_position_bf16<width>(reinterpret_cast<const std::uint32_t*>(vp), u, mp, count, pairs, row_pairs, cout_pad, vec);
            });
        });
}

} // namespace
} // namespace facet::simd
#endif
