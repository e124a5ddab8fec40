// face-api's face recognition network (converters/tfjs2facet.py, models/recognizer.hpp) against
// face-api itself: the 128-d descriptors tests/faceapi/make_recognition_reference.mjs had the package
// compute, in node on its bundled TensorFlow.js CPU backend, for the crops of tests/faceapi/recognition,
// on every instruction set. The 150x150 crops test the network; the others (the `_box` crops) also
// face-api's padding to a square and bilinear resize, which FaceRecognizer reproduces.
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/io/json.hpp>
#include <facet/models/recognizer.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "faceapi_reference.hpp"
#include "test_util.hpp"

using namespace facet;

TEST_CASE("face_recognition: face-api's 128-d descriptors within 1e-4 per entry, crops of any size, on every instruction set") {
    const auto model = test::load_faceapi_model("face_recognition.facet");
    if (!model) return;
    const json::Value reference = test::load_source_json("tests/faceapi/recognition/reference.json");
    const std::vector<json::Value>& crops = reference["crops"].array();
    REQUIRE(crops.size() >= 5);
    REQUIRE(std::count_if(crops.begin(), crops.end(), [](const json::Value& c) { return c["width"].number() != 150; }) >= 2);
    // The 28 3x3 convs of the residual blocks (stride 1 "same", stride 2 "valid") run on the dense
    // conv kernels (conv_nhwc, Winograd); only the 7x7 stem runs on the generic grouped conv.
    const auto ops_of_kind = [&](GraphOp::Kind kind) {
        return std::count_if(model->ops().begin(), model->ops().end(), [&](const GraphOp& op) { return op.kind == kind; });
    };
    CHECK(ops_of_kind(GraphOp::Kind::conv) == 28);
    CHECK(ops_of_kind(GraphOp::Kind::grouped_conv) == 1);
    for (const KernelSet* ks : test::all_kernel_sets()) {
        FaceRecognizer recognizer(model, *ks);
        double worst = 0;
        for (const json::Value& crop : crops) {
            const Image image = load_image(test::source_path("tests/faceapi/recognition/" + crop["image"].string()));
            const FaceDescriptor descriptor = recognizer.embed(image);
            const std::vector<json::Value>& expected = crop["descriptor"].array();
            REQUIRE(expected.size() == descriptor.size());
            double crop_worst = 0;
            for (std::size_t i = 0; i < expected.size(); ++i)
                crop_worst = std::max(crop_worst, std::fabs(descriptor[i] - expected[i].number()));
            CAPTURE(crop["image"].string());
            CHECK(crop_worst < 1e-4);
            worst = std::max(worst, crop_worst);
        }
        MESSAGE(std::string(ks->isa) << ": largest descriptor difference from face-api " << worst);
        CAPTURE(std::string(ks->isa));
        CHECK(worst < 1e-4);
    }
}
