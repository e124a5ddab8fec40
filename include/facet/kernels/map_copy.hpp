// facet: copies between feature-map layouts, the data movement of an imported graph's
// concatenations and reshapes (models/graph.hpp). Plain loops of memcpy: they are bound by memory,
// not arithmetic, so they need no per-ISA instantiation. Each writes the real channels and zeroes
// the padding lanes up to the next multiple of 16, as the kernels do (kernels/lane_mask.hpp).
#pragma once
#include <cstring>

#include "../core/tensor.hpp"

namespace facet {

// Zeroes lanes [m.c, round_up(m.c, 16)) of every pixel.
inline void zero_padding_lanes(const FeatureMap& m) {
    const int padding = round_up(m.c, kChannelAlign) - m.c;
    if (padding == 0) return;
    for (int y = 0; y < m.h; ++y)
        for (int x = 0; x < m.w; ++x) std::memset(m.at(y, x) + m.c, 0, static_cast<std::size_t>(padding) * sizeof(float));
}

// dst's channels [first, first + src.c) = src's channels, pixel by pixel (a channel concatenation).
inline void copy_channels(const FeatureMap& src, const FeatureMap& dst, int first) {
    for (int y = 0; y < src.h; ++y)
        for (int x = 0; x < src.w; ++x) std::memcpy(dst.at(y, x) + first, src.at(y, x), static_cast<std::size_t>(src.c) * sizeof(float));
}

// dst's rows [first, first + src.h) = src's rows (a concatenation of rows; same width and channels).
inline void copy_rows(const FeatureMap& src, const FeatureMap& dst, int first) {
    for (int y = 0; y < src.h; ++y)
        for (int x = 0; x < src.w; ++x) std::memcpy(dst.at(first + y, x), src.at(y, x), static_cast<std::size_t>(src.c) * sizeof(float));
}

// dst = src at its top-left, zeros after it: rows [src.h, dst.h), columns [src.w, dst.w) and channels
// [src.c, dst.c) (dst is at least src's size on every axis). face-api's ResNet appends zeros so to
// make a residual block's two branches the same shape.
inline void pad_end(const FeatureMap& src, const FeatureMap& dst) {
    const std::size_t lanes = static_cast<std::size_t>(round_up(dst.c, kChannelAlign));
    for (int y = 0; y < dst.h; ++y)
        for (int x = 0; x < dst.w; ++x) {
            float* out = dst.at(y, x);
            const std::size_t copied = y < src.h && x < src.w ? static_cast<std::size_t>(src.c) : 0;
            if (copied > 0) std::memcpy(out, src.at(y, x), copied * sizeof(float));
            std::memset(out + copied, 0, (lanes - copied) * sizeof(float));
        }
}

// dst (1 x 1 x h*w*c) = src flattened in channel-major order (c, y, x) when channel_major, as
// ONNX flattens a [1, C, H, W] tensor, else in storage order (y, x, c).
inline void flatten_map(const FeatureMap& src, const FeatureMap& dst, bool channel_major) {
    float* out = dst.at(0, 0);
    for (int y = 0; y < src.h; ++y)
        for (int x = 0; x < src.w; ++x)
            for (int c = 0; c < src.c; ++c) {
                const std::size_t pixel = static_cast<std::size_t>(y) * src.w + x;
                out[channel_major ? c * static_cast<std::size_t>(src.h) * src.w + pixel : pixel * src.c + c] = src.at(y, x)[c];
            }
    zero_padding_lanes(dst);
}

// dst (rows x 1 x k) = the values of src in storage order (y, x, c), k per row: a [1, C, H, W]
// map transposed to [1, H, W, C] and reshaped to [1, H * W * C / k, k] (detection heads' layout).
inline void regroup_rows(const FeatureMap& src, const FeatureMap& dst) {
    const int per_pixel = src.c / dst.c;
    for (int y = 0; y < src.h; ++y)
        for (int x = 0; x < src.w; ++x)
            for (int r = 0; r < per_pixel; ++r)
                std::memcpy(dst.at((y * src.w + x) * per_pixel + r, 0), src.at(y, x) + r * dst.c, static_cast<std::size_t>(dst.c) * sizeof(float));
    zero_padding_lanes(dst);
}

} // namespace facet
