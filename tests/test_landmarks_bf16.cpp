// The landmark graphs from their bf16 weight files (converters/quantize_bf16.py, made by setup.sh)
// against their fp32 files, on the faces RetinaFace (fp32) finds in every shared image, on every
// instruction set: issue 19's gate for landmark graphs, NME (mean point distance over the box's
// longer side) <= 1%. AVX-512 runs the bf16 convs on the AVX512-BF16 kernels where the CPU has
// them; SSE4.1 and AVX2 run them on the fp32 kernels with the weights widened. And the graph
// loader's dtype handling on a hand-made file: bfloat16 weights widened exactly, int8 weights run
// where a conv has an int8 kernel and refused elsewhere.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "facet_writer.hpp"
#include "landmark_gate.hpp"

using namespace facet;

TEST_CASE("landmark graphs in bf16 keep the fp32 points within 1% of the box on every shared image's faces, every "
          "instruction set") {
    const test::LandmarkGateFaces gate = test::landmark_gate_faces();
    bool ran_bf16_kernels = false;
    for (const char* model : {"pfld_ghostone", "face_landmark_68"}) {
        const auto fp32 = GraphModel::from_file(test::required_weights_path(std::string(model) + ".facet"));
        const auto bf16 = GraphModel::from_file(test::required_weights_path(std::string(model) + "_bf16.facet"));
        CHECK(fp32->precision == "fp32");
        REQUIRE(bf16->precision == "bf16");
        // Not vacuous: the pointwise convs are bf16, and run on the bf16 kernel where there is one.
        const auto pointwise = std::find_if(bf16->ops().begin(), bf16->ops().end(), [](const GraphOp& op) {
            return op.kind == GraphOp::Kind::conv && op.conv.k() == 1;
        });
        REQUIRE(pointwise != bf16->ops().end());
        REQUIRE(pointwise->conv.fp32.bf16);
        for (const KernelSet* ks : test::all_kernel_sets()) {
            CHECK((ks->conv_for(pointwise->conv.fp32) == (ks->conv1x1_bf16 ? ks->conv1x1_bf16 : ks->conv1x1)));
            ran_bf16_kernels = ran_bf16_kernels || ks->conv1x1_bf16;
            const std::vector<double> worst = test::worst_landmark_nme(fp32, bf16, *ks, gate);
            for (std::size_t i = 0; i < worst.size(); ++i) {
                CAPTURE(std::string(ks->isa));
                CAPTURE(std::string(test::kGateImages[i]));
                CHECK(worst[i] <= test::kMaxLandmarkNme);
                std::ostringstream line;
                line << model << " " << ks->isa << (ks->conv1x1_bf16 ? " (bf16 kernels) " : " (widened) ") << test::kGateImages[i]
                     << ": " << gate.faces[i].size() << " faces, worst NME " << worst[i] * 100 << "% of the box";
                MESSAGE(line.str());
            }
        }
    }
    if (!ran_bf16_kernels) MESSAGE("no AVX512-BF16 on this CPU: only the widened path was checked");
}

