// facet: int8 convolutions on uint8 NHWC maps (kernels/int8_layout.hpp): dense 1x1, 2x2 (stride 1,
// no padding: MTCNN's) and 3x3 (stride 1 or 2) by integer dot products, depthwise 3x3, and the
// float -> uint8 quantisation of a map.
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
// Depthwise: with AVX512-VNNI, vpdpbusd on the three rows' bytes of a window column (dw_vnni
// below); elsewhere per channel the byte widened to float times the int8 weight as float: every
// product and the 9-term sum are integers below 2^24, exact in float, so this too is the integer
// result.
// All kernels end in the requantisation of int8_layout.hpp, so every path writes the same bytes.
//
// Everything is xsimd batches on the kernel set's architecture except ByteIntrinsics below: the
// byte <-> int32 lane shuffles and the two integer multiply-adds, which xsimd 8.1 does not have.
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

template <class Arch>
using Int32s = xsimd::batch<std::int32_t, Arch>;

// The four bytes at p as one int32 (what a dot product broadcasts).
inline std::int32_t four_bytes(const void* p) {
    std::int32_t four;
    std::memcpy(&four, p, 4);
    return four;
}

// What xsimd 8.1 has no batch operation for, as intrinsics, one struct per register width (the
// only intrinsics in the int8 kernels): its conversions keep the lane width (batch_cast: int32 <->
// float), so uint8 -> int32 lanes and back are the widening / narrowing shuffles here, and it has
// no multiply-add of integer pairs (vpmaddwd) nor u8 x s8 dot product (vpdpbusd).
//   widen(p):        N bytes at p -> N int32 lanes (zero-extended)
//   store_bytes(p):  N int32 lanes already in [0, 255] -> N bytes at p
//   madd_pairs(a, b): int16 lanes a[2i] * b[2i] + a[2i+1] * b[2i+1] -> int32 lane i, exact (vpmaddwd)
//   unsigned_byte_pairs / signed_byte_pairs: DotWiden's operands (it says why they are here)
template <std::size_t N>
struct ByteIntrinsics;

template <>
struct ByteIntrinsics<4> {
    static __m128i widen(const std::uint8_t* p) {
        const __m128i zero = _mm_setzero_si128();
        return _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four_bytes(p)), zero), zero);
    }
    static void store_bytes(std::uint8_t* p, __m128i v) {
        const std::int32_t four = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(v, v), _mm_setzero_si128()));
        std::memcpy(p, &four, 4);
    }
    // Each int32 lane of `four` (broadcast) as its bytes 0 and 2 (even) and 1 and 3 (odd),
    // zero-extended to int16; signed_byte_pairs: the same of the 16 bytes at p, sign-extended.
    struct Pairs { __m128i even, odd; };
    static Pairs unsigned_byte_pairs(std::int32_t four) {
        const __m128i x = _mm_set1_epi32(four);
        return {_mm_and_si128(x, _mm_set1_epi16(0x00ff)), _mm_srli_epi16(x, 8)};
    }
    static Pairs signed_byte_pairs(const std::int8_t* p) {
        const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return {_mm_srai_epi16(_mm_slli_epi16(w, 8), 8), _mm_srai_epi16(w, 8)};
    }
    static __m128i madd_pairs(__m128i a, __m128i b) { return _mm_madd_epi16(a, b); }
};

#if defined(__AVX2__)
template <>
struct ByteIntrinsics<8> {
    static __m256i widen(const std::uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
    static void store_bytes(std::uint8_t* p, __m256i v) {
        const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
    }
    struct Pairs { __m256i even, odd; };
    static Pairs unsigned_byte_pairs(std::int32_t four) {
        const __m256i x = _mm256_set1_epi32(four);
        return {_mm256_and_si256(x, _mm256_set1_epi16(0x00ff)), _mm256_srli_epi16(x, 8)};
    }
    static Pairs signed_byte_pairs(const std::int8_t* p) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return {_mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), _mm256_srai_epi16(w, 8)};
    }
    static __m256i madd_pairs(__m256i a, __m256i b) { return _mm256_madd_epi16(a, b); }
};
#endif

