// facet: int8 convolutions on uint8 NHWC maps (kernels/int8_layout.hpp): dense 1x1 and 3x3 (stride
// 1 or 2) by integer dot products, depthwise 3x3, and the float -> uint8 quantisation of a map.
//
// Dense convs keep conv_nhwc.hpp's register tile (P pixels x V vectors of output channels); the
// reduction steps over input channels four at a time: four input bytes of a pixel, broadcast as
// one int32, against 16 output channels x 4 int8 weights.
// - AVX512-VNNI: one vpdpbusd (u8 x s8, four products summed into each int32 lane, no
//   saturation). It is written as inline assembly: the intrinsic needs the avx512vnni target on
//   every function it is inlined into, which the shared tile templates cannot carry, and the
//   kernel set picks this path only where cpuid reports VNNI (cpu_has_avx512_vnni).
// - Elsewhere (AVX2, SSE, AVX-512 without VNNI): vpmaddubsw would saturate (255 x 127 x 2 >
//   32767), so the bytes are widened to 16 bits (even and odd bytes of each int32 by shifts and a
//   mask) and multiplied by vpmaddwd, exactly. The same integers as VNNI, slower.
// Depthwise: per channel, the byte widened to float times the int8 weight as float; every product
// and the 9-term sum are integers below 2^24, exact in float, so this too is the integer result.
// All kernels end in the requantisation of int8_layout.hpp, so every path writes the same bytes.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "conv_nhwc.hpp"
#include "dwconv3x3.hpp"
#include "int8_layout.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// The vector operations of one register width: int32 / float lanes, what the requantisation and
// the depthwise need. Arch: the xsimd architecture whose tile sizes suit this width.
struct Lanes128 {
    using Arch = xsimd::sse2;
    static constexpr int N = 4;
    using I = __m128i;
    using F = __m128;
    static I load_i(const std::int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    static I set_i(std::int32_t v) { return _mm_set1_epi32(v); }
    static I add_i(I a, I b) { return _mm_add_epi32(a, b); }
    static F load_f(const float* p) { return _mm_loadu_ps(p); }
    static F set_f(float v) { return _mm_set1_ps(v); }
    static F mul(F a, F b) { return _mm_mul_ps(a, b); }
    static F div(F a, F b) { return _mm_div_ps(a, b); }
    static F add(F a, F b) { return _mm_add_ps(a, b); }
    static F max(F a, F b) { return _mm_max_ps(a, b); }
    static F min(F a, F b) { return _mm_min_ps(a, b); }
    static F to_f(I a) { return _mm_cvtepi32_ps(a); }
    static I to_i(F a) { return _mm_cvtps_epi32(a); } // rounds as the current mode: nearest, ties to even
    static F bytes_to_f(const std::uint8_t* p) {
        std::int32_t four;
        std::memcpy(&four, p, 4);
        const __m128i zero = _mm_setzero_si128();
        return _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero));
    }
    // Lanes already in [0, 255].
    static void store_bytes(std::uint8_t* p, I v) {
        const std::int32_t four = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(v, v), _mm_setzero_si128()));
        std::memcpy(p, &four, 4);
    }
    static void store_f(float* p, F v) { _mm_storeu_ps(p, v); }
    // For the widening dot product (DotWiden).
    static I load_bytes(const std::int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    static I and_i(I a, I b) { return _mm_and_si128(a, b); }
    static I shift_right_u16(I a) { return _mm_srli_epi16(a, 8); }
    static I shift_right_s16(I a) { return _mm_srai_epi16(a, 8); }
    static I shift_left_16(I a) { return _mm_slli_epi16(a, 8); }
    static I madd_16(I a, I b) { return _mm_madd_epi16(a, b); }
};

