// facet: the int8 side of the kernels' data: uint8 feature maps, int8 weights packed for the
// kernels, and the one requantisation rule every int8 kernel and its reference share.
//
// Quantisation (as ONNX's QDQ and onnxruntime.quantization): an activation is uint8, asymmetric,
// real = (q - zero_point) * scale; a weight is int8, symmetric per output channel, real = q *
// weight_scale[o]. A conv's accumulator is the exact int32 sum of (q_in - zp_in) * q_w plus the
// bias in the same units (bias / (scale_in * weight_scale[o]), rounded); the zero point's share,
// zp_in * sum(q_w), is folded into that int32 bias at pack time, so the inner loops multiply the raw
// bytes. The padding ring of a QuantizedMap holds its zero point, so a border tap contributes
// (zp - zp) * w = 0, exactly the zero padding of the float network.
//
// Requantisation (requantize below), the same in the SIMD kernels and the scalar references:
//   y = activation(float(acc) * multiplier[o])       one float multiply, then max(y, 0), max(y, slope * y)
//                                                    or PReLU's y > 0 ? y : y * slopes[o]
//   uint8 out:  q = nearbyint(clamp(y, -zp, 255 - zp)) + zp   (round half to even, the default mode)
//   float out:  y as it is (a layer feeding a float one)
// with multiplier = scale_in * weight_scale[o] / scale_out (uint8 out) or scale_in * weight_scale[o]
// (float out). The activation commutes with the positive multiplier (PReLU's too: it is linear on
// each side of zero), so it acts on the real value.
// Every step is an IEEE single operation on the same operands in the same order, so every ISA's
// kernel gives the reference's bytes exactly (tests/test_kernels_int8.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "conv_weights.hpp"

namespace facet {

// What maps a float value onto uint8: real = (q - zero_point) * scale.
struct QuantParams {
    float scale = 1.0f;
    int zero_point = 0;

    std::uint8_t quantize(float x) const { return static_cast<std::uint8_t>(requantize_clamped(x / scale)); }
    float dequantize(std::uint8_t q) const { return static_cast<float>(q - zero_point) * scale; }
    // nearbyint(clamp(y, -zp, 255 - zp)) + zp: y in units of scale, relative to the zero point.
    // The rounding is the addition of 1.5 x 2^23, whose sum has no fraction bits, so the add rounds
    // to an integer as nearbyint does (same mode; exact for |v| < 2^22, and v is clamped to
    // [-255, 255]): compilers vectorise it, where std::nearbyint without SSE4.1 is a libm call
    // per value (MTCNN's crops quantise a million values a frame this way).
    int requantize_clamped(float y) const {
        const float lo = static_cast<float>(-zero_point), hi = static_cast<float>(255 - zero_point);
        constexpr float kRound = 0x1.8p23f;
        const float v = std::min(std::max(y, lo), hi);
        return static_cast<int>((v + kRound) - kRound) + zero_point;
    }
};

// A uint8 feature map: NHWC, channel stride rounded up to kChannelAlign bytes, a one-pixel ring
// holding the zero point (see the top of this file). As FeatureMap, but bytes.
struct QuantizedMap {
    std::uint8_t* data = nullptr; // pixel (0, 0), channel 0
    int h = 0, w = 0, c = 0, cstride = 0;
    std::ptrdiff_t rstride = 0;
    QuantParams q;

