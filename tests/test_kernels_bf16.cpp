// The bf16 kernels (AVX512-BF16) against their scalar references (reference_bf16.hpp), which they
// must match to the last bit, over odd channel counts (an odd cin pads its last pair), odd map
// sizes (Winograd tiles cut by every border) and every epilogue; and bf16 rounding itself against
// hand-computed cases.
#include <doctest/doctest.h>
#include <facet/kernels/conv_weights_bf16.hpp>
#include <facet/kernels/reference.hpp>
#include <facet/kernels/reference_bf16.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace facet;

namespace {

// An exact match, up to the reassociation a compiler may allow itself in the reference.
constexpr double kBitTolerance = 1e-6;
// Winograd's transforms are float32 sums whose last bit depends on where the compiler contracts a
// multiply and an add into an FMA (the sanitizer build does it elsewhere than the release build),
// and a different last bit can round a transformed value to the other bf16 neighbour: 2^-8 of one
// term, which the output transform multiplies by up to 8 each way. Measured in that build: up to
// 5.7e-4 of the output's scale, then 2.7e-3 (cin 17, cout 17, 29 x 37) with other random data.
// A wrong kernel is off by the output's scale itself.
constexpr double kWinogradBf16Tolerance = 1e-2;

const std::vector<float> kSlopes = test::random_floats(256, 77, -0.5f, 1.5f);
const Epilogue kBf16Epilogues[] = {{Activation::none, 0.0f},
                                   {Activation::relu, 0.0f},
                                   {Activation::leaky_relu, 0.1f},
                                   {Activation::prelu, 0.0f, kSlopes.data()}};

// The kernel sets that have bf16 kernels (the AVX-512 one, on a CPU with AVX512_BF16).
std::vector<const KernelSet*> bf16_kernel_sets() {
    std::vector<const KernelSet*> sets;
    for (const KernelSet* ks : test::all_kernel_sets())
        if (ks->conv1x1_bf16 && ks->conv3x3_s1_winograd_bf16) sets.push_back(ks);
    if (sets.empty()) MESSAGE("this CPU (or build) has no AVX512-BF16 kernels: the bf16 kernel tests check nothing");
    return sets;
}

// A packed bf16 conv from PyTorch-layout weights.
PackedConv pack_bf16_conv(const std::vector<float>& w, const std::vector<float>& b, int cout, int cin, int k, Epilogue e) {
    PackedConv p = pack_conv(w.data(), b.data(), cout, cin, k, 1, e);
    add_bf16_weights(p);
    return p;
}

void check_conv1x1_bf16(int cin, int cout, int h, int w, Epilogue epilogue, unsigned seed) {
    // The input is a channel slice of a wider map whose other channels are NaN: the kernel must
    // read only the slice's cin channels (an odd cin's missing partner included).
    FeatureBuffer wide(h, w, cin + 16);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < wide.map().cstride; ++c) wide.map().at(y, x)[c] = std::numeric_limits<float>::quiet_NaN();
    const FeatureMap in = wide.map().channels(0, cin);
    test::fill_random(in, seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * cin, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    FeatureBuffer expected(h, w, cout);
    ref::conv1x1_bf16(in, weights.data(), bias.data(), cout, epilogue, expected.map());
    const PackedConv packed = pack_bf16_conv(weights, bias, cout, cin, 1, epilogue);
    for (const KernelSet* ks : bf16_kernel_sets()) {
        REQUIRE((ks->conv_for(packed) == ks->conv1x1_bf16));
        for (int threads : {1, 2}) {
            FeatureBuffer out(h, w, cout);
            ks->conv1x1_bf16(in, packed, out.map(), threads);
            CAPTURE(threads);
            CHECK(test::max_scaled_error(out.map(), expected.map()) <= kBitTolerance);
            CHECK(test::padding_is_zero(out.map()));
        }
    }
}

void check_winograd_bf16(int cin, int cout, int h, int w, Epilogue epilogue, unsigned seed, double& worst_vs_float) {
    FeatureBuffer in(h, w, cin);
    test::fill_random(in.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * cin * 9, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    FeatureBuffer expected(h, w, cout), exact(h, w, cout);
    ref::conv3x3_winograd_bf16(in.map(), weights.data(), bias.data(), cout, epilogue, expected.map());
    ref::conv2d(in.map(), weights.data(), bias.data(), cout, 3, 1, 1, 1, epilogue, exact.map());
    const PackedConv packed = pack_bf16_conv(weights, bias, cout, cin, 3, epilogue);
    for (const KernelSet* ks : bf16_kernel_sets()) {
        REQUIRE((ks->conv_for(packed) == ks->conv3x3_s1_winograd_bf16));
        for (int threads : {1, 2}) {
            FeatureBuffer out(h, w, cout);
            ks->conv3x3_s1_winograd_bf16(in.map(), packed, out.map(), threads);
            CAPTURE(threads);
            CHECK(test::max_scaled_error(out.map(), expected.map()) <= kWinogradBf16Tolerance);
            CHECK(test::padding_is_zero(out.map()));
            // And it is the convolution, to the precision of F(4x4, 3x3) in bf16: its transforms
            // multiply by up to 5 and 8 on each side, so V and M are much larger than the output and
            // bf16's 8-bit significands leave up to 0.14 of the output's scale here (measured; the
            // fp32 kernel, 2e-5). A wrong kernel is off by the output's scale itself.
            const double vs_float = test::max_scaled_error(out.map(), exact.map());
            worst_vs_float = std::max(worst_vs_float, vs_float);
            CHECK(vs_float < 0.25);
        }
    }
}

} // namespace

TEST_CASE("bf16 rounding: to nearest, ties to even, hand-computed") {
    CHECK(bf16_from_float(1.0f) == 0x3f80);
    CHECK(bf16_from_float(-2.0f) == 0xc000);
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even significand, 1.
    CHECK(bf16_from_float(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    // 1 + 3 x 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
    CHECK(bf16_from_float(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    // Just past halfway rounds up; just below rounds down.
    CHECK(bf16_from_float(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
    CHECK(bf16_from_float(1.0f + std::ldexp(1.0f, -8) - std::ldexp(1.0f, -20)) == 0x3f80);
    // The largest float rounds to infinity; infinity and NaN stay what they are.
    CHECK(bf16_from_float(std::numeric_limits<float>::max()) == 0x7f80);
    CHECK(bf16_from_float(-std::numeric_limits<float>::infinity()) == 0xff80);
    CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
    CHECK(float_from_bf16(0x3fc0) == 1.5f);
    CHECK(bf16_pair(1.0f, -2.0f) == 0xc0003f80u);
}

TEST_CASE("bf16 reference: pairs summed odd product first, from the accumulator") {
    // From 1, adding 2^-24 (a tie, back to 1) then 2^-23 gives 1 + 2^-23; the other order gives
    // 1 + 2^-23, then a tie that goes to the even 1 + 2^-22.
    const float x[2] = {std::ldexp(1.0f, -23), std::ldexp(1.0f, -24)}, w[2] = {1.0f, 1.0f};
    CHECK(ref::dot_bf16(1.0f, x, w, 2) == 1.0f + std::ldexp(1.0f, -23));
    CHECK((1.0f + x[0]) + x[1] == 1.0f + std::ldexp(1.0f, -22)); // the even-first order, for contrast
    const float y[3] = {1.0f, 2.0f, 3.0f}, v[3] = {0.5f, 0.25f, 2.0f};
    CHECK(ref::dot_bf16(10.0f, y, v, 3) == 10.0f + 0.5f + 0.5f + 6.0f); // an odd count: the last pair has no partner
}

TEST_CASE("conv1x1 bf16: SIMD matches the reference bit for bit on odd sizes") {
    unsigned seed = 700;
    for (int cin : {1, 3, 7, 17, 64, 130})
        for (int cout : {1, 3, 7, 17, 32, 64, 129})
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {3, 7}, {4, 13}}) {
                CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                check_conv1x1_bf16(cin, cout, h, w, kBf16Epilogues[seed % 4], seed);
                seed += 3;
            }
}

TEST_CASE("Winograd F(4x4, 3x3) bf16: SIMD matches the reference to one bf16 rounding on odd sizes") {
    unsigned seed = 900;
    double worst_vs_float = 0;
    for (int cin : {1, 3, 7, 17, 64})
        for (int cout : {1, 3, 7, 16, 17, 33, 64})
            // 1, 3, 4, 5, 8 and 80 tiles: every remainder of the GEMM's 6-row tiles (test_kernels.cpp).
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {4, 11}, {5, 7}, {17, 3}, {8, 13}, {15, 6}, {29, 37}}) {
                CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                check_winograd_bf16(cin, cout, h, w, kBf16Epilogues[seed % 4], seed, worst_vs_float);
                seed += 3;
            }
    MESSAGE("bf16 Winograd vs the float32 convolution: worst error " << worst_vs_float << " of the output's scale");
}
