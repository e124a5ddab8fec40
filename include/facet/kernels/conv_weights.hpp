// facet: convolution weights repacked once, at load, into the layouts the SIMD kernels stream.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "bf16.hpp"

namespace facet {

enum class Activation { none, relu, leaky_relu, prelu };

// What a kernel applies to its accumulators before storing them (bias is always added).
struct Epilogue {
    Activation kind = Activation::none;
    float slope = 0.0f;             // leaky_relu: 0 <= slope <= 1, so that max(x, slope * x) is exact
    const float* slopes = nullptr;  // prelu: one slope per output channel (any value)

    float apply(float x, int channel) const {
        switch (kind) {
        case Activation::relu: return x > 0.0f ? x : 0.0f;
        case Activation::leaky_relu: return x > 0.0f ? x : x * slope;
        case Activation::prelu: return x > 0.0f ? x : x * slopes[channel];
        case Activation::none: break;
        }
        return x;
    }
};

// Copies per-channel epilogue data (PReLU slopes) into `storage`, zero-padded to `count_pad`
// so kernels can load whole aligned vectors, and returns the epilogue pointing at the copy.
inline Epilogue own_epilogue(Epilogue e, int count, int count_pad, AlignedFloats& storage) {
    if (e.kind != Activation::prelu) return e;
    storage = make_aligned_floats(static_cast<std::size_t>(count_pad));
    std::copy(e.slopes, e.slopes + count, storage.get());
    e.slopes = storage.get();
    return e;
}

// The shape a dense k x k conv's packed weights keep (float PackedConv, int8 PackedConvInt8):
// cout_pad is cout rounded up to kChannelAlign, the output lanes the kernels write.
struct ConvShape {
    int cin = 0, cout = 0, cout_pad = 0, k = 0, stride = 1;
};

inline ConvShape conv_shape(int cout, int cin, int k, int stride) {
    return {cin, cout, round_up(cout, kChannelAlign), k, stride};
}

// A dense k x k convolution (groups = 1), padding (k - 1) / 2 (so none for k = 2).
// weights: [k * k][cin][cout_pad], so for one tap and one input channel the output channels are one
// contiguous, aligned run: the kernel broadcasts an input value and FMAs it into whole vectors.
// Lanes cout..cout_pad-1 hold zero weights and bias, so padded output channels come out zero.
// For 3x3 stride-1 convs, `winograd` also holds the transformed weights U = G g G^T of Winograd's
// F(m x m, 3 x 3), m = winograd_tile (kernels/winograd.hpp): [(m + 2)^2][cin][cout_pad]. pack_conv
// makes F(4x4, 3x3)'s; pack_winograd re-makes them for the other variant.
// A bf16 layer (conv_weights_bf16.hpp) also holds its pointwise weights or its U as bf16 pairs of
// input channels, `bf16`; `weights` and `winograd` then hold the same numbers widened, for CPUs
// without AVX512_BF16.
struct PackedConv : ConvShape {
    Epilogue epilogue;
    AlignedFloats weights, bias, epilogue_data, winograd;
    AlignedBf16Pairs bf16;
    int winograd_tile = 0; // m of the F(m x m, 3 x 3) that `winograd` holds: 4 or 3 (0: none)
};

// The positions of F(m x m, 3 x 3)'s transformed tile: its input tile is (m + 2) x (m + 2).
constexpr int winograd_positions(int tile) { return (tile + 2) * (tile + 2); }

// G of F(4x4, 3x3) (points 0, +-1, +-2, infinity) and of F(3x3, 3x3) (points 0, +-1, 2, infinity):
// the weight side of the transforms kernels/winograd.hpp applies to the input (B^T) and the
// output (A^T); derived together (Lavin & Gray's Cook-Toom construction), each B^T row's scale
// moved into G so that B^T holds small integers.
constexpr double kWinogradG43[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
constexpr double kWinogradG33[5][3] = {
    {1.0 / 2, 0, 0}, {1.0 / 2, 1.0 / 2, 1.0 / 2}, {1.0 / 6, -1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3, 2.0 / 3}, {0, 0, 1}};

// U = G g G^T of one 3x3 kernel g (row-major), in double; G is n x 3, U n x n (row-major).
template <int N>
void winograd_weight_transform(const double (&G)[N][3], const float* g, double (&u)[N * N]) {
    double gg[N][3]; // G g
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) u[i * N + j] = gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2];
}

