// facet: the few xsimd helpers every SIMD kernel shares.
#pragma once
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../core/parallel.hpp"
#include "conv_weights.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

template <class Arch>
using Batch = xsimd::batch<float, Arch>;

// How many vectors of output channels a register tile holds: it and the pixel count are chosen so
// that accumulators + weights + one broadcast fit the register file (32 zmm with AVX-512, 16
// otherwise): 6 x 4 + 4 + 1 = 29, and 6 x 2 + 2 + 1 = 15.
template <class Arch>
constexpr int kTileVectors = std::is_same<Arch, xsimd::avx512f>::value ? 4 : 2;
constexpr int kTilePixels = 6;

// The epilogue on the vector of channels [channel, channel + N). The branch is on a value fixed
// for the whole layer, so it predicts perfectly; leaky ReLU as max(x, slope * x) is exact for
// 0 <= slope <= 1.
template <class Arch>
inline Batch<Arch> activate(const Batch<Arch>& x, const Epilogue& e, int channel) {
    using B = Batch<Arch>;
    switch (e.kind) {
    case Activation::relu: return xsimd::max(x, B(0.0f));
    case Activation::leaky_relu: return xsimd::max(x, x * B(e.slope));
    case Activation::prelu: return xsimd::select(x > B(0.0f), x, x * B::load_aligned(e.slopes + channel));
    case Activation::none: break;
    }
    return x;
}

// The same on a vector of pixels of one channel (the channel-planar kernels).
template <class Arch>
inline Batch<Arch> activate_channel(const Batch<Arch>& x, const Epilogue& e, int channel) {
    using B = Batch<Arch>;
    if (e.kind == Activation::prelu) return xsimd::select(x > B(0.0f), x, x * B(e.slopes[channel]));
    return activate<Arch>(x, e, channel);
}

// Splits `vectors` output channel vectors into register-tile blocks: as many full blocks of
// kTileVectors as fit, then the remainder as one narrower block, so that no layer falls back to
// one-vector tiles (which load as many input values as they do FMAs). Calls
// block(std::integral_constant<int, V>{}, first_vector) for each.
template <class Arch, class Block>
inline void for_each_vector_block(int vectors, Block&& block) {
    constexpr int T = kTileVectors<Arch>;
    int v = 0;
    for (; v + T <= vectors; v += T) block(std::integral_constant<int, T>{}, v);
    switch (vectors - v) {
    case 1: block(std::integral_constant<int, 1>{}, v); break;
    case 2: if constexpr (T > 2) block(std::integral_constant<int, 2>{}, v); break;
    case 3: if constexpr (T > 3) block(std::integral_constant<int, 3>{}, v); break;
    default: break;
    }
}

} // namespace
} // namespace facet::simd
