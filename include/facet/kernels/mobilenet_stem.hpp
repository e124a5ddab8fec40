// facet: the opening of a MobileNet - 3x3 stride-2 conv on the image, 3x3 depthwise, pointwise,
// and the next block's stride-2 depthwise - fused row by row, xsimd.
//
// Why not the NHWC kernels: with 3 input and 8 output channels a channel vector is half idle
// (16 lanes with AVX-512) and each map at half the image's resolution is 5 MB for a VGA frame
// (8 of its 16 lanes padding before the pointwise), written and read back through L3 four
// times. Here the conv and the first depthwise work on channel-planar rows
// (kernels/stem_layout.hpp): a vector holds 16 neighbouring pixels of one channel, every lane is
// useful for any channel count, and a weight is one broadcast. The image's rows are first split
// into even and odd columns, so that the stride-2 conv's taps at columns 2x - 1, 2x, 2x + 1 are
// three contiguous runs (odd[x], even[x], odd[x + 1]): 16 output pixels are three vector loads.
// The pointwise reads the planar depthwise row and writes NHWC pixels; its 16 or more output
// channels fill the channel vectors again, so it keeps the NHWC conv's register tile, and the
// stride-2 depthwise reads those NHWC rows as the standalone kernel reads a map.
// Every row is made just before it is first needed and kept while a 3x3 window can still use it
// (RowWindowCache), so the maps between the image and the output are a few rows (~100 KB for
// VGA) that stay in L2; none of the half-resolution maps is ever written out.
//
// Threads split the output rows into bands; a band recomputes the rows its window shares with
// the band above.
#pragma once
#include <algorithm>
#include <cstddef>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "conv_nhwc.hpp"
#include "dwconv3x3.hpp"
#include "stem_layout.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Pixel vectors per register block: with kStemChannelBlock channels, AVX-512 holds 16
// accumulators + 6 inputs, SSE/AVX2 8 + 3, within 32 / 16 registers.
template <class Arch>
constexpr int kStemPixelVectors = std::is_same<Arch, xsimd::avx512f>::value ? 2 : 1;

// A channel-planar row: pixel x of channel c at data[c * plane + x]; x = -1 is addressable.
struct PlanarRow {
    float* data;
    std::ptrdiff_t plane;
    float* channel(int c) const { return data + c * plane; }
};

#if defined(__AVX512F__)
// Where lane i of the plane at offset j (odd planes j = c, even planes j = 3 + c) finds its value
// among 96 interleaved RGB floats: float 6i + j, element (6i + j) % 32 of vector pair (6i + j) / 32.
struct RgbSplitTables {
    alignas(64) int index[6][16];
    unsigned from_second_pair[6], from_third_pair[6]; // lane masks
};

constexpr RgbSplitTables make_rgb_split_tables() {
    RgbSplitTables t{};
    for (int j = 0; j < 6; ++j)
        for (int i = 0; i < 16; ++i) {
            const int e = 6 * i + j;
            t.index[j][i] = e % 32;
            t.from_second_pair[j] |= static_cast<unsigned>(e / 32 == 1) << i;
            t.from_third_pair[j] |= static_cast<unsigned>(e / 32 == 2) << i;
        }
    return t;
}

// Splits 32 RGB pixels (96 floats in 6 vectors, from column 2x - 1) into the odd and even planes
// of pixels x .. x + 15: a two-source permute per pair of vectors and two blends per plane.
// xsimd 8 has no two-source permute, hence the intrinsics.
inline void split_rgb_avx512(const __m512 (&v)[6], const PlanarRow& out, int x) {
    static constexpr RgbSplitTables tables = make_rgb_split_tables();
    for (int j = 0; j < 6; ++j) {
        const __m512i index = _mm512_load_si512(tables.index[j]);
        __m512 r = _mm512_permutex2var_ps(v[0], index, v[1]);
        r = _mm512_mask_blend_ps(static_cast<__mmask16>(tables.from_second_pair[j]), r, _mm512_permutex2var_ps(v[2], index, v[3]));
        r = _mm512_mask_blend_ps(static_cast<__mmask16>(tables.from_third_pair[j]), r, _mm512_permutex2var_ps(v[4], index, v[5]));
        _mm512_storeu_ps(out.channel(2 * (j % 3) + (j < 3)) + x, r);
    }
}
#endif

