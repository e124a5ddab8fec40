// Deformable convolution: the SIMD kernel on every instruction set and the scalar reference against
// torchvision.ops.deform_conv2d (fixtures from tests/deform/gen_fixtures.py), the kernel against the
// reference over odd shapes and geometries; the deformable RetinaFace against its PyTorch reference
// (tests/deform/retinaface_dcn_reference.py).
#include <doctest/doctest.h>
#include <facet/io/json.hpp>
#include <facet/kernels/reference_deform.hpp>
#include <facet/models/retinaface.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <vector>

#include "npy.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

constexpr double kTorchvisionTolerance = 1e-4; // the bar, relative, float32
constexpr double kReferenceTolerance = 1e-5;   // SIMD vs reference: same sums, other order
constexpr double kModelTolerance = 1e-3;       // raw head outputs vs the PyTorch model, absolute

std::string fixture_path(const std::string& name) { return test::source_path("tests/deform/fixtures/" + name); }

// A [1, C, H, W] tensor (torchvision's layout) as an NHWC map with its zero ring.
FeatureBuffer from_nchw(const test::Npy& t) {
    REQUIRE(t.shape.size() == 4);
    REQUIRE(t.shape[0] == 1);
    const int c = t.shape[1], h = t.shape[2], w = t.shape[3];
    FeatureBuffer buffer(h, w, c);
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) buffer.map().at(y, x)[ch] = t.data[(static_cast<std::size_t>(ch) * h + y) * w + x];
    return buffer;
}

// The point (oy * stride - pad + tap * dilation) a tap samples before its offset, along one axis.
int undisplaced(int o, int tap, int stride, int pad, int dilation) { return o * stride - pad + tap * dilation; }

// Offsets as tests/deform/gen_fixtures.py draws them: per point and axis, a continuous value, a
// pixel centre, a point halfway between centres, a point far outside, exactly on an edge of the
// sampling domain (-1, 0, size - 1, size) or just inside one.
void fill_offsets(const FeatureMap& offsets, const DeformGeometry& g, int in_h, int in_w, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
    std::uniform_int_distribution<int> kind(0, 5), step(-3, 3), corner(0, 3);
    const auto point = [&](int base, int size) -> float {
        const float edges[4] = {-1.0f, 0.0f, static_cast<float>(size - 1), static_cast<float>(size)};
        const float inside = 1.0f / 256;
        const float near_edges[4] = {-1 + inside, inside, size - 1 - inside, size - inside};
        switch (kind(rng)) {
        case 0: return static_cast<float>(base) + uniform(rng);
        case 1: return static_cast<float>(base + step(rng));
        case 2: return static_cast<float>(base + step(rng)) + 0.5f;
        case 3: {
            const float sign = corner(rng) < 2 ? -1.0f : 1.0f;
            return sign * (corner(rng) < 2 ? 1e6f : static_cast<float>(size + 2) + 100 * std::fabs(uniform(rng)));
        }
        case 4: return edges[corner(rng)];
        default: return near_edges[corner(rng)];
        }
    };
    for (int oy = 0; oy < offsets.h; ++oy)
        for (int ox = 0; ox < offsets.w; ++ox)
            for (int og = 0; og < g.offset_groups; ++og)
                for (int i = 0; i < g.kh; ++i)
                    for (int j = 0; j < g.kw; ++j) {
                        float* d = offsets.at(oy, ox) + 2 * (og * g.taps() + i * g.kw + j);
                        const int by = undisplaced(oy, i, g.stride_h, g.pad_h, g.dilation_h);
                        const int bx = undisplaced(ox, j, g.stride_w, g.pad_w, g.dilation_w);
                        d[0] = point(by, in_h) - static_cast<float>(by);
                        d[1] = point(bx, in_w) - static_cast<float>(bx);
                    }
}

struct Fixture {
    std::string name;
    DeformGeometry geometry;
    int cout = 0;
    FeatureBuffer input, offsets, expected;
    std::optional<FeatureBuffer> mask;
    std::vector<float> weight, bias; // bias empty: none
};

