// facet: scalar references of the int8 kernels (conv_int8.hpp), from the definitions: weights in
// PyTorch's layout, the zero point subtracted from every input byte (not folded into the bias),
// borders tested explicitly. They end in the same requantisation (int8_layout.hpp), so the SIMD
// kernels must match them byte for byte.
#pragma once
#include <cstdint>

#include "int8_layout.hpp"

namespace facet::ref {

// The int32 accumulator of a conv with `groups` (1: dense, cin: depthwise) at output (oy, ox),
// channel o: bias_q[o] + sum of (x - zp_in) * w over the taps inside the map.
inline std::int32_t conv_int8_accumulator(const QuantizedMap& in, const std::int8_t* w_oihw, std::int32_t bias_q, int o,
                                          int k, int stride, int groups, int oy, int ox) {
    const int pad = (k - 1) / 2, cin_per_group = groups == 1 ? in.c : 1, first = groups == 1 ? 0 : o;
    std::int32_t acc = bias_q;
    for (int i = 0; i < cin_per_group; ++i)
        for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
                const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                acc += (in.at(iy, ix)[first + i] - in.q.zero_point) * w_oihw[((o * cin_per_group + i) * k + ky) * k + kx];
            }
    return acc;
}

// out = requantise(conv(in) + bias_q), bytes (r.quantized_output) or floats.
inline void conv2d_int8(const QuantizedMap& in, const std::int8_t* w_oihw, const std::int32_t* bias_q, int cout, int k,
                        int stride, int groups, const Requantization& r, const ConvInt8Output& out) {
    const int oh = r.quantized_output ? out.bytes->h : out.floats->h, ow = r.quantized_output ? out.bytes->w : out.floats->w;
    for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox)
            for (int o = 0; o < cout; ++o) {
                const std::int32_t acc = conv_int8_accumulator(in, w_oihw, bias_q[o], o, k, stride, groups, oy, ox);
                if (r.quantized_output) out.bytes->at(oy, ox)[o] = r.byte(acc, o);
                else out.floats->at(oy, ox)[o] = r.real(acc, o);
            }
}

// out = quantise(in) with out.q.
inline void quantize(const FeatureMap& in, const QuantizedMap& out) {
    for (int y = 0; y < in.h; ++y)
        for (int x = 0; x < in.w; ++x)
            for (int c = 0; c < in.c; ++c) out.at(y, x)[c] = out.q.quantize(in.at(y, x)[c]);
}

} // namespace facet::ref
