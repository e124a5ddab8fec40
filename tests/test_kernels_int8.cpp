// The int8 kernels (kernels/conv_int8.hpp) on every instruction set this CPU runs, byte for byte
// against the scalar references (kernels/reference_int8.hpp), over odd channel counts, odd sizes
// (borders on every side), both strides, uint8 and float outputs and every int8 activation (PReLU
// with slopes of either sign and above 1, as a PReLU may learn).
#include <doctest/doctest.h>
#include <facet/kernels/maxpool_size.hpp>
#include <facet/kernels/reference_int8.hpp>
#include <facet/kernels/reference_mtcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

// One PReLU slope per channel for up to 256 channels: negative, zero, fractional and above 1.
const std::vector<float> kPreluSlopes = test::random_floats(256, 11, -0.5f, 1.5f);
const Epilogue kPrelu{Activation::prelu, 0.0f, kPreluSlopes.data()};
const Epilogue kInt8Epilogues[] = {{Activation::none, 0.0f}, {Activation::relu, 0.0f}, {Activation::leaky_relu, 0.1f}, kPrelu};
constexpr unsigned kInt8EpilogueCount = sizeof(kInt8Epilogues) / sizeof(kInt8Epilogues[0]);

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

// 1x1, 2x2, 3x3 stride 1 and 3x3 stride 2, on maps of odd and even sides; seed moves past the seeds used.
void check_every_dense_shape(int cin, int cout, Epilogue activation, bool bytes_out, unsigned& seed) {
    CAPTURE(cin);
    CAPTURE(cout);
    CAPTURE(bytes_out);
    check_dense_int8(1, 1, cin, cout, 5, 13, activation, bytes_out, seed++);
    check_dense_int8(2, 1, cin, cout, 6, 11, activation, bytes_out, seed++);
    check_dense_int8(3, 1, cin, cout, 7, 9, activation, bytes_out, seed++);
    check_dense_int8(3, 2, cin, cout, 9, 7, activation, bytes_out, seed++);
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

// requantize_clamped rounds by adding 1.5 x 2^23 (it says why); here against its definition with
// std::nearbyint, on every eighth in [-300, 300] (ties included) and on random values.
TEST_CASE("int8 requantisation: the rounding by addition equals nearbyint(clamp(y)) + zp") {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> any(-400.0f, 400.0f);
    for (int zero_point : {0, 10, 128, 255}) {
        const QuantParams q{1.0f, zero_point};
        const auto expected = [&](float y) {
            const float clamped = std::min(std::max(y, static_cast<float>(-zero_point)), static_cast<float>(255 - zero_point));
            return static_cast<int>(std::nearbyint(clamped)) + zero_point;
        };
        int differences = 0;
        for (int k = -2400; k <= 2400; ++k) differences += q.requantize_clamped(k / 8.0f) != expected(k / 8.0f);
        for (int i = 0; i < 10000; ++i) {
            const float y = any(rng);
            differences += q.requantize_clamped(y) != expected(y);
        }
        CAPTURE(zero_point);
        CHECK(differences == 0);
    }
}

TEST_CASE("int8 requantisation with PReLU: each channel's own slope, either sign") {
    const float slopes[] = {0.25f, -0.5f, 3.0f};
    Requantization r;
    r.activation = {Activation::prelu, 0.0f, slopes};
    r.multiplier = {0.5f, 0.5f, 0.5f};
    r.quantized_output = true;
    r.output = QuantParams{1.0f, 10};
    CHECK(r.byte(-8, 0) == 9);   // -4 * 0.25 = -1
    CHECK(r.byte(-8, 1) == 12);  // -4 * -0.5 = 2
    CHECK(r.byte(-2, 2) == 7);   // -1 * 3 = -3
    CHECK(r.byte(6, 1) == 13);   // positive: the slope plays no part
    CHECK(r.real(-5, 2) == -7.5f);
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

TEST_CASE("int8 pointwise, dense 2x2 and dense 3x3 (stride 1 and 2): SIMD equals the reference byte for byte") {
    unsigned seed = 1, round = 0;
    for (int cin : {1, 3, 7, 17, 64})
        for (int cout : {1, 3, 17, 32, 70})
            for (bool bytes_out : {true, false}) {
                // By round, not by seed: the seed moves by the checks per round, a multiple of 4.
                check_every_dense_shape(cin, cout, kInt8Epilogues[round++ % kInt8EpilogueCount], bytes_out, seed);
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
                check_depthwise_int8(stride, c, h, w, kInt8Epilogues[seed % kInt8EpilogueCount], seed);
                ++seed;
            }
}

// MTCNN's convs (3x3 and 2x2 with PReLU, cin = 3 for the first, 1x1 heads) over the channel
// counts around a vector's width and a VNNI group's four bytes.
TEST_CASE("int8 dense convs with PReLU at MTCNN's channel counts: SIMD equals the reference byte for byte") {
    unsigned seed = 500;
    for (int cin : {1, 3, 7, 10, 16, 17, 32})
        for (int cout : {1, 3, 7, 10, 16, 17, 32})
            for (bool bytes_out : {true, false}) check_every_dense_shape(cin, cout, kPrelu, bytes_out, seed);
    check_dense_int8(2, 1, 64, 128, 2, 2, kPrelu, true, 599); // O-Net's conv4 on its smallest map: one output
}

// The ring holds a zero point above most bytes: a pool that read it at the far edges, instead of
// clipping its partial windows there, would raise their maxima to it.
TEST_CASE("uint8 max-pool 2x2 and 3x3 stride 2, ceil mode: SIMD equals the reference byte for byte") {
    const QuantParams q{0.02f, 250};
    unsigned seed = 700;
    for (int k : {2, 3})
        for (int c : {1, 3, 7, 10, 16, 17, 28, 32, 48, 64})
            for (auto [h, w] : {std::pair<int, int>{3, 3}, {4, 4}, {9, 9}, {11, 10}, {22, 22}, {46, 45}}) {
                CAPTURE(k);
                CAPTURE(c);
                CAPTURE(h);
                CAPTURE(w);
                QuantizedBuffer in, expected, out;
                in.resize(h, w, c, q);
                fill_bytes(in.map(), seed++);
                const int oh = maxpool_out_size(h, k, 2), ow = maxpool_out_size(w, k, 2);
                expected.resize(oh, ow, c, q);
                ref::maxpool_ceil(in.map(), k, 2, expected.map());
                for (const KernelSet* ks : all_kernel_sets()) {
                    CAPTURE(std::string(ks->isa));
                    out.resize(oh, ow, c, q);
                    (k == 2 ? ks->maxpool2x2_s2_int8 : ks->maxpool3x3_s2_int8)(in.map(), out.map(), 1);
                    CHECK(count_differences(out.map(), expected.map()) == 0);
                }
            }
}

TEST_CASE("uint8 max-pool: hand-computed windows, the partial ones at the far edges included") {
    // A 3x3 map, one channel, bytes 10 * (row * 3 + column) + 1, ring at zero point 255:
    // 3x3 stride 2 in ceil mode gives 2x2 outputs; the far ones pool the last row / column only.
    QuantizedBuffer in, out;
    in.resize(3, 3, 1, QuantParams{0.1f, 255});
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 3; ++x) in.map().at(y, x)[0] = static_cast<std::uint8_t>(10 * (y * 3 + x) + 1);
    in.map().at(0, 0)[0] = 200; // the top-left window's max is not its last pixel
    in.map().at(2, 2)[0] = 0;   // the corner every window holds: the smallest byte
    for (const KernelSet* ks : all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        out.resize(2, 2, 1, in.map().q);
        ks->maxpool3x3_s2_int8(in.map(), out.map(), 1);
        CHECK(out.map().at(0, 0)[0] == 200);
        CHECK(out.map().at(0, 1)[0] == 51); // column 2 of rows 0..2: 21, 51, 0
        CHECK(out.map().at(1, 0)[0] == 71); // row 2: 61, 71, 0
        CHECK(out.map().at(1, 1)[0] == 0);  // the corner alone
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