std::vector<Fixture> load_fixtures() {
    std::ifstream file(fixture_path("cases.json"));
    REQUIRE(file.good());
    std::stringstream text;
    text << file.rdbuf();
    const json::Value manifest = json::parse(text.str());
    std::vector<Fixture> fixtures;
    for (const json::Value& c : manifest["cases"].array()) {
        Fixture f;
        f.name = c["name"].string();
        const auto pair = [&](const char* key, int& first, int& second) {
            first = static_cast<int>(c[key][0].number());
            second = static_cast<int>(c[key][1].number());
        };
        DeformGeometry& g = f.geometry;
        pair("kernel", g.kh, g.kw);
        pair("stride", g.stride_h, g.stride_w);
        pair("padding", g.pad_h, g.pad_w);
        pair("dilation", g.dilation_h, g.dilation_w);
        g.groups = static_cast<int>(c["groups"].number());
        g.offset_groups = static_cast<int>(c["offset_groups"].number());
        f.cout = static_cast<int>(c["out_channels"].number());
        const auto tensor = [&](const char* part) { return test::load_npy(fixture_path(f.name + "." + part + ".npy")); };
        f.input = from_nchw(tensor("input"));
        f.offsets = from_nchw(tensor("offset"));
        f.expected = from_nchw(tensor("output"));
        if (c["mask"].boolean()) f.mask = from_nchw(tensor("mask"));
        f.weight = tensor("weight").data;
        if (c["bias"].boolean()) f.bias = tensor("bias").data;
        fixtures.push_back(std::move(f));
    }
    return fixtures;
}

} // namespace

TEST_CASE("deform_conv2d matches torchvision on every fixture, on every instruction set") {
    const auto fixtures = load_fixtures();
    REQUIRE(fixtures.size() >= 10);
    double worst_reference = 0, worst_kernel = 0;
    for (const Fixture& f : fixtures) {
        CAPTURE(f.name);
        const FeatureMap& expected = f.expected.map();
        REQUIRE(expected.h == f.geometry.out_h(f.input.map().h));
        REQUIRE(expected.w == f.geometry.out_w(f.input.map().w));
        REQUIRE(f.offsets.map().c == f.geometry.offset_channels());
        if (f.mask) REQUIRE(f.mask->map().c == f.geometry.mask_channels());
        const FeatureMap* mask = f.mask ? &f.mask->map() : nullptr;
        const float* bias = f.bias.empty() ? nullptr : f.bias.data();

        FeatureBuffer reference(expected.h, expected.w, f.cout);
        ref::deform_conv2d(f.input.map(), f.offsets.map(), mask, f.weight.data(), bias, f.cout, f.geometry, {},
                           reference.map());
        const double reference_error = test::max_rel_error(reference.map(), expected);
        CHECK(reference_error < kTorchvisionTolerance);
        worst_reference = std::max(worst_reference, reference_error);

        const PackedDeformConv packed =
            pack_deform_conv(f.weight.data(), bias, f.cout, f.input.map().c, f.geometry, {});
        for (const KernelSet* ks : test::all_kernel_sets()) {
            CAPTURE(std::string(ks->isa));
            FeatureBuffer out(expected.h, expected.w, f.cout);
            ks->deform_conv2d(f.input.map(), f.offsets.map(), mask, packed, out.map(), 1);
            const double error = test::max_rel_error(out.map(), expected);
            CHECK(error < kTorchvisionTolerance);
            CHECK(test::padding_is_zero(out.map()));
            worst_kernel = std::max(worst_kernel, error);
        }
    }
    MESSAGE("max |facet - torchvision| / (1 + |torchvision|): reference " << worst_reference << ", SIMD kernels "
                                                                          << worst_kernel);
}

