// Graph models (ONNX imports, models/graph.hpp): PFLD-GhostOne against its golden output on every
// instruction set, the memory plan, and files the loader must refuse.
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/kernels/reference.hpp>
#include <facet/models/graph.hpp>
#include <facet/models/retinaface.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "facet_writer.hpp"
#include "npy.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

std::shared_ptr<const GraphModel> load_pfld() {
    return GraphModel::from_file(test::weights_path("pfld_ghostone.facet"));
}

// Copies a [1, C, H, W] array into the executor's input map.
void set_input_nchw(GraphExecutor& net, const test::Npy& x) {
    const FeatureMap& in = net.input();
    REQUIRE(x.shape == std::vector<int>{1, in.c, in.h, in.w});
    for (int c = 0; c < in.c; ++c)
        for (int y = 0; y < in.h; ++y)
            for (int xx = 0; xx < in.w; ++xx) in.at(y, xx)[c] = x.data[(static_cast<std::size_t>(c) * in.h + y) * in.w + xx];
}

} // namespace

TEST_CASE("PFLD-GhostOne: the golden input gives the golden 98 landmarks within 1e-4, on every instruction set") {
    const auto model = load_pfld();
    const test::Npy input = test::load_npy(test::shared_path("golden/pfld_ghostone_kate_siegel_input.npy"));
    const test::Npy golden = test::load_npy(test::shared_path("golden/pfld_ghostone_kate_siegel_output.npy"));
    REQUIRE(model->outputs().size() == 1);
    CHECK(model->outputs()[0].onnx_shape == std::vector<int>{1, 196});
    for (const KernelSet* ks : test::all_kernel_sets()) {
        GraphExecutor net(model, *ks);
        set_input_nchw(net, input);
        net.run();
        const double error = test::max_abs_difference(net.output(0), golden.data);
        CAPTURE(std::string(ks->isa));
        MESSAGE(std::string(ks->isa) << ": largest difference " << error << " (" << error * 112 << " px of the 112 px crop)");
        CHECK(error < 1e-4);
    }
}

TEST_CASE("graph executor: runs keep their memory and input, repeat exactly, and do not depend on the thread count") {
    const auto model = load_pfld();
    const test::Npy input = test::load_npy(test::shared_path("golden/pfld_ghostone_kate_siegel_input.npy"));
    GraphExecutor one(model, default_kernel_set(), 1), two(model, default_kernel_set(), 2);
    const std::size_t scratch = one.scratch_floats();
    set_input_nchw(one, input);
    one.run();
    const std::vector<float> first = one.output(0);
    one.run(); // the input is kept: the same again

    CHECK(one.scratch_floats() == scratch);
    CHECK(one.output(0) == first);
    set_input_nchw(two, input);
    two.run();
    CHECK(two.output(0) == first);
    // Liveness lets maps share slots: fewer slots than values, less memory than one buffer each.
    std::size_t unshared = 0;
    for (const GraphValue& v : model->values())
        if (v.constant < 0 && v.within < 0) unshared += static_cast<std::size_t>(v.h + 2) * (v.w + 2) * v.cstride;
    MESSAGE(model->ops().size() << " ops, " << model->slot_largest_value().size() << " slots, scratch " << scratch * 4 / 1024
                                << " KiB (one buffer per value: " << unshared * 4 / 1024 << " KiB)");
    CHECK(scratch < unshared / 2);
}

TEST_CASE("graph executor: every operator the converter maps runs as PyTorch ran it (tests/onnx ops zoo), every instruction set") {
    const auto model = GraphModel::from_file(FACET_BINARY_DIR "/onnx/ops_zoo.facet");
    const test::Npy input = test::load_npy(test::source_path("tests/onnx/ops_zoo_input.npy"));
    const char* names[] = {"chw", "vector", "rows"};
    REQUIRE(model->outputs().size() == 3);
    for (const KernelSet* ks : test::all_kernel_sets()) {
        GraphExecutor net(model, *ks);
        set_input_nchw(net, input);
        net.run();
        for (std::size_t i = 0; i < 3; ++i) {
            const test::Npy expected = test::load_npy(test::source_path(std::string("tests/onnx/ops_zoo_") + names[i] + ".npy"));
            CHECK(model->outputs()[i].onnx_shape == expected.shape);
            double scale = 0;
            for (float v : expected.data) scale = std::max(scale, static_cast<double>(std::fabs(v)));
            CAPTURE(std::string(ks->isa));
            CAPTURE(names[i]);
            CHECK(test::max_abs_difference(net.output(i), expected.data) / (1 + scale) < 1e-5);
        }
    }
}

