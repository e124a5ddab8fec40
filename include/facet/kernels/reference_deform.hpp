// facet: scalar reference of the deformable convolution, written from torchvision's definition
// (torchvision.ops.deform_conv2d, MODELS.md section 3) and nothing else.
//
// Like reference.hpp it takes weights in PyTorch's layout, tests every border explicitly, touches
// only the real channels and sums in double: slow on purpose, so that the SIMD kernel compared
// against it is checked for its packing, its gather and its tiling at once.
#pragma once
#include <cmath>

#include "../core/tensor.hpp"
#include "deform_conv_weights.hpp"

namespace facet::ref {

// Channel c of `in` at the real-valued point (y, x), as torchvision's bilinear_interpolate: zero
// when the point is at or beyond one pixel outside the map, else the bilinear mix of the four
// surrounding pixels, those outside the map counting as zero.
inline double bilinear_zero_outside(const FeatureMap& in, int c, float y, float x) {
    if (y <= -1.0f || y >= static_cast<float>(in.h) || x <= -1.0f || x >= static_cast<float>(in.w)) return 0.0;
    const int y0 = static_cast<int>(std::floor(y)), x0 = static_cast<int>(std::floor(x));
    const double ly = y - y0, lx = x - x0;
    const auto pixel = [&](int py, int px) -> double {
        return py >= 0 && py < in.h && px >= 0 && px < in.w ? in.at(py, px)[c] : 0.0;
    };
    return (1 - ly) * (1 - lx) * pixel(y0, x0) + (1 - ly) * lx * pixel(y0, x0 + 1) +
           ly * (1 - lx) * pixel(y0 + 1, x0) + ly * lx * pixel(y0 + 1, x0 + 1);
}

// out = epilogue(deform_conv2d(in, offsets, w, bias, mask)), torchvision's semantics. w is
// [cout][cin / groups][kh][kw]; offsets and mask are laid out as DeformGeometry says; mask ==
// nullptr is DCNv1 (every sample weighs 1). out is g.out_h(in.h) x g.out_w(in.w) x cout.
inline void deform_conv2d(const FeatureMap& in, const FeatureMap& offsets, const FeatureMap* mask, const float* w,
                          const float* bias, int cout, const DeformGeometry& g, Epilogue epilogue,
                          const FeatureMap& out) {
    const int cin_group = in.c / g.groups, cout_group = cout / g.groups;
    const int channels_per_offset_group = in.c / g.offset_groups;
    for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
            for (int o = 0; o < cout; ++o) {
                double acc = bias ? bias[o] : 0.0;
                for (int i = 0; i < cin_group; ++i) {
                    const int c = o / cout_group * cin_group + i;
                    const int offset_group = c / channels_per_offset_group;
                    for (int ky = 0; ky < g.kh; ++ky)
                        for (int kx = 0; kx < g.kw; ++kx) {
                            const int tap = offset_group * g.taps() + ky * g.kw + kx;
                            // int + float in float, as torchvision computes the point.
                            const float y = static_cast<float>(oy * g.stride_h - g.pad_h + ky * g.dilation_h) +
                                            offsets.at(oy, ox)[2 * tap];
                            const float x = static_cast<float>(ox * g.stride_w - g.pad_w + kx * g.dilation_w) +
                                            offsets.at(oy, ox)[2 * tap + 1];
                            const double modulation = mask ? mask->at(oy, ox)[tap] : 1.0;
                            acc += static_cast<double>(w[((o * cin_group + i) * g.kh + ky) * g.kw + kx]) * modulation *
                                   bilinear_zero_outside(in, c, y, x);
                        }
                }
                out.at(oy, ox)[o] = epilogue.apply(static_cast<float>(acc), o);
            }
}

} // namespace facet::ref
