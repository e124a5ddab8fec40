// facet: scalar references for the layers MTCNN adds (ceil-mode max-pool, dense with the (W, H, C)
// flatten order) and for its input (a row of area resampling), written from the definitions as
// reference.hpp's are: PyTorch weight layouts, explicit bounds, real channels only, double
// accumulation (the resampling: its float operations in their defined order, so bit for bit).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/tensor.hpp"
#include "area_row_plan.hpp"
#include "conv_weights.hpp"
#include "int8_layout.hpp"

namespace facet::ref {

// out(y, x, c) = max of in over rows [y * stride, y * stride + k) and columns [x * stride,
// x * stride + k) that lie inside in (ceil mode keeps the partial windows at the far edges).
// Map: FeatureMap, or QuantizedMap (whose bytes pool as they are: quantisation is monotone).
template <class Map>
void maxpool_ceil(const Map& in, int k, int stride, const Map& out) {
    using T = std::remove_pointer_t<decltype(in.data)>;
    for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
            for (int c = 0; c < in.c; ++c) {
                T m = std::numeric_limits<T>::lowest(); // every window holds a pixel, so it is replaced
                for (int ky = 0; ky < k; ++ky)
                    for (int kx = 0; kx < k; ++kx) {
                        const int iy = oy * stride + ky, ix = ox * stride + kx;
                        if (iy < in.h && ix < in.w) m = std::max(m, in.at(iy, ix)[c]);
                    }
                out.at(oy, ox)[c] = m;
            }
}

// A dense layer on each of the out.h inputs stacked in `in` (input b is rows [b * h, (b + 1) * h),
// h = in.h / out.h), flattened as PyTorch does after permute(0, 3, 2, 1): (W, H, C) order.
// w is nn.Linear's [cout][in.w * h * in.c].
inline void dense_whc(const FeatureMap& in, const float* w, const float* bias, int cout, Epilogue epilogue,
                      const FeatureMap& out) {
    const int items = out.h, h = in.h / items, inputs = in.w * h * in.c;
    for (int b = 0; b < items; ++b)
        for (int o = 0; o < cout; ++o) {
            double acc = bias ? bias[o] : 0.0;
            for (int x = 0; x < in.w; ++x)
                for (int y = 0; y < h; ++y)
                    for (int c = 0; c < in.c; ++c)
                        acc += static_cast<double>(w[o * inputs + (x * h + y) * in.c + c]) * in.at(b * h + y, x)[c];
            out.at(b, 0)[o] = epilogue.apply(static_cast<float>(acc), o);
        }
}

// Value i of an area-resampled row (area_row_plan.hpp gives the formula).
inline float area_value(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& p, int i) {
    const std::uint32_t sum = (bottom[p.last[i]] - top[p.last[i]]) - (bottom[p.first[i]] - top[p.first[i]]);
    return (static_cast<float>(sum) / rows / p.width[i] - p.mean[i]) * p.scale[i];
}

// The row's real values, as floats or as bytes quantised by q.
inline void area_row(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& p, float* out) {
    for (int i = 0; i < p.values; ++i) out[i] = area_value(top, bottom, rows, p, i);
}
inline void area_row_int8(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& p, QuantParams q,
                          std::uint8_t* out) {
    for (int i = 0; i < p.values; ++i) out[i] = q.quantize(area_value(top, bottom, rows, p, i));
}

} // namespace facet::ref
