// facet: deformable convolution (DCNv1 and modulated DCNv2) on NHWC feature maps, xsimd, rows in parallel.
//
// Same result as torchvision.ops.deform_conv2d (reference_deform.hpp is its scalar twin). Each
// tile of up to kTilePixels output pixels of a row takes two steps:
//  1. Gather: for every pixel, offset group and tap, the bilinear sample of all the group's input
//     channels at the tap's displaced point, times the mask, into a column tile
//     [pixel][tap][channel]. Channels are innermost in the input, so one sample is four vector
//     loads and four FMAs per channel vector, whatever the point. A point strictly inside
//     (-1, h) x (-1, w) has its four neighbours inside the map or on its zero ring, so they are read
//     without tests and contribute zero where torchvision's border tests would skip them; any other
//     point samples zero.
//  2. GEMM: the column tile times the packed weights [tap][channel][cout_pad], with the register
//     tile of conv_nhwc.hpp (P pixels x V channel vectors; per reduction step V weight vectors are
//     loaded once and each pixel's column value is broadcast into them). Remainders get a tile of
//     exactly their size rather than a run of 1-pixel or 1-vector tiles (for_each_vector_block).
// The column tile of RetinaFace's 64-channel 3x3 convs is 6 x 9 x 64 floats, 14 KB: it stays in L1
// for all the output-channel blocks that read it.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <utility>

#include "deform_conv_weights.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

template <class Body, int... I>
inline void with_tile_size_impl(int n, Body& body, std::integer_sequence<int, I...>) {
    ((n == I + 1 ? body(std::integral_constant<int, I + 1>{}) : void()), ...);
}

// Calls body(std::integral_constant<int, n>) for a run-time n in [1, Max], so that the pixels left
// at the end of a row run a register tile of exactly their count.
template <int Max, class Body>
inline void with_tile_size(int n, Body&& body) {
    with_tile_size_impl(n, body, std::make_integer_sequence<int, Max>{});
}

// Column row of output pixel (oy, ox): columns[t * cin + c] = mask * (input channel c sampled at
// tap t's displaced point), for every tap t and input channel c.
template <class Arch>
inline void gather_deform_columns(const FeatureMap& in, const FeatureMap& offsets, const FeatureMap* mask,
                                  const DeformGeometry& g, int oy, int ox, float* columns) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const int cin = in.c, group_channels = cin / g.offset_groups;
    const float* offset = offsets.at(oy, ox);
    const float* modulation = mask ? mask->at(oy, ox) : nullptr;
    for (int og = 0; og < g.offset_groups; ++og)
        for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
                const int tap = og * g.taps() + ky * g.kw + kx;
                float* col = columns + (ky * g.kw + kx) * cin + og * group_channels;
                // int + float in float, as torchvision computes the point.
                const float y = static_cast<float>(oy * g.stride_h - g.pad_h + ky * g.dilation_h) + offset[2 * tap];
                const float x = static_cast<float>(ox * g.stride_w - g.pad_w + kx * g.dilation_w) + offset[2 * tap + 1];
                // Written so that NaN lands here too: never read from an undefined point.
                if (!(y > -1.0f && y < static_cast<float>(in.h) && x > -1.0f && x < static_cast<float>(in.w))) {
                    std::fill(col, col + group_channels, 0.0f);
                    continue;
                }
                const float y0 = std::floor(y), x0 = std::floor(x);
                const float ly = y - y0, lx = x - x0, hy = 1.0f - ly, hx = 1.0f - lx;
                const float m = modulation ? modulation[tap] : 1.0f;
                const float w00 = hy * hx * m, w01 = hy * lx * m, w10 = ly * hx * m, w11 = ly * lx * m;
                const float* p00 = in.at(static_cast<int>(y0), static_cast<int>(x0)) + og * group_channels;
                const float* p01 = p00 + in.cstride;
                const float* p10 = p00 + in.rstride;
                const float* p11 = p10 + in.cstride;
                const B b00(w00), b01(w01), b10(w10), b11(w11);
                int c = 0;
                for (; c + N <= group_channels; c += N) {
                    B v = B::load_unaligned(p00 + c) * b00;
                    v = xsimd::fma(B::load_unaligned(p01 + c), b01, v);
                    v = xsimd::fma(B::load_unaligned(p10 + c), b10, v);
                    v = xsimd::fma(B::load_unaligned(p11 + c), b11, v);
                    v.store_unaligned(col + c);
                }
                for (; c < group_channels; ++c) col[c] = w00 * p00[c] + w01 * p01[c] + w10 * p10[c] + w11 * p11[c];
            }
}