TEST_CASE("graph loader: bfloat16 conv and dense weights are widened exactly, an int8 conv runs exactly, int8 dense weights "
          "are refused") {
    // A 1x1 conv of the 3-channel 1x1 input into 2 channels, then a dense layer into 1.
    const auto graph_file = [](DType conv_dtype, DType dense_dtype, const std::string& precision) {
        const std::string metadata =
            R"({"format": "facet", "model": "graph", "precision": ")" + precision + R"(",
                "input": {"color": "rgb", "mean": [0, 0, 0], "scale": [1, 1, 1]},
                "graph": {"input": {"name": "x", "onnx_shape": [1, 3, 1, 1]},
                          "outputs": [{"name": "y", "value": "y", "onnx_shape": [1, 1], "order": "hwc"}],
                          "values": {"x": [1, 1, 3], "c": [1, 1, 2], "y": [1, 1, 1]}, "constants": {},
                          "ops": [{"op": "conv", "name": "pointwise", "input": "x", "output": "c", "weight": "pointwise.weight", "groups": 1,
                                   "kernel": [1, 1], "stride": [1, 1], "pads": [0, 0, 0, 0], "dilation": [1, 1],
                                   "activation": {"kind": "none"}},
                                  {"op": "dense", "name": "fc", "input": "c", "output": "y", "weight": "fc.weight",
                                   "activation": {"kind": "none"}}]}})";
        // Weights 1.5, -0.25, 3, 0.5, 2, -1 (conv) and 0.75, -2 (dense): exact in bfloat16 (a float's
        // upper half), so the bf16 file holds the fp32 file's numbers; and in int8 with weight_scale
        // 0.25 (6, -1, 12, 2, 8, -4), the input (1, 2, -3) too with input_scale 0.5 and zero point 10
        // (12, 14, 4): the int8 conv's accumulators (-64, 60) times 0.5 * 0.25 are the float sums.
        const std::vector<float> conv = {1.5f, -0.25f, 3.0f, 0.5f, 2.0f, -1.0f}, dense = {0.75f, -2.0f};
        const auto tensor = [](const std::string& name, std::vector<std::uint32_t> shape, const std::vector<float>& values,
                               DType dtype) {
            if (dtype == DType::float32) return test::TensorSpec(name, shape, values);
            std::vector<std::uint8_t> raw;
            for (float v : values) {
                std::uint32_t bits;
                std::memcpy(&bits, &v, 4);
                if (dtype == DType::bfloat16) {
                    raw.push_back(static_cast<std::uint8_t>(bits >> 16));
                    raw.push_back(static_cast<std::uint8_t>(bits >> 24));
                } else {
                    raw.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(v * 4))); // weight_scale 0.25
                }
            }
            return test::TensorSpec(name, shape, dtype, raw);
        };
        std::vector<test::TensorSpec> tensors = {tensor("pointwise.weight", {2, 3, 1, 1}, conv, conv_dtype),
                                                 tensor("fc.weight", {1, 2}, dense, dense_dtype)};
        if (conv_dtype == DType::int8) {
            const std::int32_t zero_point = 10;
            std::vector<std::uint8_t> zero_point_bytes(4);
            std::memcpy(zero_point_bytes.data(), &zero_point, 4);
            tensors.emplace_back("pointwise.weight_scale", std::vector<std::uint32_t>{2}, std::vector<float>{0.25f, 0.25f});
            tensors.emplace_back("pointwise.input_scale", std::vector<std::uint32_t>{1}, std::vector<float>{0.5f});
            tensors.emplace_back("pointwise.input_zero_point", std::vector<std::uint32_t>{1}, DType::int32, zero_point_bytes);
        }
        return test::parse(test::write_facet(metadata, tensors));
    };
    const auto run = [](std::shared_ptr<const GraphModel> model, const KernelSet& ks) {
        GraphExecutor net(std::move(model), ks);
        const float pixel[3] = {1.0f, 2.0f, -3.0f};
        std::copy_n(pixel, 3, net.input().at(0, 0));
        net.run();
        return net.output(0)[0];
    };
    // c = (1.5 + -0.5 + -9, 0.5 + 4 + 3) = (-8, 7.5); y = 0.75 * -8 - 2 * 7.5 = -21.
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        CHECK(run(std::make_shared<const GraphModel>(graph_file(DType::float32, DType::float32, "fp32")), *ks) == -21.0f);
        const auto bf16 = std::make_shared<const GraphModel>(graph_file(DType::bfloat16, DType::bfloat16, "bf16"));
        CHECK(bf16->precision == "bf16");
        CHECK(bf16->ops()[0].conv.fp32.bf16); // a pointwise conv: the bf16 kernels' pairs too
        CHECK(run(bf16, *ks) == -21.0f);
        // An int8 conv reading the graph input: the input is stored padded for its quantisation.
        const auto int8 = std::make_shared<const GraphModel>(graph_file(DType::int8, DType::float32, "int8"));
        CHECK(int8->precision == "int8");
        CHECK(int8->ops()[0].conv.quantized());
        CHECK(int8->input().cstride == 16);
        CHECK(run(int8, *ks) == -21.0f);
    }
    const auto refused = [&](DType conv, DType dense, const std::string& precision, const std::string& message) {
        CAPTURE(message);
        try {
            GraphModel model(graph_file(conv, dense, precision));
            FAIL("accepted");
        } catch (const Error& e) {
            const std::string what = e.what();
            CAPTURE(what);
            CHECK(what.find(message) != std::string::npos);
        }
    };
    refused(DType::float32, DType::float32, "int4", "precision 'int4' is not supported by graph models");
    refused(DType::float32, DType::int8, "int8", "op 'fc' (dense): weight 'fc.weight' is int8, but a dense layer has no int8 kernel");
}