#if defined(__AVX2__)
struct Lanes256 {
    using Arch = xsimd::fma3<xsimd::avx2>;
    static constexpr int N = 8;
    using I = __m256i;
    using F = __m256;
    static I load_i(const std::int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static I set_i(std::int32_t v) { return _mm256_set1_epi32(v); }
    static I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
    static F load_f(const float* p) { return _mm256_loadu_ps(p); }
    static F set_f(float v) { return _mm256_set1_ps(v); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F max(F a, F b) { return _mm256_max_ps(a, b); }
    static F min(F a, F b) { return _mm256_min_ps(a, b); }
    static F to_f(I a) { return _mm256_cvtepi32_ps(a); }
    static I to_i(F a) { return _mm256_cvtps_epi32(a); }
    static F bytes_to_f(const std::uint8_t* p) {
        return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
    static void store_bytes(std::uint8_t* p, I v) {
        const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
    }
    static void store_f(float* p, F v) { _mm256_storeu_ps(p, v); }
    static I load_bytes(const std::int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static I and_i(I a, I b) { return _mm256_and_si256(a, b); }
    static I shift_right_u16(I a) { return _mm256_srli_epi16(a, 8); }
    static I shift_right_s16(I a) { return _mm256_srai_epi16(a, 8); }
    static I shift_left_16(I a) { return _mm256_slli_epi16(a, 8); }
    static I madd_16(I a, I b) { return _mm256_madd_epi16(a, b); }
};
#endif

#if defined(__AVX512F__)
struct Lanes512 {
    using Arch = xsimd::avx512f;
    static constexpr int N = 16;
    using I = __m512i;
    using F = __m512;
    static I load_i(const std::int32_t* p) { return _mm512_loadu_si512(p); }
    static I set_i(std::int32_t v) { return _mm512_set1_epi32(v); }
    static I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
    static F load_f(const float* p) { return _mm512_loadu_ps(p); }
    static F set_f(float v) { return _mm512_set1_ps(v); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F max(F a, F b) { return _mm512_max_ps(a, b); }
    static F min(F a, F b) { return _mm512_min_ps(a, b); }
    static F to_f(I a) { return _mm512_cvtepi32_ps(a); }
    static I to_i(F a) { return _mm512_cvtps_epi32(a); }
    static F bytes_to_f(const std::uint8_t* p) {
        return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
    static void store_bytes(std::uint8_t* p, I v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v)); }
    static void store_f(float* p, F v) { _mm512_storeu_ps(p, v); }
};

// u8 x s8 dot products of four, by vpdpbusd (top of file).
struct DotVnni512 : Lanes512 {
    struct Input { I v; };
    struct Weights { I v; };
    static Input input(const std::uint8_t* p) {
        std::int32_t four;
        std::memcpy(&four, p, 4);
        return {_mm512_set1_epi32(four)};
    }
    static Weights weights(const std::int8_t* p) { return {_mm512_loadu_si512(p)}; }
    static I dot(I acc, const Input& x, const Weights& w) {
        __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x.v), "v"(w.v)); // acc += x (u8) . w (s8)
        return acc;
    }
};
#endif

// The same dot products by 16-bit widening and vpmaddwd (top of file): of the four bytes in each
// int32, the even ones (0 and 2) and the odd ones (1 and 3) as two int16 pairs.
template <class L>
struct DotWiden : L {
    using I = typename L::I;
    struct Input { I even, odd; };
    struct Weights { I even, odd; };
    static Input input(const std::uint8_t* p) {
        std::int32_t four;
        std::memcpy(&four, p, 4);
        const I x = L::set_i(four);
        return {L::and_i(x, L::set_i(0x00ff00ff)), L::shift_right_u16(x)};
    }
    static Weights weights(const std::int8_t* p) {
        const I w = L::load_bytes(p);
        return {L::shift_right_s16(L::shift_left_16(w)), L::shift_right_s16(w)};
    }
    static I dot(I acc, const Input& x, const Weights& w) {
        return L::add_i(acc, L::add_i(L::madd_16(x.even, w.even), L::madd_16(x.odd, w.odd)));
    }
};

// The requantisation (int8_layout.hpp) of output channels [o, o + N).
template <class L>
inline typename L::F requantized_real(typename L::I acc, const Requantization& r, int o) {
    const typename L::F y = L::mul(L::to_f(acc), L::load_f(r.multiplier.data() + o));
    switch (r.activation.kind) {
    case Activation::relu: return L::max(y, L::set_f(0.0f));
    case Activation::leaky_relu: return L::max(y, L::mul(y, L::set_f(r.activation.slope)));
    default: return y;
    }
}

// y in units of `q`'s scale -> its bytes: nearbyint(clamp(y, -zp, 255 - zp)) + zp.
template <class L>
inline void store_quantized(typename L::F y, const QuantParams& q, std::uint8_t* dst) {
    const typename L::F clamped = L::min(L::max(y, L::set_f(static_cast<float>(-q.zero_point))),
                                         L::set_f(static_cast<float>(255 - q.zero_point)));
    L::store_bytes(dst, L::add_i(L::to_i(clamped), L::set_i(q.zero_point)));
}

template <class L>
inline void store_requantized(typename L::I acc, const Requantization& r, int o, std::uint8_t* dst) {
    store_quantized<L>(requantized_real<L>(acc, r, o), r.output, dst);
}
template <class L>
inline void store_requantized(typename L::I acc, const Requantization& r, int o, float* dst) {
    L::store_f(dst, requantized_real<L>(acc, r, o));
}

// P output pixels x V vectors of output channels from vector vec0 on; Out: uint8_t or float.
template <class D, int K, int S, int P, int V, class Out>
inline void conv_int8_tile(const QuantizedMap& in, const PackedConvInt8& w, int vec0, int oy, int ox, Out* dst,
                           std::ptrdiff_t dst_step) {
    using I = typename D::I;
    constexpr int N = D::N, pad = (K - 1) / 2;
    I acc[P][V];
    for (int v = 0; v < V; ++v) {
        const I b = D::load_i(w.bias.data() + (vec0 + v) * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    const std::ptrdiff_t pixel_step = static_cast<std::ptrdiff_t>(S) * in.cstride;
    for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx) {
            const std::uint8_t* src = in.at(oy * S - pad + ky, ox * S - pad + kx);
            const std::int8_t* wt = w.weights.data() + (static_cast<std::size_t>(ky * K + kx) * w.cin_quads * w.cout_pad + vec0 * N) * 4;
            for (int quad = 0; quad < w.cin_quads; ++quad, src += 4, wt += w.cout_pad * 4) {
                typename D::Weights wv[V];
                for (int v = 0; v < V; ++v) wv[v] = D::weights(wt + v * N * 4);
                for (int p = 0; p < P; ++p) {
                    const typename D::Input x = D::input(src + p * pixel_step);
                    for (int v = 0; v < V; ++v) acc[p][v] = D::dot(acc[p][v], x, wv[v]);
                }
            }
        }
    for (int p = 0; p < P; ++p)
        for (int v = 0; v < V; ++v) store_requantized<D>(acc[p][v], w.requant, (vec0 + v) * N, dst + p * dst_step + (vec0 + v) * N);
}

template <class Arch, class D, int K, int S, class Out>
inline void conv_int8_rows(const QuantizedMap& in, const PackedConvInt8& w, Out* out0, std::ptrdiff_t out_rstride,
                           std::ptrdiff_t out_cstride, int out_h, int out_w, int threads) {
    parallel_for<Arch>(0, out_h, threads, [&](int oy) {
        for_each_vector_block<typename D::Arch>(w.cout_pad / D::N, [&](auto width, int v) {
            for_each_pixel_tile(out_w, [&](auto pixels, int ox) {
                conv_int8_tile<D, K, S, pixels, width>(in, w, v, oy, ox, out0 + oy * out_rstride + ox * out_cstride, out_cstride);
            });
        });
    });
}

// out = requantise(conv_KxK_strideS(in) + bias), padding (K - 1) / 2. in.c == w.cin; the output
// (out.bytes or out.floats, as w.requant says) is conv_out_size x cout, possibly a channel slice.
template <class Arch, class D, int K, int S>
void conv_int8_nhwc(const QuantizedMap& in, const PackedConvInt8& w, const ConvInt8Output& out, int threads) {
    if (w.requant.quantized_output) {
        const QuantizedMap& o = *out.bytes;
        conv_int8_rows<Arch, D, K, S>(in, w, o.data, o.rstride, o.cstride, o.h, o.w, threads);
    } else {
        const FeatureMap& o = *out.floats;
        conv_int8_rows<Arch, D, K, S>(in, w, o.data, o.rstride, o.cstride, o.h, o.w, threads);
    }
}

// P neighbouring outputs of channels [c, c + N) of a depthwise row, as dwconv3x3.hpp's blocks:
// each input vector the block needs is widened once and used by every output whose window holds
// it (4 outputs at stride 1 widen 18 vectors instead of 36). rows[ky] point at pixel -1 of their
// row; `ox` is the block's first output.
template <class L, int S, int P>
inline void dwconv3x3_int8_pixels(const std::uint8_t* const (&rows)[3], std::ptrdiff_t src_step, const typename L::F (&k)[9],
                                  const typename L::I& bias, const PackedDepthwiseInt8& w, int c, int ox, std::uint8_t* out,
                                  std::ptrdiff_t dst_step) {
    using F = typename L::F;
    constexpr int kColumns = S * (P - 1) + 3;
    F acc[P];
    for (int p = 0; p < P; ++p) acc[p] = L::set_f(0.0f);
    for (int ky = 0; ky < 3; ++ky)
        for (int col = 0; col < kColumns; ++col) {
            const F x = L::bytes_to_f(rows[ky] + (ox * S + col) * src_step + c);
            for (int p = 0; p < P; ++p) {
                const int kx = col - S * p; // this column's tap in output p's window, if any
                if (kx >= 0 && kx < 3) acc[p] = L::add(acc[p], L::mul(x, k[ky * 3 + kx]));
            }
        }
    for (int p = 0; p < P; ++p) store_requantized<L>(L::add_i(L::to_i(acc[p]), bias), w.requant, c, out + (ox + p) * dst_step + c);
}

// out = requantise(depthwise3x3_strideS(in) + bias), uint8 out.
template <class Arch, class L, int S>
void dwconv3x3_int8_nhwc(const QuantizedMap& in, const PackedDepthwiseInt8& w, const QuantizedMap& out, int threads) {
    constexpr int N = L::N, P = kDwPixels<S>;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const std::uint8_t* const rows[3] = {in.at(oy * S - 1, -1), in.at(oy * S, -1), in.at(oy * S + 1, -1)};
        std::uint8_t* const dst = out.at(oy, 0);
        for (int c = 0; c < w.c_pad; c += N) {
            typename L::F k[9];
            for (int t = 0; t < 9; ++t) k[t] = L::load_f(w.weights.data() + t * w.c_pad + c);
            const typename L::I bias = L::load_i(w.bias.data() + c);
            int ox = 0;
            for (; ox + P <= out.w; ox += P) dwconv3x3_int8_pixels<L, S, P>(rows, in.cstride, k, bias, w, c, ox, dst, out.cstride);
            for (; ox < out.w; ++ox) dwconv3x3_int8_pixels<L, S, 1>(rows, in.cstride, k, bias, w, c, ox, dst, out.cstride);
        }
    });
}

// out = quantise(in) with out.q: every lane of out's channel stride (in's padding lanes are zero).
template <class Arch, class L>
void quantize_nhwc(const FeatureMap& in, const QuantizedMap& out, int threads) {
    parallel_for<Arch>(0, out.h, threads, [&](int y) {
        for (int x = 0; x < out.w; ++x)
            for (int c = 0; c < out.cstride; c += L::N)
                store_quantized<L>(L::div(L::load_f(in.at(y, x) + c), L::set_f(out.q.scale)), out.q, out.at(y, x) + c);
    });
}

// The int8 kernels of one instruction set (the KernelSet's int8 block).
struct Int8KernelTable {
    const char* path;
    ConvInt8Kernel conv1x1, conv3x3_s1, conv3x3_s2;
    DepthwiseInt8Kernel dwconv3x3_s1, dwconv3x3_s2;
    QuantizeKernel quantize;
};

template <class Arch, class D, class L>
Int8KernelTable int8_table(const char* path) {
    return {path,
            &conv_int8_nhwc<Arch, D, 1, 1>,
            &conv_int8_nhwc<Arch, D, 3, 1>,
            &conv_int8_nhwc<Arch, D, 3, 2>,
            &dwconv3x3_int8_nhwc<Arch, L, 1>,
            &dwconv3x3_int8_nhwc<Arch, L, 2>,
            &quantize_nhwc<Arch, L>};
}

// The widest path the instruction set (and, for VNNI, the CPU) allows.
template <class Arch>
Int8KernelTable int8_kernel_table() {
#if defined(__AVX512F__)
    if constexpr (std::is_same<Arch, xsimd::avx512f>::value) {
        if (cpu_has_avx512_vnni()) return int8_table<Arch, DotVnni512, Lanes512>("avx512-vnni");
        return int8_table<Arch, DotWiden<Lanes256>, Lanes512>("avx2-vpmaddwd");
    } else
#endif
#if defined(__AVX2__)
    if constexpr (std::is_same<Arch, xsimd::fma3<xsimd::avx2>>::value) {
        return int8_table<Arch, DotWiden<Lanes256>, Lanes256>("avx2-vpmaddwd");
    } else
#endif
    {
        return int8_table<Arch, DotWiden<Lanes128>, Lanes128>("sse2-pmaddwd");
    }
}

} // namespace
} // namespace facet::simd
