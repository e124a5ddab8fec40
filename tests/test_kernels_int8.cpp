// The int8 kernels (kernels/conv_int8.hpp) on every instruction set this CPU runs, byte for byte
// against the scalar references (kernels/reference_int8.hpp), over odd channel counts, odd sizes
// (borders on every side), both strides, uint8 and float outputs and every int8 activation.
#include <doctest/doctest.h>
#include <facet/kernels/reference_int8.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

const Epilogue kInt8Epilogues[] = {{Activation::none, 0.0f}, {Activation::relu, 0.0f}, {Activation::leaky_relu, 0.1f}};

// The full range of both types, so that a kernel that saturates (vpmaddubsw) or mixes up which
// operand is signed fails.
std::vector<std::int8_t> random_weights(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(-128, 127);
    std::vector<std::int8_t> v(n);
    for (auto& x : v) x = static_cast<std::int8_t>(dist(rng));
    return v;
}

void fill_bytes(const QuantizedMap& m, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(0, 255);
    for (int y = 0; y < m.h; ++y)
        for (int x = 0; x < m.w; ++x)
            for (int c = 0; c < m.c; ++c) m.at(y, x)[c] = static_cast<std::uint8_t>(dist(rng));
}

// Input scale and the weight scales chosen so that the outputs spread over the uint8 range with
// some clamped at both ends: a wrong rounding or clamp shows.
struct Int8Case {
    std::vector<std::int8_t> weights;
    std::vector<float> weight_scale, bias;
    Int8ConvSource source;
};

Int8Case make_case(int cout, int taps_per_output, Epilogue activation, unsigned seed) {
    Int8Case c;
    c.weights = random_weights(static_cast<std::size_t>(cout) * taps_per_output, seed);
    c.weight_scale = test::random_floats(static_cast<std::size_t>(cout), seed + 1, 0.5f, 1.5f);
    c.bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2, -2000.0f, 2000.0f);
    c.source = {c.weights.data(), c.weight_scale.data(), c.bias.data(), QuantParams{0.01f, 37}, activation};
    return c;
}

std::vector<std::int32_t> unfolded_bias(const Int8Case& c, int cout) {
    std::vector<std::int32_t> b(static_cast<std::size_t>(cout));
    for (int o = 0; o < cout; ++o) b[o] = quantized_bias(c.bias[o], c.source.input.scale, c.weight_scale[o]);
    return b;
}

// The real channels of two maps (QuantizedMap or FeatureMap) that differ.
template <class Map>
int count_differences(const Map& a, const Map& b) {
    int n = 0;
    for (int y = 0; y < b.h; ++y)
        for (int x = 0; x < b.w; ++x)
            for (int ch = 0; ch < b.c; ++ch) n += a.at(y, x)[ch] != b.at(y, x)[ch];
    return n;
}

void check_dense_int8(int k, int stride, int cin, int cout, int h, int w, Epilogue activation, bool bytes_out, unsigned seed) {
    QuantizedBuffer in;
    in.resize(h, w, cin, QuantParams{0.01f, 37});
    fill_bytes(in.map(), seed);
    Int8Case c = make_case(cout, cin * k * k, activation, seed + 3);
    PackedConvInt8 packed = pack_conv_int8(c.source, cout, cin, k, stride, "test conv");
    // Output scale: about a tenth of the accumulators' spread, so some clamp.
    const QuantParams out_q{0.02f * static_cast<float>(cin * k * k), 100};
    if (bytes_out) set_output(packed, true, out_q);
    const std::vector<std::int32_t> bias_q = unfolded_bias(c, cout);
    const int oh = conv_out_size(h, k, stride), ow = conv_out_size(w, k, stride);
    QuantizedBuffer expected_bytes, out_bytes;
    FeatureBuffer expected_floats(oh, ow, cout), out_floats(oh, ow, cout);
    expected_bytes.resize(oh, ow, cout, out_q);
    ref::conv2d_int8(in.map(), c.weights.data(), bias_q.data(), cout, k, stride, 1, packed.requant,
                     {&expected_bytes.map(), &expected_floats.map()});
    for (const KernelSet* ks : all_kernel_sets()) {
        CAPTURE(std::string(ks->isa) + " " + ks->int8_path);
        out_bytes.resize(oh, ow, cout, out_q);
        ks->conv_int8_for(packed)(in.map(), packed, {&out_bytes.map(), &out_floats.map()}, 1);
        if (bytes_out) CHECK(count_differences(out_bytes.map(), expected_bytes.map()) == 0);
        else CHECK(count_differences(out_floats.map(), expected_floats.map()) == 0);
    }
}

void check_depthwise_int8(int stride, int ch, int h, int w, Epilogue activation, unsigned seed) {
    QuantizedBuffer in;
    in.resize(h, w, ch, QuantParams{0.01f, 37});
    fill_bytes(in.map(), seed);
    Int8Case c = make_case(ch, 9, activation, seed + 3);
    PackedDepthwiseInt8 packed = pack_depthwise_int8(c.source, ch, stride, "test depthwise");
    const QuantParams out_q{0.5f, 120};
    set_output(packed, out_q);
    const std::vector<std::int32_t> bias_q = unfolded_bias(c, ch);
    const int oh = conv_out_size(h, 3, stride), ow = conv_out_size(w, 3, stride);
    QuantizedBuffer expected, out;
    expected.resize(oh, ow, ch, out_q);
    ref::conv2d_int8(in.map(), c.weights.data(), bias_q.data(), ch, 3, stride, ch, packed.requant, {&expected.map(), nullptr});
    for (const KernelSet* ks : all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        out.resize(oh, ow, ch, out_q);
        ks->dwconv_int8_for(packed)(in.map(), packed, out.map(), 1);
        CHECK(count_differences(out.map(), expected.map()) == 0);
    }
}

} // namespace