TEST_CASE("deform_conv2d: SIMD matches the reference over odd shapes and geometries") {
    struct Shape { int cin, cout, h, w; DeformGeometry g; bool mask; };
    const std::vector<Shape> shapes = {
        {1, 1, 1, 1, {}, true},
        {3, 7, 5, 7, {}, false},
        {16, 16, 6, 13, {}, true},
        {17, 33, 7, 5, {}, true},
        {64, 32, 4, 15, {}, true},
        {64, 64, 3, 8, {}, false},
        {13, 17, 9, 8, {3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, true},
        {8, 24, 8, 11, {3, 3, 1, 1, 2, 2, 2, 2, 1, 1}, true},
        {6, 9, 9, 7, {2, 3, 2, 1, 0, 1, 1, 2, 3, 1}, true},
        {12, 20, 6, 6, {3, 3, 1, 1, 1, 1, 1, 1, 4, 2}, true},
        {12, 18, 7, 9, {3, 3, 1, 1, 1, 1, 1, 1, 6, 4}, false},
        {20, 40, 5, 9, {1, 1, 1, 1, 0, 0, 1, 1, 2, 5}, true},
        {5, 3, 11, 4, {5, 5, 3, 2, 4, 1, 1, 1, 1, 5}, true},
    };
    unsigned seed = 1;
    for (const Shape& s : shapes) {
        CAPTURE(s.cin); CAPTURE(s.cout); CAPTURE(s.h); CAPTURE(s.w); CAPTURE(s.g.kh); CAPTURE(s.g.kw);
        CAPTURE(s.g.stride_h); CAPTURE(s.g.groups); CAPTURE(s.g.offset_groups);
        const int oh = s.g.out_h(s.h), ow = s.g.out_w(s.w);
        FeatureBuffer in(s.h, s.w, s.cin), offsets(oh, ow, s.g.offset_channels()), mask(oh, ow, s.g.mask_channels());
        test::fill_random(in.map(), seed);
        fill_offsets(offsets.map(), s.g, s.h, s.w, seed + 1);
        test::fill_random(mask.map(), seed + 2);
        const FeatureMap* m = s.mask ? &mask.map() : nullptr;
        const auto weights = test::random_floats(static_cast<std::size_t>(s.cout) * (s.cin / s.g.groups) * s.g.taps(), seed + 3);
        const auto bias = test::random_floats(static_cast<std::size_t>(s.cout), seed + 4);
        const Epilogue epilogue{seed % 2 ? Activation::leaky_relu : Activation::none, 0.1f};
        FeatureBuffer expected(oh, ow, s.cout);
        ref::deform_conv2d(in.map(), offsets.map(), m, weights.data(), bias.data(), s.cout, s.g, epilogue, expected.map());
        const PackedDeformConv packed = pack_deform_conv(weights.data(), bias.data(), s.cout, s.cin, s.g, epilogue);
        for (const KernelSet* ks : test::all_kernel_sets()) {
            CAPTURE(std::string(ks->isa));
            FeatureBuffer one(oh, ow, s.cout), two(oh, ow, s.cout);
            ks->deform_conv2d(in.map(), offsets.map(), m, packed, one.map(), 1);
            ks->deform_conv2d(in.map(), offsets.map(), m, packed, two.map(), 2);
            CHECK(test::max_rel_error(one.map(), expected.map()) < kReferenceTolerance);
            CHECK(test::padding_is_zero(one.map()));
            CHECK(test::max_rel_error(one.map(), two.map()) == 0.0);
        }
        seed += 5;
    }
}

TEST_CASE("deform_conv2d with zero offsets and no mask is the plain conv") {
    FeatureBuffer in(7, 10, 16);
    test::fill_random(in.map(), 31);
    const auto weights = test::random_floats(32 * 16 * 9, 32);
    const auto bias = test::random_floats(32, 33);
    const DeformGeometry g;
    FeatureBuffer offsets(7, 10, g.offset_channels()); // zeros
    const PackedConv plain = pack_conv(weights.data(), bias.data(), 32, 16, 3, 1, {Activation::relu, 0});
    const PackedDeformConv deformable = pack_deform_conv(weights.data(), bias.data(), 32, 16, g, {Activation::relu, 0});
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        FeatureBuffer expected(7, 10, 32), out(7, 10, 32);
        ks->conv3x3_s1(in.map(), plain, expected.map(), 1);
        ks->deform_conv2d(in.map(), offsets.map(), nullptr, deformable, out.map(), 1);
        CHECK(test::max_rel_error(out.map(), expected.map()) < kReferenceTolerance);
    }
}

