// The kernels imported graphs add (grouped conv, pooling, standalone activations, add / mul,
// channel softmax, nearest resize; zero padding at the end, a plain copy with one build), on every instruction set this CPU runs, against the scalar
// references, over odd channel counts and sizes with borders on every side.
#include <doctest/doctest.h>
#include <facet/kernels/map_copy.hpp>
#include <facet/kernels/reference.hpp>
#include <facet/kernels/reference_pool_elementwise.hpp>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

constexpr double kTolerance = 1e-5;

const std::vector<float> kSlopes = test::random_floats(512, 77, -0.5f, 1.5f);

const Epilogue kEpilogues[] = {{Activation::none, 0.0f},
                               {Activation::relu, 0.0f},
                               {Activation::leaky_relu, 0.1f},
                               {Activation::prelu, 0.0f, kSlopes.data()}};

ConvGeometry geometry(int kh, int kw, int sh, int sw, std::array<int, 4> pads, int dh, int dw, int groups) {
    ConvGeometry g;
    g.kernel_h = kh;
    g.kernel_w = kw;
    g.stride_h = sh;
    g.stride_w = sw;
    g.pad_top = pads[0];
    g.pad_left = pads[1];
    g.pad_bottom = pads[2];
    g.pad_right = pads[3];
    g.dilation_h = dh;
    g.dilation_w = dw;
    g.groups = groups;
    return g;
}

void check_grouped_conv(const ConvGeometry& g, int cin, int cout, int h, int w, Epilogue epilogue, unsigned seed) {
    FeatureBuffer in(h, w, cin);
    test::fill_random(in.map(), seed);
    const auto weights = test::random_floats(static_cast<std::size_t>(cout) * (cin / g.groups) * g.kernel_h * g.kernel_w, seed + 1);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 2);
    const int oh = g.out_h(h), ow = g.out_w(w);
    REQUIRE(oh > 0);
    REQUIRE(ow > 0);
    FeatureBuffer expected(oh, ow, cout);
    ref::conv2d(in.map(), weights.data(), bias.data(), cout, g, epilogue, expected.map());
    const PackedGroupedConv packed = pack_grouped_conv(weights.data(), bias.data(), cout, cin, g, epilogue);
    for (const KernelSet* ks : all_kernel_sets()) {
        FeatureBuffer out(oh, ow, cout);
        ks->grouped_conv(in.map(), packed, out.map(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(test::max_scaled_error(out.map(), expected.map()) < kTolerance);
        CHECK(test::padding_is_zero(out.map()));
    }
}

} // namespace

TEST_CASE("grouped conv: SIMD matches reference for groups, kernel sizes, strides, pads and dilations") {
    struct Case {
        int kh, kw, sh, sw;
        std::array<int, 4> pads;
        int dh, dw;
    };
    const Case cases[] = {{3, 3, 1, 1, {1, 1, 1, 1}, 1, 1}, {3, 3, 2, 2, {1, 1, 1, 1}, 1, 1}, {1, 1, 2, 2, {0, 0, 0, 0}, 1, 1},
                          {5, 5, 1, 1, {2, 2, 2, 2}, 1, 1}, {7, 7, 2, 2, {3, 3, 3, 3}, 1, 1}, {1, 3, 1, 2, {0, 1, 0, 1}, 1, 1},
                          {3, 3, 1, 1, {2, 2, 2, 2}, 2, 2}, {3, 2, 2, 1, {0, 1, 1, 0}, 1, 3}, {4, 4, 3, 3, {0, 0, 0, 0}, 1, 1}};
    // (cin, cout, groups): dense, two and three groups, depthwise, depthwise with a multiplier, and
    // groups narrower and wider than one 16-channel block.
    const std::array<int, 3> channels[] = {{3, 7, 1}, {6, 10, 2}, {12, 9, 3}, {17, 17, 17}, {8, 16, 8},
                                           {40, 40, 10}, {48, 48, 2}, {20, 60, 4}};
    unsigned seed = 1000;
    for (const Case& c : cases)
        for (const auto& [cin, cout, groups] : channels)
            for (auto [h, w] : {std::pair<int, int>{1, 1}, {5, 7}, {13, 9}, {16, 23}}) {
                const ConvGeometry g = geometry(c.kh, c.kw, c.sh, c.sw, c.pads, c.dh, c.dw, groups);
                if (g.out_h(h) < 1 || g.out_w(w) < 1) continue;
                CAPTURE(c.kh); CAPTURE(c.kw); CAPTURE(c.sh); CAPTURE(c.sw); CAPTURE(c.dh); CAPTURE(c.dw);
                CAPTURE(cin); CAPTURE(cout); CAPTURE(groups); CAPTURE(h); CAPTURE(w);
                check_grouped_conv(g, cin, cout, h, w, kEpilogues[seed % 4], seed);
                seed += 3;
            }
}

