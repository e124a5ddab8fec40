// The kernels MTCNN adds (ceil-mode max-pool, dense with the (W, H, C) flatten order, its input's
// area-resampling rows) and its unpadded convs, on every instruction set this CPU runs, against the scalar references over odd
// sizes and channel counts.
#include <doctest/doctest.h>
#include <facet/kernels/maxpool_size.hpp>
#include <facet/kernels/reference.hpp>
#include <facet/kernels/reference_mtcnn.hpp>
#include <facet/models/mtcnn.hpp>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

// Error over the largest magnitude of the expected map (test::max_scaled_error): what float32
// rounding leaves of a dot product over hundreds of inputs. Winograd rounds about 8x more.
constexpr double kTolerance = 1e-5;
constexpr double kWinogradTolerance = 2e-5;

// PReLU slopes for up to 256 channels, negative and > 1 included (PReLU is not a max).
const std::vector<float> kPreluSlopes = test::random_floats(256, 77, -0.5f, 1.5f);
const Epilogue kEpilogues[] = {{Activation::none, 0.0f},
                               {Activation::relu, 0.0f},
                               {Activation::leaky_relu, 0.1f},
                               {Activation::prelu, 0.0f, kPreluSlopes.data()}};

MaxPoolKernel maxpool_kernel(const KernelSet& ks, int k) { return k == 2 ? ks.maxpool2x2_s2 : ks.maxpool3x3_s2; }

