// facet: bfloat16 numbers, their weight layout, and whether this CPU multiplies them.
//
// A bfloat16 is the upper half of an IEEE float32 (8 exponent bits, 8 significand bits with the
// implicit one). AVX512-BF16's `vdpbf16ps` multiplies 16 pairs of bf16 numbers per instruction and
// adds both products to 16 float32 accumulators, twice the multiply-adds of an fp32 FMA. Its
// operands are therefore pairs: two neighbouring input channels of one pixel in the activations,
// and the same two input channels' weights of one output channel in the weights.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace facet {

// float32 -> bfloat16, rounding to nearest, ties to even (as `vcvtneps2bf16` does and as the
// converter, converters/quantize_bf16.py, rounds the weights). NaN stays a (quiet) NaN.
inline std::uint16_t bf16_from_float(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}

// bfloat16 -> float32: exact.
inline float float_from_bf16(std::uint16_t h) {
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// f rounded to the nearest bfloat16, as a float.
inline float round_to_bf16(float f) { return float_from_bf16(bf16_from_float(f)); }

// Two bf16 numbers in one 32-bit word, `even` in the low half: the element order of `vdpbf16ps`,
// and the order in memory of two neighbouring channels stored as bf16 on a little-endian CPU.
inline std::uint32_t bf16_pair(float even, float odd) {
    return static_cast<std::uint32_t>(bf16_from_float(even)) | static_cast<std::uint32_t>(bf16_from_float(odd)) << 16;
}

struct AlignedPairsDeleter {
    void operator()(std::uint32_t* p) const noexcept { std::free(p); }
};
// 64-byte aligned bf16 pairs (packed weights).
using AlignedBf16Pairs = std::unique_ptr<std::uint32_t[], AlignedPairsDeleter>;

// Zero-initialised (a pair of +0.0), 64-byte aligned. Throws std::bad_alloc like new.
inline AlignedBf16Pairs make_aligned_bf16_pairs(std::size_t count) {
    const std::size_t bytes = (count * sizeof(std::uint32_t) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes == 0 ? 64 : bytes);
    return AlignedBf16Pairs(static_cast<std::uint32_t*>(p));
}

// True when the CPU has AVX512_BF16 (cpuid leaf 7, sub-leaf 1, eax bit 5) and the OS saves the
// AVX-512 registers. xsimd 8.1 does not know the extension, hence this check of our own.
inline bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return false; // OSXSAVE
    std::uint32_t xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xe6u) != 0xe6u) return false; // SSE, AVX, opmask and both halves of zmm0-31 saved
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(ebx & (1u << 16))) return false; // AVX512F
    if (eax < 1 || !__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;           // no sub-leaf 1
    return (eax & (1u << 5)) != 0;
#else
    return false;
#endif
}

} // namespace facet