// Fills p.winograd (and p.winograd_tile) with F(tile x tile, 3 x 3)'s U of p's 3x3 stride-1
// weights: tile 4 for any map, 3 where it covers a layer's fixed output with fewer products (see
// winograd_tile_for). Only for float layers: the bf16 GEMMs read F(4x4, 3x3)'s U.
template <int N>
void pack_winograd_with(PackedConv& p, const double (&G)[N][3]) {
    p.winograd = make_aligned_floats(static_cast<std::size_t>(N) * N * p.cin * p.cout_pad);
    float g[9];
    double u[N * N];
    for (int o = 0; o < p.cout; ++o)
        for (int i = 0; i < p.cin; ++i) {
            for (int t = 0; t < 9; ++t) g[t] = p.weights[(static_cast<std::size_t>(t) * p.cin + i) * p.cout_pad + o];
            winograd_weight_transform(G, g, u);
            for (int pos = 0; pos < N * N; ++pos)
                p.winograd[(static_cast<std::size_t>(pos) * p.cin + i) * p.cout_pad + o] = static_cast<float>(u[pos]);
        }
    p.winograd_tile = N - 2;
}

inline void pack_winograd(PackedConv& p, int tile) {
    if (p.k != 3 || p.stride != 1) throw Error("pack_winograd: Winograd needs a 3x3 stride-1 conv");
    if (tile == 4) return pack_winograd_with(p, kWinogradG43);
    if (tile == 3) return pack_winograd_with(p, kWinogradG33);
    throw Error("pack_winograd: tile " + std::to_string(tile) + " is not 3 or 4");
}

// The Winograd tile for a layer whose output is always out_h x out_w (MTCNN's R-Net and O-Net
// convs, on fixed-size crops): the one whose tiles covering the output take fewer transformed
// products, F(3x3, 3x3)'s 25 a tile against F(4x4, 3x3)'s 36. A 9 x 9 output takes 9 tiles either
// way, 225 against 324 products a channel pair (F(4x4) computes 12 x 12 and drops 63 outputs).
// Products are a proxy: what the measurements also saw is that F(4x4)'s partial edge tiles take the
// bounds-checked load path (O-Net conv2's 21 x 21 = 5 x 4 + 1: a sixth row and column of tiles with
// 3 of 4 outputs dropped), so its 1.25x in F(3x3) is mostly those tiles, not the 5.5% fewer
// products. The rule agrees with the measured choice at all three MTCNN shapes (README, MTCNN).
inline int winograd_tile_for(int out_h, int out_w) {
    const auto products = [&](int tile) {
        return ((out_h + tile - 1) / tile) * ((out_w + tile - 1) / tile) * winograd_positions(tile);
    };
    return products(3) < products(4) ? 3 : 4;
}

// From PyTorch's [cout][cin][k][k] layout.
inline PackedConv pack_conv(const float* w_oihw, const float* bias, int cout, int cin, int k, int stride,
                            Epilogue epilogue) {
    PackedConv p;
    static_cast<ConvShape&>(p) = conv_shape(cout, cin, k, stride);
    p.epilogue = own_epilogue(epilogue, cout, p.cout_pad, p.epilogue_data);
    p.weights = make_aligned_floats(static_cast<std::size_t>(k) * k * cin * p.cout_pad);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.cout_pad));
    for (int o = 0; o < cout; ++o) {
        p.bias[o] = bias ? bias[o] : 0.0f;
        for (int i = 0; i < cin; ++i)
            for (int t = 0; t < k * k; ++t)
                p.weights[(static_cast<std::size_t>(t) * cin + i) * p.cout_pad + o] =
                    w_oihw[(static_cast<std::size_t>(o) * cin + i) * k * k + t];
    }
    if (k == 3 && stride == 1) pack_winograd(p, 4);
    return p;
}

// A depthwise 3 x 3 convolution, padding 1. weights: [9][c_pad], bias [c_pad].
struct PackedDepthwise {
    int c = 0, c_pad = 0, stride = 1;
    Epilogue epilogue;
    AlignedFloats weights, bias, epilogue_data;
};

// From PyTorch's [c][1][3][3] layout.
inline PackedDepthwise pack_depthwise(const float* w_c1hw, const float* bias, int c, int stride, Epilogue epilogue) {
    PackedDepthwise p;
    p.c = c;
    p.c_pad = round_up(c, kChannelAlign);
    p.stride = stride;
    p.epilogue = own_epilogue(epilogue, c, p.c_pad, p.epilogue_data);
    p.weights = make_aligned_floats(static_cast<std::size_t>(9) * p.c_pad);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.c_pad));
    for (int ch = 0; ch < c; ++ch) {
        p.bias[ch] = bias ? bias[ch] : 0.0f;
        for (int t = 0; t < 9; ++t) p.weights[static_cast<std::size_t>(t) * p.c_pad + ch] = w_c1hw[ch * 9 + t];
    }
    return p;
}

// Output size of a conv with padding (k - 1) / 2, as PyTorch computes it.
constexpr int conv_out_size(int in, int k, int stride) { return (in + 2 * ((k - 1) / 2) - k) / stride + 1; }

} // namespace facet
