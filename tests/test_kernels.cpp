// Every SIMD kernel, on every instruction set this CPU runs, against the scalar reference, over
// odd channel counts (1, 3, 7, 17 ...), odd sizes (borders on every side) and both strides.
#include <doctest/doctest.h>
#include <facet/kernels/reference.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

// Errors are measured against the output's scale (test::max_scaled_error) for dense convs: a sum of
// 576 products that cancels to a small output carries rounding of the size of its terms.
constexpr double kTolerance = 1e-5;
// Winograd F(4x4, 3x3): rounding about 8x the direct kernel's. F(3x3, 3x3) about half of that,
// measured over this file's 840 cases a variant (2026-12-05): worst 4.1e-6 against 8.0e-6, mean
// 0.8e-6 against 1.7e-6. Both are held to this bound.
constexpr double kWinogradTolerance = 2e-5;

// PReLU slopes for up to 256 channels, negative and > 1 included (PReLU is not a max).
const std::vector<float> kPreluSlopes = test::random_floats(256, 99, -0.5f, 1.5f);

const Epilogue kEpilogues[] = {{Activation::none, 0.0f},
                               {Activation::relu, 0.0f},
                               {Activation::leaky_relu, 0.1f},
                               {Activation::prelu, 0.0f, kPreluSlopes.data()}};
constexpr unsigned kEpilogueCount = 4;

void check_dense_conv(int k, int stride, int cin, int cout, int h, int w, Epilogue epilogue, unsigned seed) {
    FeatureBuffer in(h, w, cin);
    test::fill_random(in.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * cin * k * k, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    const int oh = conv_out_size(h, k, stride), ow = conv_out_size(w, k, stride);
    FeatureBuffer expected(oh, ow, cout);
    ref::conv2d(in.map(), weights.data(), bias.data(), cout, k, stride, (k - 1) / 2, 1, epilogue, expected.map());
    const PackedConv packed = pack_conv(weights.data(), bias.data(), cout, cin, k, stride, epilogue);
    // 3x3 stride 1 has three kernels, direct, Winograd F(4x4, 3x3) (pack_conv's) and F(3x3, 3x3);
    // all must match.
    PackedConv packed_f33 = pack_conv(weights.data(), bias.data(), cout, cin, k, stride, epilogue);
    const bool three_by_three_s1 = k == 3 && stride == 1;
    if (three_by_three_s1) pack_winograd(packed_f33, 3);
    for (const KernelSet* ks : all_kernel_sets()) {
        const auto check = [&](ConvKernel kernel, const PackedConv& weights_of, int winograd_tile) {
            FeatureBuffer out(oh, ow, cout);
            kernel(in.map(), weights_of, out.map(), 1);
            CAPTURE(std::string(ks->isa));
            CAPTURE(winograd_tile);
            CHECK(test::max_scaled_error(out.map(), expected.map()) < (winograd_tile ? kWinogradTolerance : kTolerance));
            CHECK(test::padding_is_zero(out.map()));
        };
        if (!three_by_three_s1) {
            check(ks->conv_for(packed), packed, 0);
            continue;
        }
        check(ks->conv3x3_s1, packed, 0);
        check(ks->conv3x3_s1_winograd, packed, 4);
        check(ks->conv3x3_s1_winograd, packed_f33, 3);
    }
}

void check_depthwise(int stride, int c, int h, int w, Epilogue epilogue, unsigned seed) {
    FeatureBuffer in(h, w, c);
    test::fill_random(in.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(c) * 9, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(c), seed + 2);
    const int oh = conv_out_size(h, 3, stride), ow = conv_out_size(w, 3, stride);
    FeatureBuffer expected(oh, ow, c);
    ref::conv2d(in.map(), weights.data(), bias.data(), c, 3, stride, 1, c, epilogue, expected.map());
    const PackedDepthwise packed = pack_depthwise(weights.data(), bias.data(), c, stride, epilogue);
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer out(oh, ow, c);
        ks->dwconv_for(packed)(in.map(), packed, out.map(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
        CHECK(test::padding_is_zero(out.map()));
    }
}

} // namespace

TEST_CASE("reference conv2d matches a hand-computed case") {
    // 3x3 input 1..9, one 3x3 kernel of ones, pad 1: each output is the sum of its neighbourhood.
    FeatureBuffer in(3, 3, 1);
    for (int i = 0; i < 9; ++i) in.map().at(i / 3, i % 3)[0] = static_cast<float>(i + 1);
    const float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const float bias = 0.5f;
    FeatureBuffer out(3, 3, 1);
    ref::conv2d(in.map(), ones, &bias, 1, 3, 1, 1, 1, {}, out.map());
    const float expected[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    for (int i = 0; i < 9; ++i) CHECK(out.map().at(i / 3, i % 3)[0] == doctest::Approx(expected[i] + 0.5f));
    // Stride 2 keeps the corners; leaky ReLU scales negatives.
    FeatureBuffer out2(2, 2, 1);
    const float minus = -100.0f;
    ref::conv2d(in.map(), ones, &minus, 1, 3, 2, 1, 1, {Activation::leaky_relu, 0.1f}, out2.map());
    CHECK(out2.map().at(0, 0)[0] == doctest::Approx((12 - 100) * 0.1));
    CHECK(out2.map().at(1, 1)[0] == doctest::Approx((28 - 100) * 0.1));
}

TEST_CASE("conv3x3 stride 1 and 2: SIMD (direct and Winograd) matches reference on odd sizes") {
    unsigned seed = 1;
    for (int stride : {1, 2})
        for (int cin : {1, 3, 8, 17, 64})
            for (int cout : {1, 3, 7, 16, 17, 33, 64})
                // Winograd's 4x4 output tiles: 1, 3, 4, 5, 8, 12 and 80 of them (blocks of 12),
                // so its GEMM's 6-row tiles leave each remainder from 0 to 5 rows.
                for (auto [h, w] : {std::pair<int, int>{1, 1}, {4, 11}, {5, 7}, {17, 3}, {8, 13}, {15, 6}, {12, 16}, {29, 37}}) {
                    CAPTURE(stride); CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                    check_dense_conv(3, stride, cin, cout, h, w, kEpilogues[seed % kEpilogueCount], seed);
                    seed += 3;
                }
}

TEST_CASE("conv2x2 (unpadded, MTCNN): SIMD matches reference on odd sizes") {
    unsigned seed = 300;
    for (int cin : {1, 3, 28, 48})
        for (int cout : {1, 7, 64, 128})
            for (auto [h, w] : {std::pair<int, int>{2, 2}, {3, 3}, {4, 7}}) {
                CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                check_dense_conv(2, 1, cin, cout, h, w, kEpilogues[seed % kEpilogueCount], seed);
                seed += 3;
            }
}

TEST_CASE("conv1x1 (pointwise): SIMD matches reference on odd sizes") {
    unsigned seed = 100;
    for (int cin : {1, 3, 7, 17, 64, 130})
        for (int cout : {1, 3, 7, 17, 32, 64, 128, 129})
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {3, 7}, {4, 13}}) {
                CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                check_dense_conv(1, 1, cin, cout, h, w, kEpilogues[seed % kEpilogueCount], seed);
                seed += 3;
            }
}

