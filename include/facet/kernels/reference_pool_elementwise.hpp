// facet: scalar references for the kernels imported graphs add (pool.hpp, elementwise.hpp),
// written from the definitions as reference.hpp's are: explicit bounds, real channels only,
// double accumulation.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/tensor.hpp"
#include "map_activation.hpp"
#include "pool_geometry.hpp"

namespace facet::ref {

// Average (max == false) or max pooling: each output is the mean or maximum of the input pixels
// under its window; the mean divides by the window clipped to the padded input when
// count_include_pad, else by the pixels actually summed.
inline void pool2d(const FeatureMap& in, const PoolGeometry& g, bool max, const FeatureMap& out) {
    for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
            for (int c = 0; c < out.c; ++c) {
                double sum = 0, best = -std::numeric_limits<double>::infinity();
                int summed = 0, padded = 0;
                for (int ky = 0; ky < g.kernel_h; ++ky)
                    for (int kx = 0; kx < g.kernel_w; ++kx) {
                        const int iy = oy * g.stride_h - g.pad_top + ky, ix = ox * g.stride_w - g.pad_left + kx;
                        if (iy < in.h + g.pad_bottom && ix < in.w + g.pad_right) ++padded;
                        if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                        sum += in.at(iy, ix)[c];
                        best = std::max(best, static_cast<double>(in.at(iy, ix)[c]));
                        ++summed;
                    }
                out.at(oy, ox)[c] = static_cast<float>(max ? best : sum / (g.count_include_pad ? padded : summed));
            }
}

inline void activation(const FeatureMap& in, const MapActivation& a, const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x)
            for (int c = 0; c < out.c; ++c) out.at(y, x)[c] = a.apply(in.at(y, x)[c], c);
}

// out = a + b (or a * b), b of a's size or one pixel broadcast over it.
inline void add_or_mul(const FeatureMap& a, const FeatureMap& b, bool mul, const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x)
            for (int c = 0; c < out.c; ++c) {
                const float u = a.at(y, x)[c], v = b.h == 1 && b.w == 1 ? b.at(0, 0)[c] : b.at(y, x)[c];
                out.at(y, x)[c] = mul ? u * v : u + v;
            }
}

// out(y, x, c) = in(y, x, c) where in has that pixel and channel, else 0 (map_copy.hpp's pad_end).
inline void pad_end(const FeatureMap& in, const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x)
            for (int c = 0; c < out.c; ++c) out.at(y, x)[c] = y < in.h && x < in.w && c < in.c ? in.at(y, x)[c] : 0.0f;
}

inline void softmax_channels(const FeatureMap& in, const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x) {
            const float* src = in.at(y, x);
            double sum = 0;
            for (int c = 0; c < out.c; ++c) sum += std::exp(static_cast<double>(src[c]));
            for (int c = 0; c < out.c; ++c) out.at(y, x)[c] = static_cast<float>(std::exp(static_cast<double>(src[c])) / sum);
        }
}

} // namespace facet::ref
