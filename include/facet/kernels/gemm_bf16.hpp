// facet: the register tile of the bf16 kernels (AVX512-BF16 `vdpbf16ps`), shared by the pointwise
// conv (conv1x1_bf16.hpp) and the Winograd GEMMs (winograd_f43_bf16.hpp).
//
// As the fp32 tile (conv_nhwc.hpp): R rows (pixels, or Winograd tiles) x V vectors of 16 output
// channels in registers. Per pair of input channels, V weight vectors (16 output channels x the
// pair, bf16) are loaded once and each row's pair is broadcast (one 32-bit load) into them:
// `vdpbf16ps` adds both products to the float32 accumulators, 32 multiply-adds per instruction.
// The arithmetic is exactly reference_bf16.hpp's: a bf16 x bf16 product is exact in float32, and
// the instruction adds the odd element's product, then the even's, each rounded to float32 (Intel
// SDM, VDPBF16PS; measured the same on this project's Zen 5), pairs in increasing order; its
// denormal inputs and outputs are flushed to zero.
//
// Compiled only where the compiler targets AVX512-BF16 (the AVX-512 kernel object is built with
// -mavx512bf16); reached only where the CPU has it (kernel_set_impl.hpp checks cpuid).
#pragma once
#if defined(__AVX512BF16__)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

using Bf16Arch = xsimd::avx512f;

// acc[r][v] += sum over pairs of x[r * row_stride + pair] . w[pair * cout_pad + v * 16 ...], for
// `pairs` pairs; x and w are bf16 pairs (bf16.hpp).
template <int R, int V>
inline void accumulate_bf16(Batch<Bf16Arch> (&acc)[R][V], const std::uint32_t* x, std::ptrdiff_t row_stride, int pairs,
                            const std::uint32_t* w, int cout_pad) {
    __m512 sum[R][V];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) sum[r][v] = acc[r][v];
    for (int pair = 0; pair < pairs; ++pair, w += cout_pad, ++x) {
        __m512bh wv[V];
        for (int v = 0; v < V; ++v) wv[v] = reinterpret_cast<__m512bh>(_mm512_load_si512(w + v * 16));
        for (int r = 0; r < R; ++r) {
            const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(x[r * row_stride])));
            for (int v = 0; v < V; ++v) sum[r][v] = _mm512_dpbf16_ps(sum[r][v], xv, wv[v]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) acc[r][v] = sum[r][v];
}

// Stores 16 channels' floats as 8 bf16 pairs (round to nearest, ties to even) at dst.
inline void store_bf16_pairs(std::uint32_t* dst, __m512 v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}

} // namespace
} // namespace facet::simd
#endif