TEST_CASE("grouped conv refuses groups that do not divide the channels") {
    const std::vector<float> weights(6 * 2 * 9), bias(6);
    CHECK_THROWS_AS(pack_grouped_conv(weights.data(), bias.data(), 6, 4, geometry(3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 3), {}), Error);
}

TEST_CASE("average and max pooling: SIMD matches reference, padding, partial windows and global") {
    struct Case {
        int kh, kw, sh, sw;
        std::array<int, 4> pads;
        bool ceil;
    };
    const Case cases[] = {{2, 2, 2, 2, {0, 0, 0, 0}, false}, {3, 3, 2, 2, {1, 1, 1, 1}, false}, {3, 3, 2, 2, {0, 0, 0, 0}, true},
                          {3, 3, 1, 1, {1, 1, 1, 1}, false}, {2, 3, 1, 2, {1, 0, 0, 2}, true}, {5, 5, 3, 3, {2, 2, 2, 2}, true}};
    unsigned seed = 3000;
    for (int c : {1, 5, 16, 40, 130})
        for (auto [h, w] : {std::pair<int, int>{3, 3}, {7, 5}, {14, 17}}) {
            std::vector<PoolGeometry> geometries;
            for (const Case& k : cases) {
                PoolGeometry g;
                g.kernel_h = k.kh; g.kernel_w = k.kw; g.stride_h = k.sh; g.stride_w = k.sw;
                g.pad_top = k.pads[0]; g.pad_left = k.pads[1]; g.pad_bottom = k.pads[2]; g.pad_right = k.pads[3];
                for (bool include : {false, true}) {
                    g.count_include_pad = include;
                    geometries.push_back(g);
                }
            }
            PoolGeometry global;
            global.kernel_h = h; global.kernel_w = w; global.stride_h = h; global.stride_w = w;
            geometries.push_back(global);
            for (std::size_t i = 0; i < geometries.size(); ++i) {
                const PoolGeometry& g = geometries[i];
                const bool ceil = i < 2 * std::size(cases) && cases[i / 2].ceil;
                // Output size as ONNX and PyTorch compute it (ceil mode keeps a last partial window
                // that starts inside the input or its leading pad).
                const auto out_size = [&](int size, int k, int s, int begin, int end) {
                    int o = (size + begin + end - k + (ceil ? s - 1 : 0)) / s + 1;
                    if (ceil && (o - 1) * s >= size + begin) --o;
                    return o;
                };
                const int oh = out_size(h, g.kernel_h, g.stride_h, g.pad_top, g.pad_bottom);
                const int ow = out_size(w, g.kernel_w, g.stride_w, g.pad_left, g.pad_right);
                if (oh < 1 || ow < 1) continue;
                FeatureBuffer in(h, w, c);
                test::fill_random(in.map(), seed++);
                for (bool max : {false, true}) {
                    FeatureBuffer expected(oh, ow, c);
                    ref::pool2d(in.map(), g, max, expected.map());
                    for (const KernelSet* ks : all_kernel_sets()) {
                        FeatureBuffer out(oh, ow, c);
                        (max ? ks->max_pool : ks->avg_pool)(in.map(), g, out.map(), 1);
                        CAPTURE(std::string(ks->isa)); CAPTURE(max); CAPTURE(i); CAPTURE(c); CAPTURE(h); CAPTURE(w);
                        CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
                        CHECK(test::padding_is_zero(out.map()));
                    }
                }
            }
        }
}

TEST_CASE("standalone activations: SIMD matches reference, padding lanes stay zero, in place too") {
    std::vector<MapActivation> activations;
    for (const Epilogue& e : kEpilogues) activations.push_back({MapActivation::Kind::epilogue, e});
    activations.push_back({MapActivation::Kind::clip, {}, 0.0f, 6.0f});
    activations.push_back({MapActivation::Kind::clip, {}, 0.25f, 0.5f}); // raises padding zeros: must be masked
    activations.push_back({MapActivation::Kind::sigmoid, {}, 0.0f, 0.0f});
    unsigned seed = 5000;
    for (int c : {1, 3, 16, 17, 40})
        for (const MapActivation& a : activations) {
            FeatureBuffer in(5, 7, c), expected(5, 7, c);
            test::fill_random(in.map(), seed++);
            for (int y = 0; y < 5; ++y)
                for (int x = 0; x < 7; ++x)
                    for (int ch = 0; ch < c; ++ch) in.map().at(y, x)[ch] *= 8.0f; // past the clip bounds
            // PReLU slopes as a model holds them: padded with zeros to the channel stride, 64-byte
            // aligned (the kernels load them as aligned vectors).
            MapActivation padded = a;
            const AlignedFloats slopes = make_aligned_floats(round_up(c, kChannelAlign));
            if (a.epilogue.kind == Activation::prelu) {
                std::copy(kSlopes.begin(), kSlopes.begin() + c, slopes.get());
                padded.epilogue.slopes = slopes.get();
            }
            ref::activation(in.map(), padded, expected.map());
            for (const KernelSet* ks : all_kernel_sets()) {
                CAPTURE(std::string(ks->isa)); CAPTURE(c); CAPTURE(static_cast<int>(a.kind));
                FeatureBuffer out(5, 7, c);
                ks->activation(in.map(), padded, out.map(), 1);
                CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
                CHECK(test::padding_is_zero(out.map()));
                FeatureBuffer in_place(5, 7, c);
                for (int y = 0; y < 5; ++y)
                    for (int x = 0; x < 7; ++x) std::copy_n(in.map().at(y, x), c, in_place.map().at(y, x));
                ks->activation(in_place.map(), padded, in_place.map(), 1);
                CHECK(test::max_rel_error(in_place.map(), expected.map()) < kTolerance);
            }
        }
}