TEST_CASE("RetinaFace exported to ONNX and run as a graph equals the hand-built RetinaFace, every instruction set") {
    // The same random weights two ways (tests/onnx/gen_fixtures.py): the ONNX export through
    // onnx2facet, its state dict through the hand-built model's recipe (retinaface_recipe.py).
    const auto graph = GraphModel::from_file(FACET_BINARY_DIR "/onnx/retinaface_random.facet");
    const auto hand_built = RetinaFaceModel::from_file(FACET_BINARY_DIR "/onnx/retinaface_random_recipe.facet");
    const GraphValue& in = graph->input();
    // The export's input size (odd, 201 x 135) cut from a photo.
    const Image photo = load_image(test::shared_path("upstream/images/multiface.jpg"));
    Image image(in.w, in.h);
    for (int y = 0; y < in.h; ++y)
        for (int x = 0; x < in.w; ++x) std::copy_n(photo.pixel(x + 400, y + 100), 3, image.pixel(x, y));
    for (const KernelSet* ks : test::all_kernel_sets()) {
        RetinaFace detector(hand_built, {}, *ks);
        const RetinaFaceRaw expected = detector.forward_raw(image);
        GraphExecutor net(graph, *ks);
        net.set_input(image);
        net.run();
        const std::vector<float> loc = net.output(0), conf = net.output(1), landms = net.output(2);
        REQUIRE(conf.size() == 2 * expected.conf.size());
        std::vector<float> face_probability(expected.conf.size());
        for (std::size_t p = 0; p < face_probability.size(); ++p) face_probability[p] = conf[2 * p + 1];
        const double loc_error = test::max_abs_difference(loc, expected.loc), conf_error = test::max_abs_difference(face_probability, expected.conf);
        const double landms_error = test::max_abs_difference(landms, expected.landms);
        double largest = 0;
        for (float v : expected.landms) largest = std::max(largest, static_cast<double>(std::fabs(v)));
        MESSAGE(std::string(ks->isa) << ": " << expected.conf.size() << " priors, largest difference loc " << loc_error << ", conf "
                                     << conf_error << ", landms " << landms_error << " (landms up to " << largest << ")");
        CAPTURE(std::string(ks->isa));
        CHECK(loc_error < 1e-4);
        CHECK(conf_error < 1e-4);
        CHECK(landms_error < 1e-4);
    }
}