#if defined(__AVX512F__)
// No madd_pairs: vpmaddwd on zmm needs AVX512BW, which the AVX-512 object has only as implied by
// -mavx512bf16 (without VNNI it takes the 256-bit dot product, int8_kernel_table). The packing
// store_bytes needs it too, so it is compiled only where the object has it.
template <>
struct ByteIntrinsics<16> {
    static __m512i widen(const std::uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static void store_bytes(std::uint8_t* p, __m512i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v)); }
#if defined(__AVX512BW__)
    // store_bytes of four vectors v[0..3] to p, p + 16, p + 32, p + 48, as one 64-byte store: the
    // packs work within 128-bit lanes, leaving lane L with dwords L of the four vectors, so a 4 x 4
    // dword transpose puts them back in order. Four instructions where four vpmovdb to memory
    // measured 1.2x slower in the VNNI depthwise.
    static void store_bytes(std::uint8_t* p, const __m512i (&v)[4]) {
        const __m512i packed = _mm512_packus_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
        _mm512_storeu_si512(p, _mm512_permutexvar_epi32(transpose_4x4_dwords(), packed));
    }
#endif
    // Dword i of each 128-bit lane L <-> dword L of lane i: the index vector of the permutation.
    static __m512i transpose_4x4_dwords() { return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }
    // acc + the four u8 x s8 products of each int32 lane of x and w, summed (vpdpbusd, top of file).
    static __m512i dot_u8_s8(__m512i acc, __m512i x, __m512i w) {
        __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
        return acc;
    }
};
#endif

template <class Arch>
using ByteIntrinsicsOf = ByteIntrinsics<Int32s<Arch>::size>;

// The dense convs' dot products (top of file): Input is one pixel's four input bytes, Weights
// four int8 weights of each of N output channels; dot adds their products to the int32 lanes.
// Arch: the register width of the dot product, which may be narrower than the kernel set's.
#if defined(__AVX512F__)
struct DotVnni512 {
    using Arch = xsimd::avx512f;
    using Input = Int32s<Arch>;
    using Weights = Int32s<Arch>;
    static Input input(const std::uint8_t* p) { return Input(four_bytes(p)); }
    static Weights weights(const std::int8_t* p) { return Weights::load_unaligned(reinterpret_cast<const std::int32_t*>(p)); }
    static Int32s<Arch> dot(const Int32s<Arch>& acc, const Input& x, const Weights& w) {
        return ByteIntrinsicsOf<Arch>::dot_u8_s8(acc, x, w);
    }
};
#endif

// By 16-bit widening: of the four bytes in each int32, the even ones (0 and 2) and the odd ones
// (1 and 3) as two int16 pairs (ByteIntrinsics' byte pairs), multiplied and summed by madd_pairs.
// The pairs are raw registers: as xsimd int16 batches (the same mask and shifts) GCC 12 spilled
// more in the SSE4.1 3x3 tile, conv3x3_s1_int8/sse41 1.15x the intrinsics' time against 1.02x.
template <class DotArch>
struct DotWiden {
    using Arch = DotArch;
    using Bytes = ByteIntrinsicsOf<Arch>;
    using Input = typename Bytes::Pairs;
    using Weights = typename Bytes::Pairs;
    static Input input(const std::uint8_t* p) { return Bytes::unsigned_byte_pairs(four_bytes(p)); }
    static Weights weights(const std::int8_t* p) { return Bytes::signed_byte_pairs(p); }
    static Int32s<Arch> dot(const Int32s<Arch>& acc, const Input& x, const Weights& w) {
        return acc + (Int32s<Arch>(Bytes::madd_pairs(x.even, w.even)) + Int32s<Arch>(Bytes::madd_pairs(x.odd, w.odd)));
    }
};

// The requantisation (int8_layout.hpp) of output channels [o, o + N): the Requantization's
// activation is a kernel Epilogue (PReLU's slopes its own padded copy), so activate's max(y, 0),
// max(y, slope * y) or select(y > 0, y, y * slopes) is the reference's, operand for operand.
template <class Arch>
inline Batch<Arch> requantized_real(const Int32s<Arch>& acc, const float* multiplier, const Epilogue& activation, int o) {
    return activate<Arch>(xsimd::batch_cast<float>(acc) * Batch<Arch>::load_unaligned(multiplier + o), activation, o);
}
template <class Arch>
inline Batch<Arch> requantized_real(const Int32s<Arch>& acc, const Requantization& r, int o) {
    return requantized_real<Arch>(acc, r.multiplier.data(), r.activation, o);
}

