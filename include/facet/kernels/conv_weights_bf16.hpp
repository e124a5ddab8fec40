// facet: a dense conv's weights as bf16 pairs, for the AVX512-BF16 kernels (conv1x1_bf16.hpp,
// winograd_f43_bf16.hpp).
#pragma once
#include <cstddef>

#include "bf16.hpp"
#include "conv_weights.hpp"

namespace facet {

// Whether a packed conv of this shape has a bf16 kernel: pointwise, and 3x3 stride 1 (Winograd).
inline bool has_bf16_kernel(const PackedConv& p) { return (p.k == 1 && p.stride == 1) || (p.k == 3 && p.stride == 1); }

// Input-channel pairs of a bf16 layer: an odd cin gets a last pair whose second weight is zero.
inline int bf16_pairs(int cin) { return (cin + 1) / 2; }

// Fills p.bf16 from p's float weights (a pointwise conv's, or a 3x3 stride-1 conv's Winograd U),
// rounded to bf16: [taps][bf16_pairs(cin)][cout_pad] pairs, taps = 1 or 36, so that one pair of
// input channels and 16 output channels are one 64-byte vector, `vdpbf16ps`'s weight operand.
inline void add_bf16_weights(PackedConv& p) {
    if (!has_bf16_kernel(p)) return;
    const float* source = p.k == 1 ? p.weights.get() : p.winograd.get();
    const int taps = p.k == 1 ? 1 : 36, pairs = bf16_pairs(p.cin);
    p.bf16 = make_aligned_bf16_pairs(static_cast<std::size_t>(taps) * pairs * p.cout_pad);
    for (int t = 0; t < taps; ++t)
        for (int pair = 0; pair < pairs; ++pair)
            for (int o = 0; o < p.cout_pad; ++o) {
                const auto at = [&](int ci) {
                    return ci < p.cin ? source[(static_cast<std::size_t>(t) * p.cin + ci) * p.cout_pad + o] : 0.0f;
                };
                p.bf16[(static_cast<std::size_t>(t) * pairs + pair) * p.cout_pad + o] = bf16_pair(at(2 * pair), at(2 * pair + 1));
            }
}

} // namespace facet