TEST_CASE("depthwise 3x3 stride 1 and 2: SIMD matches reference on odd sizes") {
    unsigned seed = 500;
    for (int stride : {1, 2})
        for (int c : {1, 3, 7, 17, 32, 40})
            // Widths give every count of outputs left after stride 1's 4-output blocks (kDwPixels).
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {2, 3}, {7, 5}, {9, 16}, {3, 11}, {4, 23}}) {
                CAPTURE(stride); CAPTURE(c); CAPTURE(h); CAPTURE(w);
                check_depthwise(stride, c, h, w, kEpilogues[seed % kEpilogueCount], seed);
                seed += 3;
            }
}

namespace {

// The fused stem against the reference conv, depthwise, pointwise and stride-2 depthwise run one
// after another, reading the image as floats (an NHWC map) and as bytes. The padding is a
// non-zero pixel, as RetinaFace's is (its padding pixel), and stale scratch from a larger call
// must not leak into a smaller one.
void check_mobilenet_stem(int cin, int input_align, int stem_cout, int pw_cout, int h, int w, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(h) * w * cin);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() % 256);
    const auto padding = test::random_floats(static_cast<std::size_t>(cin), seed + 9, 50.0f, 150.0f);
    FeatureBuffer in;
    in.resize(h, w, cin, input_align);
    const FeatureMap& im = in.map();
    for (int y = -1; y <= h; ++y)
        for (int x = -1; x <= w; ++x)
            for (int c = 0; c < cin; ++c) {
                const bool inside = y >= 0 && y < h && x >= 0 && x < w;
                im.at(y, x)[c] = inside ? bytes[(static_cast<std::size_t>(y) * w + x) * cin + c] : padding[c];
            }
    // The reference sees the padding as an explicit border: the input one pixel larger, padding 0.
    FeatureBuffer bordered(h + 2, w + 2, cin);
    for (int y = -1; y <= h; ++y)
        for (int x = -1; x <= w; ++x)
            for (int c = 0; c < cin; ++c) bordered.map().at(y + 1, x + 1)[c] = im.at(y, x)[c];
    const auto conv_w = test::random_floats(static_cast<std::size_t>(stem_cout) * cin * 9, seed + 1, -0.02f, 0.02f);
    const auto conv_b = test::random_floats(static_cast<std::size_t>(stem_cout), seed + 2);
    const auto dw_w = test::random_floats(static_cast<std::size_t>(stem_cout) * 9, seed + 3);
    const auto dw_b = test::random_floats(static_cast<std::size_t>(stem_cout), seed + 4);
    const auto pw_w = test::random_floats(static_cast<std::size_t>(pw_cout) * stem_cout, seed + 5);
    const auto pw_b = test::random_floats(static_cast<std::size_t>(pw_cout), seed + 6);
    const auto dw2_w = test::random_floats(static_cast<std::size_t>(pw_cout) * 9, seed + 7);
    const auto dw2_b = test::random_floats(static_cast<std::size_t>(pw_cout), seed + 8);
    const Epilogue conv_e = kEpilogues[seed % kEpilogueCount], dw_e = kEpilogues[(seed + 1) % kEpilogueCount],
                   pw_e = kEpilogues[(seed + 2) % kEpilogueCount], dw2_e = kEpilogues[(seed + 3) % kEpilogueCount];
    const int mh = conv_out_size(h, 3, 2), mw = conv_out_size(w, 3, 2);
    const int oh = conv_out_size(mh, 3, 2), ow = conv_out_size(mw, 3, 2);
    FeatureBuffer conv_out(mh, mw, stem_cout), dw_out(mh, mw, stem_cout), pw_out(mh, mw, pw_cout), expected(oh, ow, pw_cout);
    ref::conv2d(bordered.map(), conv_w.data(), conv_b.data(), stem_cout, 3, 2, 0, 1, conv_e, conv_out.map());
    ref::conv2d(conv_out.map(), dw_w.data(), dw_b.data(), stem_cout, 3, 1, 1, stem_cout, dw_e, dw_out.map());
    ref::conv2d(dw_out.map(), pw_w.data(), pw_b.data(), pw_cout, 1, 1, 0, 1, pw_e, pw_out.map());
    ref::conv2d(pw_out.map(), dw2_w.data(), dw2_b.data(), pw_cout, 3, 2, 1, pw_cout, dw2_e, expected.map());

    const PackedConv conv = pack_conv(conv_w.data(), conv_b.data(), stem_cout, cin, 3, 2, conv_e);
    const PackedDepthwise dw = pack_depthwise(dw_w.data(), dw_b.data(), stem_cout, 1, dw_e);
    const PackedConv pw = pack_conv(pw_w.data(), pw_b.data(), pw_cout, stem_cout, 1, 1, pw_e);
    const PackedDepthwise dw2 = pack_depthwise(dw2_w.data(), dw2_b.data(), pw_cout, 2, dw2_e);
    const StemImage sources[] = {StemImage::of_map(im), StemImage::of_bytes(bytes.data(), h, w, cin, padding.data())};
    for (const KernelSet* ks : all_kernel_sets())
        for (int threads : {1, 2})
            for (const StemImage& source : sources) {
                // Scratch of a 100-pixel-wide call, filled with garbage as a larger call would leave it.
                const StemScratch layout(std::max(mw, 100), cin, stem_cout, pw.cout_pad);
                const AlignedFloats scratch = make_aligned_floats(layout.floats(threads));
                std::fill(scratch.get(), scratch.get() + layout.floats(threads), 1e30f);
                FeatureBuffer out(oh, ow, pw_cout);
                ks->mobilenet_stem(source, conv, dw, pw, dw2, scratch.get(), out.map(), threads);
                CAPTURE(std::string(ks->isa));
                CAPTURE(threads);
                CAPTURE(source.bytes != nullptr);
                CHECK(test::max_scaled_error(out.map(), expected.map()) < kTolerance);
                CHECK(test::padding_is_zero(out.map()));
            }
}

} // namespace