TEST_CASE("int8 requantisation: hand-computed bytes, rounding half to even, clamping at both ends") {
    Requantization r;
    r.activation = {Activation::leaky_relu, 0.25f};
    r.multiplier = {0.5f};
    r.quantized_output = true;
    r.output = QuantParams{1.0f, 10};
    CHECK(r.byte(5, 0) == 12);    // 2.5 -> 2 (half to even), + 10
    CHECK(r.byte(7, 0) == 14);    // 3.5 -> 4
    CHECK(r.byte(-8, 0) == 9);    // -4 * 0.25 = -1
    CHECK(r.byte(-400, 0) == 0);  // -50 clamps at -zp
    CHECK(r.byte(1000, 0) == 255);
    CHECK(r.real(-8, 0) == -1.0f);
}

TEST_CASE("int8 zero-point folding: a conv on bytes equals the float conv on their real values") {
    // One 1x1 conv, 2 -> 1 channels: real inputs (200 - 100) * 0.1 = 10 and (50 - 100) * 0.1 = -5,
    // weights 3 * 0.5 = 1.5 and -2 * 0.5 = -1, bias 4: 15 + 5 + 4 = 24.
    QuantizedBuffer in;
    in.resize(1, 1, 2, QuantParams{0.1f, 100});
    in.map().at(0, 0)[0] = 200;
    in.map().at(0, 0)[1] = 50;
    const std::int8_t weights[] = {3, -2};
    const float weight_scale[] = {0.5f}, bias[] = {4.0f};
    PackedConvInt8 packed = pack_conv_int8({weights, weight_scale, bias, in.map().q, {}}, 1, 2, 1, 1, "hand conv");
    FeatureBuffer out(1, 1, 1);
    for (const KernelSet* ks : all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        ks->conv1x1_int8(in.map(), packed, {nullptr, &out.map()}, 1);
        CHECK(out.map().at(0, 0)[0] == doctest::Approx(24.0).epsilon(1e-6));
    }
}

TEST_CASE("int8 pointwise and dense 3x3 (stride 1 and 2): SIMD equals the reference byte for byte") {
    unsigned seed = 1;
    for (int cin : {1, 3, 7, 17, 64})
        for (int cout : {1, 3, 17, 32, 70})
            for (bool bytes_out : {true, false}) {
                const Epilogue e = kInt8Epilogues[seed % 3];
                CAPTURE(cin);
                CAPTURE(cout);
                CAPTURE(bytes_out);
                check_dense_int8(1, 1, cin, cout, 5, 13, e, bytes_out, seed++);
                check_dense_int8(3, 1, cin, cout, 7, 9, e, bytes_out, seed++);
                check_dense_int8(3, 2, cin, cout, 9, 7, e, bytes_out, seed++);
            }
    check_dense_int8(1, 1, 256, 256, 1, 1, kInt8Epilogues[2], true, 99); // one pixel; the largest reduction
    check_dense_int8(3, 2, 16, 16, 1, 2, kInt8Epilogues[1], true, 98);
}

TEST_CASE("int8 depthwise 3x3 stride 1 and 2: SIMD equals the reference byte for byte") {
    unsigned seed = 200;
    for (int c : {1, 3, 7, 17, 64, 130})
        for (int stride : {1, 2})
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {5, 13}, {8, 7}}) {
                CAPTURE(c);
                CAPTURE(stride);
                CAPTURE(h);
                CAPTURE(w);
                check_depthwise_int8(stride, c, h, w, kInt8Epilogues[seed % 3], seed);
                ++seed;
            }
}

TEST_CASE("int8 quantisation of a float map: SIMD equals the reference") {
    for (int c : {1, 7, 17, 64}) {
        FeatureBuffer in(5, 6, c);
        test::fill_random(in.map(), 7u + c);
        QuantizedBuffer expected, out;
        expected.resize(5, 6, c, QuantParams{0.004f, 128});
        ref::quantize(in.map(), expected.map());
        for (const KernelSet* ks : all_kernel_sets()) {
            CAPTURE(std::string(ks->isa));
            out.resize(5, 6, c, QuantParams{0.004f, 128});
            ks->quantize_int8(in.map(), out.map(), 1);
            CHECK(count_differences(out.map(), expected.map()) == 0);
        }
    }
}

TEST_CASE("int8 kernels: the AVX-512 set uses VNNI exactly where cpuid reports it") {
    for (const KernelSet* ks : all_kernel_sets())
        if (std::string(ks->isa) == "avx512") CHECK(std::string(ks->int8_path) == (cpu_has_avx512_vnni() ? "avx512-vnni" : "avx2-vpmaddwd"));
}
