// facet: scalar reference kernels, written from the definitions and nothing else.
//
// They take weights in PyTorch's layout (not the packed one), test every border explicitly and
// touch only the real channels, so that a SIMD kernel compared against them is checked for its
// packing, its blocking and its border handling at once. They are slow on purpose: clarity first.
#pragma once
#include "../core/tensor.hpp"
#include "conv_weights.hpp"

namespace facet::ref {

// out = act(conv(in, w) + bias), groups as in PyTorch (groups == cin == cout for depthwise).
// w is [cout][cin / groups][k][k].
inline void conv2d(const FeatureMap& in, const float* w, const float* bias, int cout, int k, int stride, int pad,
                   int groups, Epilogue epilogue, const FeatureMap& out) {
    const int cin_per_group = in.c / groups, cout_per_group = cout / groups;
    for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
            for (int o = 0; o < cout; ++o) {
                const int g = o / cout_per_group;
                double acc = bias ? bias[o] : 0.0;
                for (int i = 0; i < cin_per_group; ++i)
                    for (int ky = 0; ky < k; ++ky)
                        for (int kx = 0; kx < k; ++kx) {
                            const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            acc += static_cast<double>(w[((o * cin_per_group + i) * k + ky) * k + kx]) *
                                   in.at(iy, ix)[g * cin_per_group + i];
                        }
                out.at(oy, ox)[o] = epilogue.apply(static_cast<float>(acc), o);
            }
}

// fine += nearest-resize(coarse) to fine's size; source index floor(d * in / out), as PyTorch's
// F.interpolate(mode="nearest") with an explicit output size.
inline void upsample_nearest_add(const FeatureMap& coarse, const FeatureMap& fine) {
    for (int y = 0; y < fine.h; ++y)
        for (int x = 0; x < fine.w; ++x) {
            const int sy = static_cast<int>(static_cast<long long>(y) * coarse.h / fine.h);
            const int sx = static_cast<int>(static_cast<long long>(x) * coarse.w / fine.w);
            for (int ch = 0; ch < fine.c; ++ch) fine.at(y, x)[ch] += coarse.at(sy, sx)[ch];
        }
}

} // namespace facet::ref