TEST_CASE("fused MobileNet stem (conv 3x3 s2, depthwise, pointwise, depthwise s2): SIMD matches the reference chain") {
    unsigned seed = 700;
    for (int cin : {1, 3, 4})
        for (int input_align : {1, kChannelAlign})
            for (auto [stem_cout, pw_cout] : {std::pair<int, int>{1, 1}, {3, 17}, {8, 16}, {17, 40}})
                for (auto [h, w] : {std::pair<int, int>{1, 1}, {2, 3}, {5, 7}, {8, 13}, {15, 6}, {13, 64}, {11, 95}}) {
                    CAPTURE(cin); CAPTURE(input_align); CAPTURE(stem_cout); CAPTURE(pw_cout); CAPTURE(h); CAPTURE(w);
                    check_mobilenet_stem(cin, input_align, stem_cout, pw_cout, h, w, seed);
                    seed += 7;
                }
}

TEST_CASE("conv writes into a channel slice without touching the other channels") {
    FeatureBuffer in(4, 5, 8);
    test::fill_random(in.map(), 7);
    const auto weights = test::random_floats(16 * 8 * 9, 8);
    const auto bias = test::random_floats(16, 9);
    const PackedConv packed = pack_conv(weights.data(), bias.data(), 16, 8, 3, 1, {});
    FeatureBuffer expected(4, 5, 16);
    ref::conv2d(in.map(), weights.data(), bias.data(), 16, 3, 1, 1, 1, {}, expected.map());
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer concat(4, 5, 48);
        for (int y = 0; y < 4; ++y)
            for (int x = 0; x < 5; ++x)
                for (int c = 0; c < 48; ++c) concat.map().at(y, x)[c] = -7.0f;
        ks->conv3x3_s1(in.map(), packed, concat.map().channels(16, 16), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(test::max_rel_error(concat.map().channels(16, 16), expected.map()) < kTolerance);
        for (int c : {0, 15, 32, 47}) CHECK(concat.map().at(3, 4)[c] == -7.0f);
    }
}