TEST_CASE("deform_conv2d writes into a channel slice without touching the other channels") {
    FeatureBuffer in(5, 6, 16), offsets(5, 6, 18), mask(5, 6, 9);
    test::fill_random(in.map(), 41);
    const DeformGeometry g;
    fill_offsets(offsets.map(), g, 5, 6, 42);
    test::fill_random(mask.map(), 43);
    const auto weights = test::random_floats(16 * 16 * 9, 44);
    const auto bias = test::random_floats(16, 45);
    FeatureBuffer expected(5, 6, 16);
    ref::deform_conv2d(in.map(), offsets.map(), &mask.map(), weights.data(), bias.data(), 16, g, {}, expected.map());
    const PackedDeformConv packed = pack_deform_conv(weights.data(), bias.data(), 16, 16, g, {});
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        FeatureBuffer concat(5, 6, 64);
        for (int y = 0; y < 5; ++y)
            for (int x = 0; x < 6; ++x) std::fill(concat.map().at(y, x), concat.map().at(y, x) + 64, -7.0f);
        ks->deform_conv2d(in.map(), offsets.map(), &mask.map(), packed, concat.map().channels(32, 16), 1);
        CHECK(test::max_rel_error(concat.map().channels(32, 16), expected.map()) < kReferenceTolerance);
        for (int c : {0, 31, 48, 63}) CHECK(concat.map().at(4, 5)[c] == -7.0f);
    }
}

TEST_CASE("pack_deform_conv refuses group counts that do not divide the channels") {
    const std::vector<float> w(6 * 4 * 9);
    DeformGeometry g;
    g.groups = 4;
    CHECK_THROWS_AS(pack_deform_conv(w.data(), nullptr, 6, 4, g, {}), Error);
    g.groups = 1;
    g.offset_groups = 3;
    CHECK_THROWS_AS(pack_deform_conv(w.data(), nullptr, 6, 4, g, {}), Error);
}

TEST_CASE("the deformable RetinaFace matches its PyTorch reference end to end, on every instruction set") {
    const std::string dir = test::source_path("tests/deform/retinaface_dcn/");
    const test::Npy pixels = test::load_npy(dir + "input.npy");
    REQUIRE(pixels.shape.size() == 3);
    REQUIRE(pixels.shape[2] == 3);
    Image image(pixels.shape[1], pixels.shape[0]);
    for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>(pixels.data[i]);
    const test::Npy loc = test::load_npy(dir + "loc.npy"), conf = test::load_npy(dir + "conf.npy"),
                    landms = test::load_npy(dir + "landms.npy");

    // Converted from tests/deform/retinaface_dcn/state_dict.pth by the build (CMakeLists.txt).
    const auto model = RetinaFaceModel::from_file(std::string(FACET_BINARY_DIR) + "/retinaface_dcn_reference.facet");
    REQUIRE(model->deformable_context);
    double worst = 0;
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        RetinaFace detector(model, {}, *ks);
        const RetinaFaceRaw raw = detector.forward_raw(image);
        REQUIRE(raw.conf.size() == conf.data.size());
        const double error = std::max({test::max_abs_difference(raw.conf, conf.data), test::max_abs_difference(raw.loc, loc.data),
                                       test::max_abs_difference(raw.landms, landms.data)});
        CHECK(error <= kModelTolerance);
        worst = std::max(worst, error);

        RetinaFace two_threads = detector.clone();
        two_threads.options().threads = 2;
        CHECK(test::max_abs_difference(two_threads.forward_raw(image).loc, raw.loc) == 0.0);
        CHECK_NOTHROW(detector.detect(image));
    }
    MESSAGE("deformable RetinaFace, max |facet - PyTorch| over conf, loc and landms: " << worst);
}
