// facet: scalar reference kernels, written from the definitions and nothing else.
//
// They take weights in PyTorch's layout (not the packed one), test every border explicitly and
// touch only the real channels, so that a SIMD kernel compared against them is checked for its
// packing, its blocking and its border handling at once. They are slow on purpose: clarity first.
#pragma once
#include "../core/tensor.hpp"
#include "conv_weights.hpp"
#include "grouped_conv_weights.hpp"

namespace facet::ref {

// out = act(conv(in, w) + bias) with any geometry, groups as in PyTorch (groups == cin == cout
// for depthwise). w is [cout][cin / groups][kernel_h][kernel_w].
inline void conv2d(const FeatureMap& in, const float* w, const float* bias, int cout, const ConvGeometry& g,
                   Epilogue epilogue, const FeatureMap& out) {
    const int cin_per_group = in.c / g.groups, cout_per_group = cout / g.groups;
    for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
            for (int o = 0; o < cout; ++o) {
                const int group = o / cout_per_group;
                double acc = bias ? bias[o] : 0.0;
                for (int i = 0; i < cin_per_group; ++i)
                    for (int ky = 0; ky < g.kernel_h; ++ky)
                        for (int kx = 0; kx < g.kernel_w; ++kx) {
                            const int iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
                            const int ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            acc += static_cast<double>(w[((o * cin_per_group + i) * g.kernel_h + ky) * g.kernel_w + kx]) *
                                   in.at(iy, ix)[group * cin_per_group + i];
                        }
                out.at(oy, ox)[o] = epilogue.apply(static_cast<float>(acc), o);
            }
}

// The same for a square k x k kernel with stride and padding `pad` on every side.
inline void conv2d(const FeatureMap& in, const float* w, const float* bias, int cout, int k, int stride, int pad,
                   int groups, Epilogue epilogue, const FeatureMap& out) {
    ConvGeometry g;
    g.kernel_h = g.kernel_w = k;
    g.stride_h = g.stride_w = stride;
    g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = pad;
    g.groups = groups;
    conv2d(in, w, bias, cout, g, epilogue, out);
}

// The source index of output index d of a nearest resampling from `in` to `out` samples:
// floor(d * in / out), as PyTorch's F.interpolate(mode="nearest") with an explicit output size.
inline int nearest_source(int d, int in, int out) { return static_cast<int>(static_cast<long long>(d) * in / out); }

// fine += nearest-resize(coarse) to fine's size.
inline void upsample_nearest_add(const FeatureMap& coarse, const FeatureMap& fine) {
    for (int y = 0; y < fine.h; ++y)
        for (int x = 0; x < fine.w; ++x) {
            const float* src = coarse.at(nearest_source(y, coarse.h, fine.h), nearest_source(x, coarse.w, fine.w));
            for (int ch = 0; ch < fine.c; ++ch) fine.at(y, x)[ch] += src[ch];
        }
}

// out = nearest-resize(in) to out's size.
inline void resize_nearest(const FeatureMap& in, const FeatureMap& out) {
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x) {
            const float* src = in.at(nearest_source(y, in.h, out.h), nearest_source(x, in.w, out.w));
            for (int ch = 0; ch < out.c; ++ch) out.at(y, x)[ch] = src[ch];
        }
}

} // namespace facet::ref