TEST_CASE("nearest upsample-add: SIMD matches reference, non-2x sizes included") {
    for (auto [ch, cw, fh, fw] : std::vector<std::array<int, 4>>{{1, 1, 1, 1}, {2, 3, 3, 5}, {68, 5, 135, 9}, {30, 40, 60, 80}}) {
        for (int c : {3, 17, 64}) {
            FeatureBuffer coarse(ch, cw, c), fine(fh, fw, c), expected(fh, fw, c);
            test::fill_random(coarse.map(), 11);
            test::fill_random(fine.map(), 12);
            test::fill_random(expected.map(), 12);
            ref::upsample_nearest_add(coarse.map(), expected.map());
            for (const KernelSet* ks : all_kernel_sets()) {
                FeatureBuffer out(fh, fw, c);
                test::fill_random(out.map(), 12);
                ks->upsample_nearest_add(coarse.map(), out.map(), 1);
                CAPTURE(std::string(ks->isa));
                CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
            }
        }
    }
}

TEST_CASE("kernels give identical results with 1 and 2 threads") {
    FeatureBuffer in(37, 29, 16);
    test::fill_random(in.map(), 21);
    const auto weights = test::random_floats(32 * 16 * 9, 22);
    const auto bias = test::random_floats(32, 23);
    const PackedConv packed = pack_conv(weights.data(), bias.data(), 32, 16, 3, 2, {Activation::relu, 0});
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer one(19, 15, 32), two(19, 15, 32);
        ks->conv3x3_s2(in.map(), packed, one.map(), 1);
        ks->conv3x3_s2(in.map(), packed, two.map(), 2);
        CHECK(test::max_rel_error(one.map(), two.map()) == 0.0);
    }
}

TEST_CASE("FACET_ISA names a path; an unknown name is an error") {
    CHECK(parse_isa("avx2") == Isa::avx2);
    CHECK_THROWS_AS(parse_isa("avx9000"), Error);
    CHECK(!supported_isas().empty());
}