    std::uint8_t* at(int y, int x) const { return data + y * rstride + static_cast<std::ptrdiff_t>(x) * cstride; }
    QuantizedMap channels(int first, int count) const {
        QuantizedMap s = *this;
        s.data = data + first;
        s.c = count;
        return s;
    }
    // As FeatureMap::pixels: the valid (unpadded) 3x3 conv is the padded kernel on the interior.
    QuantizedMap pixels(int y, int x, int height, int width) const { return pixels_of(*this, y, x, height, width); }
};

// Owns a QuantizedMap's storage, ring included. Reallocates only to grow; refills the ring with
// the zero point whenever the shape or the zero point changes (the producer writes every interior lane).
class QuantizedBuffer {
public:
    void resize(int h, int w, int c, QuantParams q) {
        const int cstride = round_up(c, kChannelAlign);
        const std::size_t need = padded_map_size(h, w, cstride);
        const bool reshaped = h != map_.h || w != map_.w || cstride != map_.cstride || q.zero_point != map_.q.zero_point;
        if (need > capacity_) {
            storage_.reset(new std::uint8_t[need]());
            capacity_ = need;
        }
        lay_out_padded_map(map_, storage_.get(), h, w, c, cstride);
        map_.q = q;
        if (reshaped && ring_read_) fill_ring(map_, static_cast<std::uint8_t>(q.zero_point));
    }
    const QuantizedMap& map() const { return map_; }
    // As FeatureBuffer::set_ring_read.
    void set_ring_read(bool read) { ring_read_ = read; }

private:
    std::unique_ptr<std::uint8_t[]> storage_;
    std::size_t capacity_ = 0;
    QuantizedMap map_;
    bool ring_read_ = true;
};

// The requantisation epilogue of every int8 kernel (top of file): acc -> uint8 or float.
// Move-only: a PReLU activation points at prelu_slopes.
struct Requantization {
    Epilogue activation;            // none, relu, leaky_relu (0 <= slope <= 1) or prelu (slopes: prelu_slopes)
    AlignedFloats prelu_slopes;     // [c_pad], zero-padded (the SIMD epilogue loads whole vectors)
    std::vector<float> multiplier;  // [c_pad]: scale_in * weight_scale[o] (/ scale_out for uint8 out)
    bool quantized_output = false;
    QuantParams output;             // quantized_output only

    float real(std::int32_t acc, int o) const {
        const float y = static_cast<float>(acc) * multiplier[static_cast<std::size_t>(o)];
        switch (activation.kind) {
        case Activation::relu: return std::max(y, 0.0f);
        case Activation::leaky_relu: return std::max(y, y * activation.slope);
        case Activation::prelu: return y > 0.0f ? y : y * activation.slopes[o]; // the SIMD select's operands
        case Activation::none: break;
        }
        return y;
    }
    std::uint8_t byte(std::int32_t acc, int o) const { return static_cast<std::uint8_t>(output.requantize_clamped(real(acc, o))); }
};

// What a quantised conv is made from: the file's tensors (weights/FORMAT.md, "int8").
struct Int8ConvSource {
    const std::int8_t* weights = nullptr;  // [cout][cin / groups][k][k], symmetric per output channel
    const float* weight_scale = nullptr;   // [cout], > 0
    const float* bias = nullptr;           // [cout], float (nullptr: none)
    QuantParams input;                     // the activation feeding the conv
    Epilogue activation;
};

// The bias in accumulator units, round(bias / (scale_in * weight_scale)), kept within int32 with
// room for the products' sum.
inline std::int32_t quantized_bias(float bias, float input_scale, float weight_scale) {
    const double b = std::nearbyint(static_cast<double>(bias) / (static_cast<double>(input_scale) * weight_scale));
    constexpr double kLimit = 1 << 30;
    return static_cast<std::int32_t>(std::min(std::max(b, -kLimit), kLimit));
}

// Scales are limited to [2^-40, 2^40] (real ones are 1e-6 to 1e2), so that every requantisation
// multiplier, input scale x weight scale / output scale, is a normal float: a hostile file cannot
// make one overflow to infinity or vanish, which would turn a conv's output into NaN or zeros
// instead of being refused.
constexpr float kMinInt8Scale = 0x1p-40f, kMaxInt8Scale = 0x1p40f;

inline bool valid_int8_scale(float s) { return s >= kMinInt8Scale && s <= kMaxInt8Scale; }

inline std::string int8_scale_error(const std::string& what, const std::string& tensor, float s) {
    char value[32];
    std::snprintf(value, sizeof value, "%g", static_cast<double>(s));
    return what + ": " + tensor + " is " + value + ", outside [2^-40, 2^40]";
}

inline void check_int8_source(const Int8ConvSource& s, int cout, const std::string& what) {
    if (!valid_int8_scale(s.input.scale))
        throw Error(int8_scale_error(what, "input_scale", s.input.scale));
    if (s.input.zero_point < 0 || s.input.zero_point > 255) throw Error(what + ": input_zero_point must be in [0, 255]");
    for (int o = 0; o < cout; ++o)
        if (!valid_int8_scale(s.weight_scale[o]))
            throw Error(int8_scale_error(what, "weight_scale[" + std::to_string(o) + "]", s.weight_scale[o]));
    if (s.activation.kind == Activation::prelu && !s.activation.slopes) throw Error(what + ": PReLU without slopes");
}

// Sets how a layer's output is stored: uint8 with `output` (to an int8 consumer), or float.
inline void set_output(Requantization& r, const float* weight_scale, float input_scale, int cout, bool quantized,
                       QuantParams output = {}) {
    r.quantized_output = quantized;
    r.output = output;
    for (int o = 0; o < cout; ++o)
        r.multiplier[static_cast<std::size_t>(o)] = input_scale * weight_scale[o] / (quantized ? output.scale : 1.0f);
}

// What every int8 conv keeps per output channel (padded to a multiple of kChannelAlign).
struct Int8OutputChannels {
    QuantParams input;
    std::vector<std::int32_t> bias;   // quantized_bias - zp_in * sum of the channel's weights
    std::vector<float> weight_scale;
    Requantization requant;           // float output until set_output says otherwise

