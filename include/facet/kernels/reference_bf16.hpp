// facet: scalar references of the bf16 kernels (conv1x1_bf16.hpp, winograd_f43_bf16.hpp), written
// from the definitions: every operand of a product rounded to bf16 (to nearest, ties to even), each
// product exact in float32, and the float32 sums in `vdpbf16ps`'s order (gemm_bf16.hpp): per pair
// of input channels in increasing order, the odd channel's product, then the even's. So the SIMD
// kernels must match them to the last bit on a CPU that implements the instruction as specified.
// Weights in PyTorch's layout, as reference.hpp's.
#pragma once
#include <cmath>
#include <vector>

#include "../core/tensor.hpp"
#include "bf16.hpp"
#include "conv_weights.hpp"

namespace facet::ref {

// sum over ci of x[ci] * w[ci] in bf16, added to acc in `vdpbf16ps`'s order; a missing odd
// partner (ci == n) adds nothing.
inline float dot_bf16(float acc, const float* x, const float* w, int n) {
    for (int even = 0; even < n; even += 2) {
        if (even + 1 < n) acc += round_to_bf16(x[even + 1]) * round_to_bf16(w[even + 1]);
        acc += round_to_bf16(x[even]) * round_to_bf16(w[even]);
    }
    return acc;
}

// out = act(conv1x1(in) + bias) in bf16; w is [cout][cin].
inline void conv1x1_bf16(const FeatureMap& in, const float* w, const float* bias, int cout, Epilogue epilogue,
                         const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x)
            for (int o = 0; o < cout; ++o)
                out.at(y, x)[o] = epilogue.apply(dot_bf16(bias[o], in.at(y, x), w + static_cast<std::size_t>(o) * in.c, in.c), o);
}

namespace detail {

// B^T d for 6 values, in the SIMD kernel's float operations (winograd::input_transform_1d), so the
// transformed input rounds to the same bf16 numbers.
inline void winograd_input_1d(const float (&d)[6], float (&r)[6]) {
    r[0] = std::fma(4.0f, d[0], std::fma(-5.0f, d[2], d[4]));
    r[1] = std::fma(-4.0f, d[1] + d[2], d[3] + d[4]);
    r[2] = std::fma(4.0f, d[1] - d[2], d[4] - d[3]);
    r[3] = std::fma(2.0f, d[3] - d[1], d[4] - d[2]);
    r[4] = std::fma(2.0f, d[1] - d[3], d[4] - d[2]);
    r[5] = std::fma(4.0f, d[1], std::fma(-5.0f, d[3], d[5]));
}

// A^T m for 6 values, as winograd::output_transform_1d.
inline void winograd_output_1d(const float (&m)[6], float (&o)[4]) {
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = std::fma(2.0f, d, b);
    o[2] = std::fma(4.0f, c, a);
    o[3] = std::fma(8.0f, d, b) + m[5];
}

} // namespace detail

// out = act(conv3x3_stride1_pad1(in) + bias) by F(4x4, 3x3) with bf16 GEMMs: U = G g G^T (in
// double, then float, then bf16), V = B^T d B in float then bf16, M = sum U V (dot_bf16, from
// zero), Y = A^T M A + bias in float. w is [cout][cin][3][3].
inline void conv3x3_winograd_bf16(const FeatureMap& in, const float* w, const float* bias, int cout, Epilogue epilogue,
                                  const FeatureMap& out) {
    const int cin = in.c;
    std::vector<float> u(static_cast<std::size_t>(cout) * 36 * cin); // [cout][pos][cin]
    for (int o = 0; o < cout; ++o)
        for (int i = 0; i < cin; ++i) {
            double g[36];
            winograd_weight_transform(kWinogradG43, w + (static_cast<std::size_t>(o) * cin + i) * 9, g);
            for (int pos = 0; pos < 36; ++pos) u[(static_cast<std::size_t>(o) * 36 + pos) * cin + i] = static_cast<float>(g[pos]);
        }
    std::vector<float> v(static_cast<std::size_t>(36) * cin); // [pos][cin]
    for (int oy = 0; oy < out.h; oy += 4)
        for (int ox = 0; ox < out.w; ox += 4) {
            for (int c = 0; c < cin; ++c) {
                float d[6][6], cols[6][6];
                for (int i = 0; i < 6; ++i)
                    for (int j = 0; j < 6; ++j) {
                        const int y = oy - 1 + i, x = ox - 1 + j;
                        d[i][j] = y >= 0 && y < in.h && x >= 0 && x < in.w ? in.at(y, x)[c] : 0.0f;
                    }
                for (int j = 0; j < 6; ++j) {
                    const float col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
                    float r[6];
                    detail::winograd_input_1d(col, r);
                    for (int i = 0; i < 6; ++i) cols[i][j] = r[i];
                }
                for (int i = 0; i < 6; ++i) {
                    float r[6];
                    detail::winograd_input_1d(cols[i], r);
                    for (int j = 0; j < 6; ++j) v[static_cast<std::size_t>(i * 6 + j) * cin + c] = r[j];
                }
            }
            for (int o = 0; o < cout; ++o) {
                float m[6][6], rows[6][4];
                for (int pos = 0; pos < 36; ++pos)
                    m[pos / 6][pos % 6] = dot_bf16(0.0f, &v[static_cast<std::size_t>(pos) * cin],
                                                   &u[(static_cast<std::size_t>(o) * 36 + pos) * cin], cin);
                for (int i = 0; i < 6; ++i) {
                    float r[4];
                    detail::winograd_output_1d(m[i], r);
                    for (int j = 0; j < 4; ++j) rows[i][j] = r[j];
                }
                for (int j = 0; j < 4 && ox + j < out.w; ++j) {
                    const float col[6] = {rows[0][j], rows[1][j], rows[2][j], rows[3][j], rows[4][j], rows[5][j]};
                    float r[4];
                    detail::winograd_output_1d(col, r);
                    for (int i = 0; i < 4 && oy + i < out.h; ++i) out.at(oy + i, ox + j)[o] = epilogue.apply(r[i] + bias[o], o);
                }
            }
        }
}

} // namespace facet::ref
