// facet: the scratch memory of the fused MobileNet stem (kernels/mobilenet_stem.hpp), sized
// outside the instruction-set-specific code so a model can allocate it once.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../core/tensor.hpp"

namespace facet {

// The image the stem reads: 8-bit interleaved pixels as decoded (no float copy of the frame is
// made), or an NHWC float map (a resampled frame) whose ring is the padding.
struct StemImage {
    int h = 0, w = 0, c = 0;
    const std::uint8_t* bytes = nullptr; // rows of w * c bytes, row_bytes apart; null: `floats`
    std::ptrdiff_t row_bytes = 0;
    const float* padding = nullptr;      // bytes: the value (c floats) of every pixel outside the image
    FeatureMap floats;

    static StemImage of_bytes(const std::uint8_t* pixels, int height, int width, int channels, const float* padding) {
        StemImage s;
        s.h = height;
        s.w = width;
        s.c = channels;
        s.bytes = pixels;
        s.row_bytes = static_cast<std::ptrdiff_t>(width) * channels;
        s.padding = padding;
        return s;
    }
    static StemImage of_map(const FeatureMap& m) {
        StemImage s;
        s.h = m.h;
        s.w = m.w;
        s.c = m.c;
        s.floats = m;
        return s;
    }
};

// Output pixels a stem kernel computes per step: a multiple of every vector width times the
// pixel vectors it blocks (two 16-lane vectors with AVX-512). Planes are that much longer than
// the row, so no kernel needs a tail loop.
constexpr int kStemPixelStep = 32;

// Output channels of the stem conv per register block: 8 accumulators per pixel vector. The conv
// computes whole blocks; its packed weights are zero past cout.
constexpr int kStemChannelBlock = 8;

// The stem's rows, per thread (mobilenet_stem.hpp), for a conv output (the "middle" maps) mid_w
// pixels wide:
//  - three input rows split into even and odd columns (2 x cin planes each): the conv's window;
//  - three rows of the conv's output, one zero row (above and below the map) and one row of the
//    depthwise's output, each round_up(cout, kStemChannelBlock) planes;
//  - three NHWC rows of the pointwise's output (the second depthwise's window) and one zero row,
//    each mid_w pixels and a zero pixel either side, pw_cout_pad floats a pixel.
// A plane holds mid_w pixels plus the step's tail, with kChannelAlign floats before pixel 0 (so
// it is vector aligned and x = -1 exists) and after it.
struct StemScratch {
    int input_planes = 0;        // per input row
    int channels = 0;            // planes per conv or depthwise row
    std::ptrdiff_t plane = 0;    // floats per plane
    std::ptrdiff_t nhwc_row = 0; // floats per pointwise row
    std::size_t per_thread = 0;  // floats

    StemScratch(int mid_w, int cin, int cout, int pw_cout_pad)
        : input_planes(2 * cin), channels(round_up(cout, kStemChannelBlock)),
          plane(round_up(mid_w, kStemPixelStep) + 2 * kChannelAlign),
          nhwc_row(static_cast<std::ptrdiff_t>(mid_w + 2) * pw_cout_pad),
          per_thread(static_cast<std::size_t>((3 * input_planes + 5 * channels) * plane + 4 * nhwc_row)) {}

    std::size_t floats(int threads) const { return per_thread * static_cast<std::size_t>(std::max(1, threads)); }
};

} // namespace facet