// y in units of `q`'s scale -> its bytes: nearbyint(clamp(y, -zp, 255 - zp)) + zp, rounding in
// the current mode (nearest, ties to even) as the reference's std::nearbyint.
template <class Arch>
[[gnu::always_inline]] inline Int32s<Arch> quantized(const Batch<Arch>& y, const QuantParams& q) {
    using B = Batch<Arch>;
    const B clamped = xsimd::min(xsimd::max(y, B(static_cast<float>(-q.zero_point))), B(static_cast<float>(255 - q.zero_point)));
    return xsimd::nearbyint_as_int(clamped) + Int32s<Arch>(q.zero_point);
}
template <class Arch>
inline void store_quantized(const Batch<Arch>& y, const QuantParams& q, std::uint8_t* dst) {
    ByteIntrinsicsOf<Arch>::store_bytes(dst, quantized<Arch>(y, q));
}

// Always inlined: left to itself GCC 12 calls these out of line from the kernels' tiles (and
// takes activate out of line with them), a call per output vector that the intrinsics version did
// not have; the int8 depthwise then measured 5-15% slower on AVX-512.
template <class Arch>
[[gnu::always_inline]] inline void store_requantized(const Int32s<Arch>& acc, const Requantization& r, int o, std::uint8_t* dst) {
    store_quantized<Arch>(requantized_real<Arch>(acc, r, o), r.output, dst);
}
template <class Arch>
[[gnu::always_inline]] inline void store_requantized(const Int32s<Arch>& acc, const Requantization& r, int o, float* dst) {
    requantized_real<Arch>(acc, r, o).store_unaligned(dst);
}
#if defined(__AVX512F__)
// Four vectors of channels [o, o + 64), as one store where the object has AVX512BW.
template <class Arch>
[[gnu::always_inline]] inline void store_requantized(const __m512i (&acc)[4], const Requantization& r, int o, std::uint8_t* dst) {
#if defined(__AVX512BW__)
    __m512i bytes[4];
    for (int g = 0; g < 4; ++g) bytes[g] = quantized<Arch>(requantized_real<Arch>(Int32s<Arch>(acc[g]), r, o + 16 * g), r.output);
    ByteIntrinsics<16>::store_bytes(dst, bytes);
#else
    for (int g = 0; g < 4; ++g) store_requantized<Arch>(Int32s<Arch>(acc[g]), r, o + 16 * g, dst + 16 * g);
#endif
}
#endif