void check_maxpool(int k, int c, int h, int w, unsigned seed) {
    FeatureBuffer in(h, w, c);
    test::fill_random(in.map(), seed); // values in [-1, 1]: windows of negatives only are common
    const int oh = maxpool_out_size(h, k, 2), ow = maxpool_out_size(w, k, 2);
    FeatureBuffer expected(oh, ow, c);
    ref::maxpool_ceil(in.map(), k, 2, expected.map());
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer out(oh, ow, c);
        maxpool_kernel(*ks, k)(in.map(), out.map(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(test::max_rel_error(out.map(), expected.map()) == 0.0); // a max is exact
        CHECK(test::padding_is_zero(out.map()));
    }
}

void check_dense(int items, int in_h, int in_w, int cin, int cout, Epilogue epilogue, unsigned seed) {
    FeatureBuffer in(items * in_h, in_w, cin);
    test::fill_random(in.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * in_h * in_w * cin, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    FeatureBuffer expected(items, 1, cout);
    ref::dense_whc(in.map(), weights.data(), bias.data(), cout, epilogue, expected.map());
    const PackedDense packed = pack_dense(weights.data(), bias.data(), cout, in_h, in_w, cin, epilogue);
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer out(items, 1, cout);
        ks->dense(in.map(), packed, out.map(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(test::max_scaled_error(out.map(), expected.map()) < kTolerance);
        CHECK(test::padding_is_zero(out.map()));
    }
}

void check_conv_valid(int k, int cin, int cout, int h, int w, Epilogue epilogue, unsigned seed) {
    // Three channels come packed (channel stride 3), as the networks' input images do.
    LayerMap in;
    in.floats.resize(h, w, cin, cin == 3 ? 1 : kChannelAlign);
    test::fill_random(in.floats.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * cin * k * k, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    FeatureBuffer expected(h - k + 1, w - k + 1, cout);
    ref::conv2d(in.floats.map(), weights.data(), bias.data(), cout, k, 1, 0, 1, epilogue, expected.map());
    // 3x3 stride 1 runs by Winograd where the input allows (a 16-aligned channel stride), else
    // directly: the interior view must suit both, so both are checked.
    // Winograd comes in two tile sizes, F(4x4, 3x3) and F(3x3, 3x3) (R-Net's and O-Net's conv2).
    ConvLayer winograd, winograd_f33, direct;
    winograd.fp32 = pack_conv(weights.data(), bias.data(), cout, cin, k, 1, epilogue);
    winograd_f33.fp32 = pack_conv(weights.data(), bias.data(), cout, cin, k, 1, epilogue);
    if (k == 3) pack_winograd(winograd_f33.fp32, 3);
    direct.fp32 = pack_conv(weights.data(), bias.data(), cout, cin, k, 1, epilogue);
    direct.fp32.winograd.reset();
    direct.fp32.winograd_tile = 0;
    for (const KernelSet* ks : all_kernel_sets())
        for (const ConvLayer* layer : {&winograd, &winograd_f33, &direct}) {
            LayerRunner runner(*ks);
            LayerMap out;
            runner.conv(*layer, in, out, Padding::none);
            CAPTURE(std::string(ks->isa));
            CAPTURE(layer->fp32.winograd_tile);
            REQUIRE(out.floats.map().h == h - k + 1);
            REQUIRE(out.floats.map().w == w - k + 1);
            CHECK(test::max_scaled_error(out.floats.map(), expected.map()) < kWinogradTolerance);
            CHECK(test::padding_is_zero(out.floats.map()));
        }
    // A packed 3-channel input has its own direct tile on AVX-512 (conv3x3_image_tile), which must
    // add each output's taps in the generic tile's order: the same bits as the same values read
    // from a padded map by the generic tile.
    if (k == 3 && cin == 3) {
        LayerMap padded;
        padded.floats.resize(h, w, cin);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) std::copy_n(in.floats.map().at(y, x), cin, padded.floats.map().at(y, x));
        for (const KernelSet* ks : all_kernel_sets()) {
            LayerRunner runner(*ks);
            LayerMap from_packed, from_padded;
            runner.conv(direct, in, from_packed, Padding::none);
            runner.conv(direct, padded, from_padded, Padding::none);
            CAPTURE(std::string(ks->isa));
            CHECK(test::max_rel_error(from_packed.floats.map(), from_padded.floats.map()) == 0.0);
        }
    }
}

} // namespace

TEST_CASE("maxpool_out_size: ceil mode, as PyTorch (MTCNN's shapes and partial windows)") {
    CHECK(maxpool_out_size(10, 2, 2) == 5);  // P-Net on a 12x12 window
    CHECK(maxpool_out_size(11, 2, 2) == 6);  // the last window holds one column
    CHECK(maxpool_out_size(22, 3, 2) == 11); // R-Net
    CHECK(maxpool_out_size(9, 3, 2) == 4);
    CHECK(maxpool_out_size(46, 3, 2) == 23); // O-Net
    CHECK(maxpool_out_size(21, 3, 2) == 10);
    CHECK(maxpool_out_size(8, 2, 2) == 4);
    CHECK(maxpool_out_size(3, 3, 2) == 1);
    CHECK(maxpool_out_size(4, 3, 2) == 2); // a window starting at the last pixel is kept
}

TEST_CASE("reference max-pool pools the partial windows at the far edges") {
    FeatureBuffer in(3, 3, 1), out(2, 2, 1);
    for (int i = 0; i < 9; ++i) in.map().at(i / 3, i % 3)[0] = -static_cast<float>(i + 1); // -1 .. -9
    ref::maxpool_ceil(in.map(), 2, 2, out.map());
    CHECK(out.map().at(0, 0)[0] == -1.0f);
    CHECK(out.map().at(0, 1)[0] == -3.0f); // column 2 alone
    CHECK(out.map().at(1, 0)[0] == -7.0f); // row 2 alone
    CHECK(out.map().at(1, 1)[0] == -9.0f); // the corner pixel alone, not 0 from the zero ring
}

TEST_CASE("max-pool 2x2 and 3x3 stride 2, ceil mode: SIMD matches reference on odd sizes") {
    unsigned seed = 1000;
    for (int k : {2, 3})
        for (int c : {1, 3, 10, 17, 28, 48, 64})
            for (auto [h, w] : {std::pair<int, int>{3, 3}, {4, 4}, {5, 8}, {22, 22}, {9, 7}, {46, 13}}) {
                CAPTURE(k); CAPTURE(c); CAPTURE(h); CAPTURE(w);
                check_maxpool(k, c, h, w, seed++);
            }
}

TEST_CASE("reference dense flattens in (W, H, C) order") {
    // A 2 x 3 map, one channel, value 10 * y + x; output o picks flattened input o.
    FeatureBuffer in(2, 3, 1), out(1, 1, 6);
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 3; ++x) in.map().at(y, x)[0] = static_cast<float>(10 * y + x);
    std::vector<float> pick(6 * 6, 0.0f);
    for (int o = 0; o < 6; ++o) pick[o * 6 + o] = 1.0f;
    ref::dense_whc(in.map(), pick.data(), nullptr, 6, {}, out.map());
    // (W, H, C): x outermost, then y: (0,0) (y=1,x=0) (0,1) (1,1) (0,2) (1,2).
    const float expected[6] = {0, 10, 1, 11, 2, 12};
    for (int o = 0; o < 6; ++o) CHECK(out.map().at(0, 0)[o] == expected[o]);
}

TEST_CASE("dense over a batch: SIMD matches reference (MTCNN's shapes and odd ones)") {
    unsigned seed = 2000;
    struct Shape { int in_h, in_w, cin, cout; };
    for (Shape s : {Shape{3, 3, 64, 128}, {1, 1, 128, 6}, {3, 3, 128, 256}, {1, 1, 256, 16}, {2, 3, 5, 7}, {1, 1, 1, 1}, {3, 1, 17, 33}})
        for (int items : {1, 5, 6, 7, 13}) {
            CAPTURE(s.in_h); CAPTURE(s.in_w); CAPTURE(s.cin); CAPTURE(s.cout); CAPTURE(items);
            check_dense(items, s.in_h, s.in_w, s.cin, s.cout, kEpilogues[seed % 4], seed);
            seed += 3;
        }
}

TEST_CASE("dense gives identical results with 1 and 2 threads") {
    FeatureBuffer in(13 * 3, 3, 64);
    test::fill_random(in.map(), 31);
    const auto weights = test::random_floats(128 * 576, 32);
    const auto bias = test::random_floats(128, 33);
    const PackedDense packed = pack_dense(weights.data(), bias.data(), 128, 3, 3, 64, {Activation::prelu, 0, kPreluSlopes.data()});
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer one(13, 1, 128), two(13, 1, 128);
        ks->dense(in.map(), packed, one.map(), 1);
        ks->dense(in.map(), packed, two.map(), 2);
        CHECK(test::max_rel_error(one.map(), two.map()) == 0.0);
    }
}