// Input row iy as column planes: plane 2c holds channel c of columns 2x (x < out_w), plane
// 2c + 1 of columns 2x - 1 (x <= out_w); rows and columns outside the image are the padding.
template <class Arch>
inline void stem_split_row(const StemImage& in, int iy, int out_w, const PlanarRow& out) {
    // The scalar path, for pixels [x_begin, x_end]: column 2x - 1 to odd[x], 2x to even[x].
    const auto split_scalar = [&](int x_begin, int x_end, auto&& column) {
        for (int x = x_begin; x <= x_end; ++x)
            for (int c = 0; c < in.c; ++c) {
                out.channel(2 * c + 1)[x] = column(2 * x - 1, c);
                if (x < out_w) out.channel(2 * c)[x] = column(2 * x, c);
            }
    };
    if (!in.bytes) {
        const FeatureMap& m = in.floats;
        const float* src = m.at(iy, -1); // column i at src + (i + 1) * cstride; the ring is the padding
        int x = 0;
#if defined(__AVX512F__)
        if constexpr (std::is_same<Arch, xsimd::avx512f>::value)
            if (m.c == 3 && m.cstride == 3)
                for (; 2 * x + 30 <= m.w; x += 16) {
                    __m512 v[6];
                    for (int k = 0; k < 6; ++k) v[k] = _mm512_loadu_ps(src + 6 * x + 16 * k);
                    split_rgb_avx512(v, out, x);
                }
#endif
        split_scalar(x, out_w, [&](int column, int c) { return src[(column + 1) * m.cstride + c]; });
        return;
    }
    if (iy < 0 || iy >= in.h) return split_scalar(0, out_w, [&](int, int c) { return in.padding[c]; });
    const std::uint8_t* src = in.bytes + iy * in.row_bytes;
    const auto column = [&](int i, int c) { return i >= 0 && i < in.w ? static_cast<float>(src[i * in.c + c]) : in.padding[c]; };
    // Pixel 0 reads column -1, the padding: the scalar path does it, the vector one starts at 1.
    split_scalar(0, 0, column);
    int x = 1;
#if defined(__AVX512F__)
    if constexpr (std::is_same<Arch, xsimd::avx512f>::value)
        if (in.c == 3)
            for (; 2 * x + 30 < in.w; x += 16) {
                const std::uint8_t* s = src + 3 * (2 * x - 1);
                __m512 v[6];
                for (int k = 0; k < 6; ++k)
                    v[k] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16 * k))));
                split_rgb_avx512(v, out, x);
            }
#endif
    split_scalar(x, out_w, column);
}