// P output pixels x V vectors of output channels from vector vec0 on; Out: uint8_t or float.
template <class D, int K, int S, int P, int V, class Out>
inline void conv_int8_tile(const QuantizedMap& in, const PackedConvInt8& w, int vec0, int oy, int ox, Out* dst,
                           std::ptrdiff_t dst_step) {
    using I = Int32s<typename D::Arch>;
    constexpr int N = I::size, pad = (K - 1) / 2;
    // Raw registers, not batches: an array of batches GCC 12 kept in memory, and the AVX2 3x3
    // tile's loop had twice the stack accesses of the intrinsics version and ran 1.5-1.8x slower.
    typename I::register_type acc[P][V];
    for (int v = 0; v < V; ++v) {
        const I b = I::load_unaligned(w.bias.data() + (vec0 + v) * N);
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
    // The epilogue reads local copies of w.requant's activation, output parameters and multiplier
    // pointer: otherwise each store (bytes may alias anything, floats the requantisation's own
    // floats) made GCC re-read them, a load and a compare of the activation kind per output
    // vector (perf annotate of O-Net's conv1, whose 27 multiply-adds a value leave the epilogue
    // half its time).
    const Epilogue activation = w.requant.activation;
    const QuantParams output = w.requant.output;
    const float* multiplier = w.requant.multiplier.data();
    for (int p = 0; p < P; ++p) {
#if defined(__AVX512F__)
        if constexpr (V == 4 && std::is_same<typename D::Arch, xsimd::avx512f>::value && std::is_same<Out, std::uint8_t>::value) {
            store_requantized<typename D::Arch>(acc[p], w.requant, vec0 * N, dst + p * dst_step + vec0 * N);
            continue;
        }
#endif
        for (int v = 0; v < V; ++v) {
            const int o = (vec0 + v) * N;
            const Batch<typename D::Arch> y = requantized_real<typename D::Arch>(I(acc[p][v]), multiplier, activation, o);
            Out* out = dst + p * dst_step + o;
            if constexpr (std::is_same<Out, float>::value) y.store_unaligned(out);
            else store_quantized<typename D::Arch>(y, output, out);
        }
    }
}

template <class Arch, class D, int K, int S, class Out>
inline void conv_int8_rows(const QuantizedMap& in, const PackedConvInt8& w, Out* out0, std::ptrdiff_t out_rstride,
                           std::ptrdiff_t out_cstride, int out_h, int out_w, int threads) {
    parallel_for<Arch>(0, out_h, threads, [&](int oy) {
        for_each_vector_block<typename D::Arch>(w.cout_pad / static_cast<int>(Int32s<typename D::Arch>::size), [&](auto width, int v) {
            for_each_pixel_tile(out_w, [&](auto pixels, int ox) {
                conv_int8_tile<D, K, S, pixels, width>(in, w, v, oy, ox, out0 + oy * out_rstride + ox * out_cstride, out_cstride);
            });
        });
    });
}

// out = requantise(conv_KxK_strideS(in) + bias), padding (K - 1) / 2 (none for K = 2). in.c == w.cin; the output
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
// row; `ox` is the block's first output. Every product and partial sum is an integer below 2^24,
// so the FMAs and the conversion back to int32 are exact.
template <class Arch, int S, int P>
inline void dwconv3x3_int8_pixels(const std::uint8_t* const (&rows)[3], std::ptrdiff_t src_step, const Batch<Arch> (&k)[9],
                                  const Int32s<Arch>& bias, const PackedDepthwiseInt8& w, int c, int ox, std::uint8_t* out,
                                  std::ptrdiff_t dst_step) {
    using B = Batch<Arch>;
    constexpr int kColumns = S * (P - 1) + 3;
    B acc[P];
    for (int p = 0; p < P; ++p) acc[p] = B(0.0f);
    for (int ky = 0; ky < 3; ++ky)
        for (int col = 0; col < kColumns; ++col) {
            const B x = xsimd::batch_cast<float>(Int32s<Arch>(ByteIntrinsicsOf<Arch>::widen(rows[ky] + (ox * S + col) * src_step + c)));
            for (int p = 0; p < P; ++p) {
                const int kx = col - S * p; // this column's tap in output p's window, if any
                if (kx >= 0 && kx < 3) acc[p] = xsimd::fma(x, k[ky * 3 + kx], acc[p]);
            }
        }
    for (int p = 0; p < P; ++p)
        store_requantized<Arch>(xsimd::batch_cast<std::int32_t>(acc[p]) + bias, w.requant, c, out + (ox + p) * dst_step + c);
}

// Channels [c0, c1), whole vectors, of one output row (rows: its three input rows, at pixel -1).
template <class Arch, int S>
inline void dwconv3x3_int8_vectors(const std::uint8_t* const (&rows)[3], std::ptrdiff_t src_step, const PackedDepthwiseInt8& w,
                                   int c0, int c1, std::uint8_t* dst, std::ptrdiff_t dst_step, int out_w) {
    constexpr int N = Batch<Arch>::size, P = kDwPixels<S>;
    for (int c = c0; c < c1; c += N) {
        Batch<Arch> k[9];
        for (int t = 0; t < 9; ++t) k[t] = Batch<Arch>::load_unaligned(w.weights.data() + t * w.c_pad + c);
        const auto bias = Int32s<Arch>::load_unaligned(w.bias.data() + c);
        int ox = 0;
        for (; ox + P <= out_w; ox += P) dwconv3x3_int8_pixels<Arch, S, P>(rows, src_step, k, bias, w, c, ox, dst, dst_step);
        for (; ox < out_w; ++ox) dwconv3x3_int8_pixels<Arch, S, 1>(rows, src_step, k, bias, w, c, ox, dst, dst_step);
    }
}

template <class Arch, int S>
void dwconv3x3_int8_nhwc(const QuantizedMap& in, const PackedDepthwiseInt8& w, const QuantizedMap& out, int threads) {
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const std::uint8_t* const rows[3] = {in.at(oy * S - 1, -1), in.at(oy * S, -1), in.at(oy * S + 1, -1)};
        dwconv3x3_int8_vectors<Arch, S>(rows, in.cstride, w, 0, w.c_pad, out.at(oy, 0), out.cstride, out.w);
    });
}

