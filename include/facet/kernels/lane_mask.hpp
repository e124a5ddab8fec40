// facet: masking the lanes of a channel vector past a map's last real channel.
//
// A kernel writes lanes [0, round_up(c, 16)) of each output pixel, the padding lanes as zeros
// (core/tensor.hpp). When an input is a channel slice of a wider map (an imported graph's
// concatenation, written in place), its padding lanes hold the next slice's channels; kernels
// whose padding would not come out zero by itself (zero weights) clear it with keep_lanes.
#pragma once
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Lanes [0, count) of x, the others zero (all of x when count >= the vector's width).
template <class Arch>
inline Batch<Arch> keep_lanes(const Batch<Arch>& x, int count) {
    using B = Batch<Arch>;
    if (count >= static_cast<int>(B::size)) return x;
    alignas(64) static constexpr float lane_numbers[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return xsimd::select(B::load_aligned(lane_numbers) < B(static_cast<float>(count)), x, B(0.0f));
}

// The lanes a kernel writes per pixel of a map with c channels.
inline int written_lanes(int c) { return round_up(c, kChannelAlign); }

} // namespace
} // namespace facet::simd