// One output row of the 3x3 stride-2 conv (padding 1) from its three split input rows, all
// round_up(cout, 8) channels, pixels [0, out_w), and zeros at -1 and from out_w to the end of
// the step (the depthwise's padding; stale otherwise, as the scratch serves every size).
template <class Arch>
inline void stem_conv_row(const PlanarRow (&in)[3], const PackedConv& w, int out_w, const PlanarRow& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size, PV = kStemPixelVectors<Arch>, CB = kStemChannelBlock;
    static_assert(kStemPixelStep % (PV * N) == 0, "the planes' length assumes the step covers the pixel block");
    for (int o0 = 0; o0 < w.cout; o0 += CB) {
        for (int x = 0; x < out_w; x += PV * N) {
            B acc[PV][CB];
            for (int o = 0; o < CB; ++o)
                for (int pv = 0; pv < PV; ++pv) acc[pv][o] = B(w.bias[o0 + o]);
            for (int ky = 0; ky < 3; ++ky)
                for (int ci = 0; ci < w.cin; ++ci) {
                    const float* even = in[ky].channel(2 * ci) + x;
                    const float* odd = in[ky].channel(2 * ci + 1) + x;
                    B taps[3][PV]; // columns 2x - 1, 2x, 2x + 1
                    for (int pv = 0; pv < PV; ++pv) {
                        taps[0][pv] = B::load_aligned(odd + pv * N);
                        taps[1][pv] = B::load_aligned(even + pv * N);
                        taps[2][pv] = B::load_unaligned(odd + pv * N + 1);
                    }
                    for (int kx = 0; kx < 3; ++kx) {
                        const float* wt = w.weights.get() + ((ky * 3 + kx) * w.cin + ci) * w.cout_pad + o0;
                        for (int o = 0; o < CB; ++o) {
                            const B wo(wt[o]);
                            for (int pv = 0; pv < PV; ++pv) acc[pv][o] = xsimd::fma(taps[kx][pv], wo, acc[pv][o]);
                        }
                    }
                }
            for (int o = 0; o < CB; ++o)
                for (int pv = 0; pv < PV; ++pv)
                    activate_channel<Arch>(acc[pv][o], w.epilogue, o0 + o).store_aligned(out.channel(o0 + o) + x + pv * N);
        }
        for (int o = 0; o < CB; ++o) {
            float* plane = out.channel(o0 + o);
            plane[-1] = 0.0f;
            std::fill(plane + out_w, plane + round_up(out_w, kStemPixelStep) + 1, 0.0f);
        }
    }
}

// One row of the 3x3 depthwise (stride 1) from the conv rows above, at and below it.
template <class Arch>
inline void stem_depthwise_row(const PlanarRow (&rows)[3], const PackedDepthwise& w, int out_w, const PlanarRow& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    for (int c = 0; c < w.c; ++c) {
        B k[9];
        for (int t = 0; t < 9; ++t) k[t] = B(w.weights[t * w.c_pad + c]);
        const B bias(w.bias[c]);
        const float* src[3] = {rows[0].channel(c), rows[1].channel(c), rows[2].channel(c)};
        float* dst = out.channel(c);
        for (int x = 0; x < out_w; x += N) {
            B acc = bias;
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) acc = xsimd::fma(B::load_unaligned(src[ky] + x + kx - 1), k[ky * 3 + kx], acc);
            activate_channel<Arch>(acc, w.epilogue, c).store_aligned(dst + x);
        }
    }
}

// One row of the pointwise conv from the planar depthwise row into NHWC pixels.
template <class Arch>
inline void stem_pointwise_row(const PlanarRow& in, const PackedConv& w, int out_w, float* out_row, std::ptrdiff_t cstride) {
    constexpr int N = Batch<Arch>::size;
    for_each_vector_block<Arch>(w.cout_pad / N, [&](auto width, int v) {
        for_each_pixel_tile(out_w, [&](auto pixels, int x) {
            ConvTile<Arch, pixels, width> tile(w, v);
            tile.accumulate(in.data + x, 1, in.plane, w.cin, w.weights.get() + v * N, w.cout_pad);
            tile.store(w, v, out_row + x * cstride, cstride);
        });
    });
}

// A cache of the last three rows a producer made, row r in slot (r + 1) % 3: any three
// consecutive rows (a 3x3 window) are in distinct slots, so a window's rows, fetched one after
// the other, never evict each other, and each row is made once as the window slides.
template <class Row>
struct RowWindowCache {
    Row slots[3];
    int held[3] = {-2, -2, -2};

    template <class Make>
    const Row& get(int r, Make&& make) {
        const int slot = (r + 1) % 3;
        if (held[slot] != r) {
            make(r, slots[slot]);
            held[slot] = r;
        }
        return slots[slot];
    }
};