// Output pixels [ox, ox + P) of row oy, channel vectors [vec0, vec0 + V): bias + the pixels'
// column rows times the packed weights, then the epilogue. Only the input channels of the groups
// these output channels belong to are summed (the other weights are zero).
template <class Arch, int P, int V>
inline void deform_gemm_tile(const float* columns, const PackedDeformConv& w, int vec0, const FeatureMap& out, int oy,
                             int ox) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const int cin = w.cin, taps = w.geometry.taps(), row = taps * cin, cout_pad = w.cout_pad;
    const int cin_group = cin / w.geometry.groups, cout_group = w.cout / w.geometry.groups;
    // Channels of padding lanes only (first >= cout) give an empty range: bias (zero) alone.
    const int first = vec0 * N, last = std::min((vec0 + V) * N, w.cout) - 1;
    const int c_begin = first / cout_group * cin_group, c_end = (last / cout_group + 1) * cin_group;

    B acc[P][V];
    for (int v = 0; v < V; ++v) {
        const B b = B::load_aligned(w.bias.get() + (vec0 + v) * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    for (int t = 0; t < taps; ++t) {
        const float* col = columns + t * cin;
        const float* wt = w.weights.get() + static_cast<std::ptrdiff_t>(t) * cin * cout_pad + vec0 * N;
        for (int c = c_begin; c < c_end; ++c) {
            B wv[V];
            for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + static_cast<std::ptrdiff_t>(c) * cout_pad + v * N);
            for (int p = 0; p < P; ++p) {
                const B x(col[p * row + c]);
                for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(x, wv[v], acc[p][v]);
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        float* dst = out.at(oy, ox + p) + vec0 * N;
        for (int v = 0; v < V; ++v) activate<Arch>(acc[p][v], w.epilogue, (vec0 + v) * N).store_unaligned(dst + v * N);
    }
}

// out = epilogue(deform_conv2d(in, offsets, w, bias, mask)); mask == nullptr is DCNv1. in.c ==
// w.cin; offsets and mask are laid out as DeformGeometry says, at out's size, which is
// w.geometry.out_h(in.h) x w.geometry.out_w(in.w) x cout; in needs its zero ring (any padding,
// dilation and offsets: points beyond the ring sample zero without reading). out may be a channel
// slice of a wider map whose first channel is vector aligned.
template <class Arch>
void deform_conv2d_nhwc(const FeatureMap& in, const FeatureMap& offsets, const FeatureMap* mask,
                        const PackedDeformConv& w, const FeatureMap& out, int threads) {
    constexpr int N = Batch<Arch>::size;
    const int row = w.geometry.taps() * w.cin;
    const int vectors = w.cout_pad / N;
    parallel_for<Arch>(0, out.h, threads, [&](int oy) {
        // One column tile per row, so that each thread has its own; every value read is
        // gathered first.
        const std::unique_ptr<float[]> columns(new float[static_cast<std::size_t>(kTilePixels) * row]);
        for (int ox = 0; ox < out.w; ox += kTilePixels) {
            const int pixels = std::min(kTilePixels, out.w - ox);
            for (int p = 0; p < pixels; ++p)
                gather_deform_columns<Arch>(in, offsets, mask, w.geometry, oy, ox + p, columns.get() + p * row);
            with_tile_size<kTilePixels>(pixels, [&](auto tile_pixels) {
                for_each_vector_block<Arch>(vectors, [&](auto tile_vectors, int v) {
                    deform_gemm_tile<Arch, decltype(tile_pixels)::value, decltype(tile_vectors)::value>(columns.get(), w, v,
                                                                                                      out, oy, ox);
                });
            });
        }
    });
}

} // namespace
} // namespace facet::simd
