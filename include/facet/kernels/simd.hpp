// facet: the few xsimd helpers every SIMD kernel shares.
#pragma once
#include <xsimd/xsimd.hpp>

#include "conv_weights.hpp"

namespace facet::simd {

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

// Runs a loop body over a parallel range with OpenMP when threads > 1, serially otherwise (no
// team start-up cost on the one-thread path the benchmarks measure).
template <class Body>
inline void parallel_for(int begin, int end, int threads, Body&& body) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int i = begin; i < end; ++i) body(i);
}

} // namespace facet::simd