#if defined(__AVX512F__)
// The depthwise by AVX512-VNNI, 64 channels at a time, where cpuid reports VNNI (every such CPU
// has AVX512BW, whose byte shuffles it needs: this code is compiled for both by its target
// attribute, as the AVX-512 object may be built for AVX512F alone). The widening kernel above spends two instructions a
// byte vector on the conversion to float before each FMA; here one vpdpbusd adds a whole window
// column of 16 channels: each int32 lane holds one channel's bytes of the three rows (and row 2's
// again, against a zero weight), PackedDepthwiseInt8::column_weights the column's three weights.
// Interleaving the rows' bytes costs 11 shuffles for 64 channels of a column, shared by the up to
// three outputs whose windows hold it (P outputs a block, as dwconv3x3.hpp's).
namespace dw_vnni {
constexpr int kChannels = 64;
template <int S>
constexpr int kPixels = S == 1 ? 4 : 2;

// The 64 bytes at each rows[ky] + offset (channels [c, c + 64) of a pixel) as group[g]: channels
// [c + 16g, c + 16g + 16), lane j holding channel c + 16g + j's bytes (row 0, row 1, row 2, row 2).
// The unpacks interleave within 128-bit lanes, so each row's 16 dwords are first transposed as a
// 4 x 4 matrix: then the unpacks' dword k of lane L (byte 16L + 4g + k before them) is channel
// 16g + 4L + k, in order.
struct Column {
    __m512i group[4];
};

[[gnu::target("avx512bw,avx512vnni"), gnu::always_inline]] inline Column column(const std::uint8_t* const (&rows)[3],
                                                                                 std::ptrdiff_t offset) {
    const __m512i transpose = ByteIntrinsics<16>::transpose_4x4_dwords();
    __m512i r[3];
    for (int ky = 0; ky < 3; ++ky) r[ky] = _mm512_permutexvar_epi32(transpose, _mm512_loadu_si512(rows[ky] + offset));
    const __m512i low01 = _mm512_unpacklo_epi8(r[0], r[1]), high01 = _mm512_unpackhi_epi8(r[0], r[1]);
    const __m512i low22 = _mm512_unpacklo_epi8(r[2], r[2]), high22 = _mm512_unpackhi_epi8(r[2], r[2]);
    return {{_mm512_unpacklo_epi16(low01, low22), _mm512_unpackhi_epi16(low01, low22), _mm512_unpacklo_epi16(high01, high22),
             _mm512_unpackhi_epi16(high01, high22)}};
}

// P neighbouring outputs of channels [c, c + 64), as dwconv3x3_int8_pixels.
template <int S, int P>
[[gnu::target("avx512bw,avx512vnni"), gnu::always_inline]] inline void pixels(const std::uint8_t* const (&rows)[3],
                                                                               std::ptrdiff_t src_step, const PackedDepthwiseInt8& w,
                                                                               int c, int ox, std::uint8_t* out, std::ptrdiff_t dst_step) {
    constexpr int kColumns = S * (P - 1) + 3;
    __m512i acc[P][4];
    for (int g = 0; g < 4; ++g) {
        const __m512i bias = _mm512_loadu_si512(w.bias.data() + c + 16 * g);
        for (int p = 0; p < P; ++p) acc[p][g] = bias;
    }
    for (int col = 0; col < kColumns; ++col) {
        const Column x = column(rows, (ox * S + col) * src_step + c);
        for (int p = 0; p < P; ++p) {
            const int kx = col - S * p; // this column's place in output p's window, if any
            if (kx < 0 || kx >= 3) continue;
            const std::int8_t* weights = w.column_weights.data() + (static_cast<std::size_t>(kx) * w.c_pad + c) * 4;
            for (int g = 0; g < 4; ++g) acc[p][g] = _mm512_dpbusd_epi32(acc[p][g], x.group[g], _mm512_loadu_si512(weights + 64 * g));
        }
    }
    for (int p = 0; p < P; ++p) store_requantized<xsimd::avx512f>(acc[p], w.requant, c, out + (ox + p) * dst_step + c);
}

// Channels [0, c1) of one output row, c1 a multiple of 64.
template <int S>
[[gnu::target("avx512bw,avx512vnni")]] void row(const std::uint8_t* const (&rows)[3], std::ptrdiff_t src_step,
                                                 const PackedDepthwiseInt8& w, int c1, std::uint8_t* dst, std::ptrdiff_t dst_step, int out_w) {
    constexpr int P = kPixels<S>;
    for (int c = 0; c < c1; c += kChannels) {
        int ox = 0;
        for (; ox + P <= out_w; ox += P) pixels<S, P>(rows, src_step, w, c, ox, dst, dst_step);
        for (; ox < out_w; ++ox) pixels<S, 1>(rows, src_step, w, c, ox, dst, dst_step);
    }
}
} // namespace dw_vnni