TEST_CASE("unpadded 3x3 and 2x2 convs (the padded kernel on the interior view) match reference pad 0") {
    unsigned seed = 3000;
    for (int k : {3, 2})
        for (int cin : {1, 3, 10, 16})
            for (int cout : {1, 10, 16, 28, 33})
                for (auto [h, w] : {std::pair<int, int>{3, 3}, {12, 12}, {5, 9}, {24, 24}, {8, 3}}) {
                    CAPTURE(k); CAPTURE(cin); CAPTURE(cout); CAPTURE(h); CAPTURE(w);
                    check_conv_valid(k, cin, cout, h, w, kEpilogues[seed % 4], seed);
                    seed += 3;
                }
}

TEST_CASE("area-resampling rows: SIMD matches reference bit for bit, floats and bytes (odd widths, any sums)") {
    // A table of random entries: window sums take any uint32 value, so the float conversion rounds
    // (sums above 2^24) and the differences wrap, which images small enough for a test never do.
    // Output widths 1 .. 48: 3 .. 144 values, every remainder of the kernels' vectors.
    std::mt19937 rng(11);
    SummedAreaTable table;
    table.width = 61;
    table.height = 9;
    table.sums.resize(static_cast<std::size_t>(table.width + 1) * (table.height + 1) * 3);
    for (std::uint32_t& v : table.sums) v = static_cast<std::uint32_t>(rng());
    const std::array<float, 3> mean{127.5f, 100.0f, -3.0f}, scale{0.0078125f, 1.5e-8f, 2.0f};
    const QuantParams q{0.37f, 131}; // values beyond both ends clamp
    for (const int x0 : {0, 5})
        for (const int out_w : {1, 3, 7, 17, 24, 48}) {
            std::vector<AreaSpan> xs;
            area_spans(table.width - x0, out_w, xs);
            AreaRowPlan plan;
            plan_area_row(xs, {2, 0, 1}, mean, scale, plan);
            for (const auto& [y_top, y_bottom] : {std::pair{0, 9}, std::pair{3, 4}, std::pair{8, 9}}) {
                const std::uint32_t* top = table.at(x0, y_top);
                const std::uint32_t* bottom = table.at(x0, y_bottom);
                const float rows = static_cast<float>(y_bottom - y_top);
                std::vector<float> expected(static_cast<std::size_t>(plan.values));
                std::vector<std::uint8_t> expected_bytes(expected.size());
                ref::area_row(top, bottom, rows, plan, expected.data());
                ref::area_row_int8(top, bottom, rows, plan, q, expected_bytes.data());
                for (const KernelSet* ks : all_kernel_sets()) {
                    CAPTURE(std::string(ks->isa)); CAPTURE(x0); CAPTURE(out_w); CAPTURE(y_top);
                    std::vector<float> got(static_cast<std::size_t>(plan.padded()));
                    std::vector<std::uint8_t> got_bytes(got.size());
                    std::vector<std::uint32_t> columns(static_cast<std::size_t>(plan.entries));
                    ks->area_row(top, bottom, rows, plan, columns.data(), got.data());
                    ks->area_row_int8(top, bottom, rows, plan, columns.data(), q, got_bytes.data());
                    CHECK(std::equal(expected.begin(), expected.end(), got.begin()));
                    CHECK(std::equal(expected_bytes.begin(), expected_bytes.end(), got_bytes.begin()));
                }
            }
        }
}