TEST_CASE("add and mul: SIMD matches reference, same size and one pixel broadcast") {
    unsigned seed = 6000;
    for (int c : {1, 7, 16, 33})
        for (bool broadcast : {false, true}) {
            FeatureBuffer a(6, 9, c), b(broadcast ? 1 : 6, broadcast ? 1 : 9, c);
            test::fill_random(a.map(), seed++);
            test::fill_random(b.map(), seed++);
            for (bool mul : {false, true}) {
                FeatureBuffer expected(6, 9, c);
                ref::add_or_mul(a.map(), b.map(), mul, expected.map());
                for (const KernelSet* ks : all_kernel_sets()) {
                    FeatureBuffer out(6, 9, c);
                    (mul ? ks->mul : ks->add)(a.map(), b.map(), out.map(), 1);
                    CAPTURE(std::string(ks->isa)); CAPTURE(c); CAPTURE(broadcast); CAPTURE(mul);
                    CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
                    CHECK(test::padding_is_zero(out.map()));
                }
            }
        }
}

TEST_CASE("channel softmax: SIMD matches reference, large logits do not overflow") {
    unsigned seed = 7000;
    for (int c : {1, 2, 10, 16, 17, 40}) {
        FeatureBuffer in(4, 3, c), expected(4, 3, c);
        test::fill_random(in.map(), seed++);
        in.map().at(1, 1)[0] = 200.0f; // exp(200) overflows float: the maximum must be subtracted first
        ref::softmax_channels(in.map(), expected.map());
        for (const KernelSet* ks : all_kernel_sets()) {
            FeatureBuffer out(4, 3, c);
            ks->softmax_channels(in.map(), out.map(), 1);
            CAPTURE(std::string(ks->isa)); CAPTURE(c);
            CHECK(test::max_rel_error(out.map(), expected.map()) < kTolerance);
            CHECK(test::padding_is_zero(out.map()));
        }
    }
}

TEST_CASE("nearest resize: SIMD matches reference, up and down, non-integer ratios") {
    for (auto [h, w, oh, ow] : std::vector<std::array<int, 4>>{{1, 1, 3, 2}, {4, 6, 8, 12}, {68, 5, 135, 9}, {9, 10, 4, 7}})
        for (int c : {3, 16, 20}) {
            FeatureBuffer in(h, w, c), expected(oh, ow, c);
            test::fill_random(in.map(), 11);
            ref::resize_nearest(in.map(), expected.map());
            for (const KernelSet* ks : all_kernel_sets()) {
                FeatureBuffer out(oh, ow, c);
                ks->resize_nearest(in.map(), out.map(), 1);
                CAPTURE(std::string(ks->isa));
                CHECK(test::max_rel_error(out.map(), expected.map()) == 0.0);
                CHECK(test::padding_is_zero(out.map()));
            }
        }
}

TEST_CASE("zero padding at the end (pad_end): matches reference in rows, columns and channels, overwrites what was there") {
    unsigned seed = 8000;
    for (int c : {1, 3, 7, 17})
        for (auto [extra_rows, extra_columns, extra_channels] : std::vector<std::array<int, 3>>{{0, 0, 0}, {1, 1, 0}, {0, 0, c}, {1, 2, 16}}) {
            const int h = 5, w = 3;
            FeatureBuffer in(h, w, c), expected(h + extra_rows, w + extra_columns, c + extra_channels);
            FeatureBuffer out(h + extra_rows, w + extra_columns, c + extra_channels);
            test::fill_random(in.map(), seed++);
            const FeatureMap& o = out.map();
            for (int y = 0; y < o.h; ++y) // stale values everywhere, padding lanes too: pad_end must replace them
                for (int x = 0; x < o.w; ++x) std::fill_n(o.at(y, x), o.cstride, 7.0f);
            ref::pad_end(in.map(), expected.map());
            pad_end(in.map(), o);
            CAPTURE(c); CAPTURE(extra_rows); CAPTURE(extra_columns); CAPTURE(extra_channels);
            CHECK(test::max_rel_error(o, expected.map()) == 0.0);
            CHECK(test::padding_is_zero(o));
        }
}