// out = dw2(pw(dw(conv(in)))), each with its bias and epilogue: a MobileNet's stem conv, first
// block and second block's depthwise. conv: 3x3 stride 2, conv.cin == in.c; dw: 3x3 stride 1,
// dw.c == conv.cout; pw: 1x1, pw.cin == dw.c; dw2: 3x3 stride 2, dw2.c == pw.cout. out is conv_out_size(conv_out_size(in, 3, 2), 3, 2) x pw.cout.
// scratch: StemScratch(conv_out_size(in.w, 3, 2), conv.cin, conv.cout, pw.cout_pad).floats(threads).
// The pointwise's output never leaves the scratch: it is the largest map of the network.
template <class Arch>
void mobilenet_stem_nhwc(const StemImage& in, const PackedConv& conv, const PackedDepthwise& dw, const PackedConv& pw,
                         const PackedDepthwise& dw2, float* scratch, const FeatureMap& out, int threads) {
    const int mid_h = conv_out_size(in.h, 3, 2), mid_w = conv_out_size(in.w, 3, 2);
    const StemScratch layout(mid_w, conv.cin, conv.cout, pw.cout_pad);
    const std::ptrdiff_t pw_step = pw.cout_pad;
    const int bands = std::max(1, std::min(threads, out.h));
    parallel_for<Arch>(0, bands, threads, [&](int band) {
        float* next = scratch + static_cast<std::size_t>(band) * layout.per_thread;
        // Pixel 0 of a planar row's first plane kChannelAlign floats in: aligned, x = -1 before it.
        const auto take_planar = [&](int planes) {
            const PlanarRow r{next + kChannelAlign, layout.plane};
            next += planes * layout.plane;
            return r;
        };
        // An NHWC row's pixel 0 one pixel in; pixels -1 and mid_w are the zero padding.
        const auto take_nhwc = [&] {
            float* pixel0 = next + pw_step;
            std::fill(next, pixel0, 0.0f);
            std::fill(pixel0 + mid_w * pw_step, pixel0 + (mid_w + 1) * pw_step, 0.0f);
            next += layout.nhwc_row;
            return pixel0;
        };
        RowWindowCache<PlanarRow> inputs, convs;
        RowWindowCache<float*> pointwise;
        for (PlanarRow& r : inputs.slots) r = take_planar(layout.input_planes);
        for (PlanarRow& r : convs.slots) r = take_planar(layout.channels);
        const PlanarRow zero = take_planar(layout.channels), dw_row = take_planar(layout.channels);
        std::fill(zero.data - kChannelAlign, zero.data - kChannelAlign + layout.channels * layout.plane, 0.0f);
        for (float*& r : pointwise.slots) r = take_nhwc();
        float* const zero_nhwc = take_nhwc();
        std::fill(zero_nhwc, zero_nhwc + mid_w * pw_step, 0.0f);

        const auto input_row = [&](int iy) -> const PlanarRow& {
            return inputs.get(iy, [&](int r, const PlanarRow& slot) { stem_split_row<Arch>(in, r, mid_w, slot); });
        };
        const auto conv_row = [&](int y) -> const PlanarRow& {
            if (y < 0 || y >= mid_h) return zero;
            return convs.get(y, [&](int r, const PlanarRow& slot) {
                const PlanarRow rows[3] = {input_row(2 * r - 1), input_row(2 * r), input_row(2 * r + 1)};
                stem_conv_row<Arch>(rows, conv, mid_w, slot);
            });
        };
        const auto pointwise_row = [&](int y) -> const float* {
            if (y < 0 || y >= mid_h) return zero_nhwc - pw_step;
            return pointwise.get(y, [&](int r, float* slot) {
                const PlanarRow window[3] = {conv_row(r - 1), conv_row(r), conv_row(r + 1)};
                stem_depthwise_row<Arch>(window, dw, mid_w, dw_row);
                stem_pointwise_row<Arch>(dw_row, pw, mid_w, slot, pw_step);
            }) - pw_step;
        };
        const int y0 = static_cast<int>(static_cast<long long>(out.h) * band / bands);
        const int y1 = static_cast<int>(static_cast<long long>(out.h) * (band + 1) / bands);
        for (int y = y0; y < y1; ++y) {
            const float* const rows[3] = {pointwise_row(2 * y - 1), pointwise_row(2 * y), pointwise_row(2 * y + 1)};
            dwconv3x3_row<Arch, 2>(rows, pw_step, dw2, out.at(y, 0), out.cstride, out.w);
        }
    });
}

} // namespace
} // namespace facet::simd