// Whole 64-channel blocks by VNNI, the channel vectors past the last (c_pad % 64) as above.
template <int S>
void dwconv3x3_int8_vnni_nhwc(const QuantizedMap& in, const PackedDepthwiseInt8& w, const QuantizedMap& out, int threads) {
    using Arch = xsimd::avx512f;
    const int blocks_end = w.c_pad / dw_vnni::kChannels * dw_vnni::kChannels;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        const std::uint8_t* const rows[3] = {in.at(oy * S - 1, -1), in.at(oy * S, -1), in.at(oy * S + 1, -1)};
        std::uint8_t* const dst = out.at(oy, 0);
        dw_vnni::row<S>(rows, in.cstride, w, blocks_end, dst, out.cstride, out.w);
        dwconv3x3_int8_vectors<Arch, S>(rows, in.cstride, w, blocks_end, w.c_pad, dst, out.cstride, out.w);
    });
}
#endif

// out = quantise(in) with out.q: every lane of out's channel stride (in's padding lanes are zero).
template <class Arch>
void quantize_nhwc(const FeatureMap& in, const QuantizedMap& out, int threads) {
    using B = Batch<Arch>;
    parallel_for<Arch>(0, out.h, threads, [&](int y) {
        for (int x = 0; x < out.w; ++x)
            for (int c = 0; c < out.cstride; c += static_cast<int>(B::size))
                store_quantized<Arch>(B::load_unaligned(in.at(y, x) + c) / B(out.q.scale), out.q, out.at(y, x) + c);
    });
}

// The int8 kernels of one instruction set (the KernelSet's int8 block).
struct Int8KernelTable {
    const char* path;
    ConvInt8Kernel conv1x1, conv2x2_s1, conv3x3_s1, conv3x3_s2;
    DepthwiseInt8Kernel dwconv3x3_s1, dwconv3x3_s2;
    QuantizeKernel quantize;
};

// D: the dense convs' dot product; the depthwise and the quantisation run on Arch's own width.
template <class Arch, class D>
Int8KernelTable int8_table(const char* path) {
    return {path,
            &conv_int8_nhwc<Arch, D, 1, 1>,
            &conv_int8_nhwc<Arch, D, 2, 1>,
            &conv_int8_nhwc<Arch, D, 3, 1>,
            &conv_int8_nhwc<Arch, D, 3, 2>,
            &dwconv3x3_int8_nhwc<Arch, 1>,
            &dwconv3x3_int8_nhwc<Arch, 2>,
            &quantize_nhwc<Arch>};
}

// The widest path the instruction set (and, for VNNI, the CPU) allows.
template <class Arch>
Int8KernelTable int8_kernel_table() {
#if defined(__AVX512F__)
    if constexpr (std::is_same<Arch, xsimd::avx512f>::value) {
        if (cpu_has_avx512_vnni()) {
            Int8KernelTable t = int8_table<Arch, DotVnni512>("avx512-vnni");
            t.dwconv3x3_s1 = &dwconv3x3_int8_vnni_nhwc<1>;
            t.dwconv3x3_s2 = &dwconv3x3_int8_vnni_nhwc<2>;
            return t;
        }
        return int8_table<Arch, DotWiden<xsimd::fma3<xsimd::avx2>>>("avx2-vpmaddwd"); // ByteIntrinsics<16> says why
    } else
#endif
    {
        return int8_table<Arch, DotWiden<Arch>>(Int32s<Arch>::size == 8 ? "avx2-vpmaddwd" : "sse2-pmaddwd");
    }
}

} // namespace
} // namespace facet::simd