TEST_CASE("graph loader: a file whose graph does not hold together is refused, naming the op") {
    // A valid graph: a 3x3 conv of the 3-channel 4x4 input into 2 channels, then a ReLU.
    const auto graph_file = [](const std::string& values, const std::string& ops) {
        const std::string metadata =
            R"({"format": "facet", "model": "graph", "input": {"color": "rgb", "mean": [0, 0, 0], "scale": [1, 1, 1]},
                "graph": {"input": {"name": "x", "onnx_shape": [1, 3, 4, 4]},
                          "outputs": [{"name": "y", "value": "y", "onnx_shape": [1, 2, 4, 4], "order": "chw"}],
                          "values": )" + values + R"(, "constants": {}, "ops": )" + ops + "}}";
        return test::parse(test::write_facet(metadata, {{"w", {2, 3, 3, 3}, std::vector<float>(54, 0.5f)}}));
    };
    const std::string values = R"({"x": [4, 4, 3], "c": [4, 4, 2], "y": [4, 4, 2]})";
    const std::string conv = R"({"op": "conv", "name": "conv", "input": "x", "output": "c", "weight": "w", "groups": 1,
                                 "kernel": [3, 3], "stride": [1, 1], "pads": [1, 1, 1, 1], "dilation": [1, 1], "activation": {"kind": "none"}})";
    const std::string relu = R"({"op": "activation", "name": "relu", "input": "c", "output": "y", "activation": {"kind": "relu"}})";
    GraphExecutor net(std::make_shared<const GraphModel>(graph_file(values, "[" + conv + ", " + relu + "]")));
    net.run();
    CHECK(net.output(0) == std::vector<float>(32, 0.0f)); // zero input: zero output

    const auto refused = [&](const std::string& v, const std::string& ops, const std::string& message) {
        CAPTURE(message);
        try {
            GraphModel model(graph_file(v, ops));
            FAIL("accepted");
        } catch (const Error& e) {
            const std::string what = e.what();
            CAPTURE(what);
            CHECK(what.find(message) != std::string::npos);
        }
    };
    refused(values, "[" + relu + ", " + conv + "]", "op 'relu' (activation): reads 'c' before any op writes it");
    refused(values, "[" + conv + ", " + conv + "]", "writes 'c', which is the input, a constant or another op's output");
    refused(R"({"x": [4, 4, 3], "c": [2, 2, 2], "y": [4, 4, 2]})", "[" + conv + ", " + relu + "]",
            "op 'conv' (conv): output shape does not follow from the conv");
    refused(values, R"([{"op": "lstm", "name": "rnn", "input": "x", "output": "c"}])", "op 'rnn' (lstm): unknown op kind 'lstm'");
    refused(R"({"x": [4, 4, 3], "c": [16000, 16000, 2000], "y": [4, 4, 2]})", "[]", "larger than facet's limit");
    refused(values, "[" + conv + "]", "output 'y' is not written by any op");
    std::string huge_groups = conv;
    huge_groups.replace(huge_groups.find("\"groups\": 1"), 11, "\"groups\": 1e300");
    refused(values, "[" + huge_groups + ", " + relu + "]", "groups must be a whole number");
    // A stride-2 conv padded 0 before and 1 after runs on the input seen from pixel (1, 1): a 1-pixel
    // input has no such view.
    std::string shifted = conv;
    shifted.replace(shifted.find("\"stride\": [1, 1], \"pads\": [1, 1, 1, 1]"), 38, "\"stride\": [2, 2], \"pads\": [0, 0, 1, 1]");
    refused(R"({"x": [1, 4, 3], "c": [1, 2, 2], "y": [1, 2, 2]})", "[" + shifted + ", " + relu + "]", "need an input of at least 2x2");
    const std::string pad = R"({"op": "pad", "name": "pad", "input": "c", "output": "y"})";
    refused(R"({"x": [4, 4, 3], "c": [4, 4, 2], "y": [3, 5, 2]})", "[" + conv + ", " + pad + "]", "op 'pad' (pad): a pad makes no axis smaller");
    // A 3x3 conv without pads runs on the input's interior: a 2-pixel input has none.
    std::string valid = conv;
    valid.replace(valid.find("\"pads\": [1, 1, 1, 1]"), 20, "\"pads\": [0, 0, 0, 0]");
    refused(R"({"x": [2, 4, 3], "c": [1, 1, 2], "y": [1, 1, 2]})", "[" + valid + ", " + relu + "]", "needs an input of at least 3x3");
}