    void init(const Int8ConvSource& s, int count, int count_pad) {
        input = s.input;
        bias.assign(static_cast<std::size_t>(count_pad), 0);
        weight_scale.assign(static_cast<std::size_t>(count_pad), 0.0f);
        requant.activation = own_epilogue(s.activation, count, count_pad, requant.prelu_slopes);
        requant.multiplier.assign(static_cast<std::size_t>(count_pad), 0.0f);
    }
    // Channel o, whose int8 weights sum to `weight_sum`.
    void set_channel(const Int8ConvSource& s, int o, std::int32_t weight_sum) {
        weight_scale[static_cast<std::size_t>(o)] = s.weight_scale[o];
        bias[static_cast<std::size_t>(o)] = quantized_bias(s.bias ? s.bias[o] : 0.0f, s.input.scale, s.weight_scale[o]) - s.input.zero_point * weight_sum;
    }
};

// A dense k x k int8 conv (k = 1, 2 or 3, padding (k - 1) / 2). weights [k * k][cin_quads][cout_pad][4]:
// for one tap, four consecutive input channels' weights of one output channel are one int32,
// what vpdpbusd multiplies with four input bytes; 16 output channels are one 64-byte vector.
struct PackedConvInt8 : ConvShape, Int8OutputChannels {
    int cin_quads = 0;
    std::vector<std::int8_t> weights;
};

inline PackedConvInt8 pack_conv_int8(const Int8ConvSource& s, int cout, int cin, int k, int stride, const std::string& what) {
    check_int8_source(s, cout, what);
    PackedConvInt8 p;
    static_cast<ConvShape&>(p) = conv_shape(cout, cin, k, stride);
    p.cin_quads = (cin + 3) / 4;
    p.init(s, cout, p.cout_pad);
    p.weights.assign(static_cast<std::size_t>(k) * k * p.cin_quads * p.cout_pad * 4, 0);
    for (int o = 0; o < cout; ++o) {
        std::int32_t sum = 0;
        for (int i = 0; i < cin; ++i)
            for (int t = 0; t < k * k; ++t) {
                const std::int8_t v = s.weights[(static_cast<std::size_t>(o) * cin + i) * k * k + t];
                sum += v;
                p.weights[((static_cast<std::size_t>(t) * p.cin_quads + i / 4) * p.cout_pad + o) * 4 + i % 4] = v;
            }
        p.set_channel(s, o, sum);
    }
    set_output(p.requant, s.weight_scale, s.input.scale, cout, false);
    return p;
}

inline void set_output(PackedConvInt8& p, bool quantized, QuantParams output = {}) {
    set_output(p.requant, p.weight_scale.data(), p.input.scale, p.cout, quantized, output);
}

// A depthwise 3x3 int8 conv, padding 1, uint8 output. The products of a byte and an int8 weight
// and their 9-term sums (< 2^24) are exact in float, so the widening kernels multiply-add in float:
// weights are the int8 values as floats, [9][c_pad].
struct PackedDepthwiseInt8 : Int8OutputChannels {
    int c = 0, c_pad = 0, stride = 1;
    std::vector<float> weights;
    // The same weights for the VNNI kernel (conv_int8.hpp), [3][c_pad][4]: for window column kx,
    // channel ch's weights of rows 0, 1, 2 and a zero, the four bytes one vpdpbusd lane multiplies.
    std::vector<std::int8_t> column_weights;
};

inline PackedDepthwiseInt8 pack_depthwise_int8(const Int8ConvSource& s, int c, int stride, const std::string& what) {
    check_int8_source(s, c, what);
    PackedDepthwiseInt8 p;
    p.c = c;
    p.c_pad = round_up(c, kChannelAlign);
    p.stride = stride;
    p.init(s, c, p.c_pad);
    p.weights.assign(static_cast<std::size_t>(9) * p.c_pad, 0.0f);
    p.column_weights.assign(static_cast<std::size_t>(3) * p.c_pad * 4, 0);
    for (int ch = 0; ch < c; ++ch) {
        std::int32_t sum = 0;
        for (int t = 0; t < 9; ++t) {
            const std::int8_t v = s.weights[ch * 9 + t];
            sum += v;
            p.weights[static_cast<std::size_t>(t) * p.c_pad + ch] = v;
            p.column_weights[(static_cast<std::size_t>(t % 3) * p.c_pad + ch) * 4 + t / 3] = v;
        }
        p.set_channel(s, ch, sum);
    }
    set_output(p.requant, s.weight_scale, s.input.scale, c, false);
    return p;
}

inline void set_output(PackedDepthwiseInt8& p, QuantParams output) {
    set_output(p.requant, p.weight_scale.data(), p.input.scale, p.c, true, output);
}

// A dense int8 conv writes uint8 (w.requant.quantized_output) or float: the one that is set.
struct ConvInt8Output {
    const QuantizedMap* bytes = nullptr;
    const FeatureMap* floats = nullptr;
};

// The int8 kernels' signatures (KernelSet, conv_int8.hpp).
using ConvInt8Kernel = void (*)(const QuantizedMap& in, const PackedConvInt8& w, const ConvInt8Output& out, int threads);
using DepthwiseInt8Kernel = void (*)(const QuantizedMap& in, const PackedDepthwiseInt8& w, const QuantizedMap& out, int threads);
using QuantizeKernel = void (*)(const FeatureMap& in, const QuantizedMap& out, int threads); // out.q says how

// Whether the CPU has AVX512_VNNI (cpuid leaf 7, subleaf 0, ecx bit 11); xsimd 8 does not report it.
// The OS's saving of the zmm state is what xsimd's avx512f check already covers.
inline bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
    __asm__("cpuid" : "=a"(max_leaf), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0), "c"(0));
    if (max_leaf < 7) return false;
    unsigned eax = 0;
    __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
    return (ecx >> 11) & 1u;
#else
    return false;
#endif
}

} // namespace facet