TEST_CASE("graph executor: TensorFlow's \"same\" 3x3 stride-2 conv (pads 0 before, 1 after) and \"valid\" 3x3 convs (no "
          "pads, stride 1 and 2) run inset on the fast kernels, as the reference conv computes them, every instruction set") {
    // x (h x w x 3) -> 1x1 conv to cin channels -> the conv under test, pads [0, 0, 1, 1] at stride 2
    // (inset 1) or none (inset 2): dense and depthwise, even and odd sizes.
    struct Case {
        int h, w, cin, cout, groups;
    };
    struct Padding {
        int stride, pad_end, inset;
    };
    for (const Padding padding : {Padding{2, 1, 1}, Padding{2, 0, 2}, Padding{1, 0, 2}})
    for (const Case c : {Case{8, 6, 3, 7, 1}, Case{7, 9, 5, 16, 1}, Case{2, 2, 3, 4, 1}, Case{10, 12, 20, 20, 20}, Case{5, 4, 33, 33, 33}}) {
        if (std::min(c.h, c.w) <= padding.inset) continue; // refused (the next test case)
        CAPTURE(c.h); CAPTURE(c.w); CAPTURE(c.cin); CAPTURE(c.groups); CAPTURE(padding.stride); CAPTURE(padding.inset);
        ConvGeometry g;
        g.kernel_h = g.kernel_w = 3;
        g.stride_h = g.stride_w = padding.stride;
        g.pad_bottom = g.pad_right = padding.pad_end;
        g.groups = c.groups;
        const int oh = g.out_h(c.h), ow = g.out_w(c.w);
        const std::vector<float> widen = test::random_floats(static_cast<std::size_t>(c.cin) * 3, 10);
        const std::vector<float> weights = test::random_floats(static_cast<std::size_t>(c.cout) * (c.cin / c.groups) * 9, 11);
        const std::vector<float> bias = test::random_floats(static_cast<std::size_t>(c.cout), 12);
        const auto str = [](int v) { return std::to_string(v); };
        const std::string metadata =
            R"({"format": "facet", "model": "graph", "input": {"color": "rgb", "mean": [0, 0, 0], "scale": [1, 1, 1]},
                "graph": {"input": {"name": "x", "onnx_shape": [1, 3, )" + str(c.h) + ", " + str(c.w) + R"(]},
                          "outputs": [{"name": "y", "value": "y", "onnx_shape": [1, )" + str(c.cout) + ", " + str(oh) + ", " + str(ow) +
            R"(], "order": "chw"}],
                          "values": {"x": [)" + str(c.h) + ", " + str(c.w) + R"(, 3], "m": [)" + str(c.h) + ", " + str(c.w) + ", " +
            str(c.cin) + R"(], "y": [)" + str(oh) + ", " + str(ow) + ", " + str(c.cout) + R"(]}, "constants": {},
                          "ops": [{"op": "conv", "name": "widen", "input": "x", "output": "m", "weight": "v", "groups": 1, "kernel": [1, 1],
                                   "stride": [1, 1], "pads": [0, 0, 0, 0], "dilation": [1, 1], "activation": {"kind": "none"}},
                                  {"op": "conv", "name": "conv", "input": "m", "output": "y", "weight": "w", "bias": "b",
                                   "groups": )" + str(c.groups) + R"(, "kernel": [3, 3], "stride": [)" + str(padding.stride) + ", " +
            str(padding.stride) + R"(], "pads": [0, 0, )" + str(padding.pad_end) + ", " + str(padding.pad_end) +
            R"(], "dilation": [1, 1], "activation": {"kind": "relu"}}]}})";
        const auto u = [](int v) { return static_cast<std::uint32_t>(v); };
        const auto model = std::make_shared<const GraphModel>(test::parse(test::write_facet(
            metadata, {{"v", {u(c.cin), 3, 1, 1}, widen}, {"w", {u(c.cout), u(c.cin / c.groups), 3, 3}, weights}, {"b", {u(c.cout)}, bias}})));
        REQUIRE(model->ops().size() == 2);
        CHECK(model->ops()[1].view_inset == padding.inset);
        CHECK(model->ops()[1].kind == (c.groups == 1 ? GraphOp::Kind::conv : GraphOp::Kind::depthwise));
        FeatureBuffer input(c.h, c.w, 3), widened(c.h, c.w, c.cin), expected(oh, ow, c.cout);
        test::fill_random(input.map(), 13);
        ref::conv2d(input.map(), widen.data(), nullptr, c.cin, 1, 1, 0, 1, {}, widened.map());
        ref::conv2d(widened.map(), weights.data(), bias.data(), c.cout, g, {Activation::relu, 0.0f}, expected.map());
        for (const KernelSet* ks : test::all_kernel_sets()) {
            GraphExecutor net(model, *ks);
            for (int y = 0; y < c.h; ++y)
                for (int x = 0; x < c.w; ++x) std::copy_n(input.map().at(y, x), 3, net.input().at(y, x));
            net.run();
            CAPTURE(std::string(ks->isa));
            CHECK(test::max_scaled_error(net.output_map(0), expected.map()) < 1e-5);
        }
    }
}
