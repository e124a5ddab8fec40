// face-api's 68-point landmark network (converters/tfjs2facet.py) against face-api itself: the
// landmarks tests/faceapi/make_reference.mjs had the package compute, in node on its bundled
// TensorFlow.js CPU backend, for the 112x112 crops of tests/faceapi, on every instruction set.
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/io/json.hpp>
#include <facet/models/graph.hpp>
#include <facet/models/landmarks.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "faceapi_reference.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

constexpr int kCropSide = 112;

// The converted model, or null (with a message) when setup has not made it.
std::shared_ptr<const GraphModel> load_face_landmark_68() {
    const std::string path = test::weights_path("face_landmark_68.facet");
    if (!std::ifstream(path).good()) {
        MESSAGE("skipped: " << path << " is missing (scripts/fetch-weights.sh converts it)");
        return nullptr;
    }
    return GraphModel::from_file(path);
}

} // namespace

TEST_CASE("face_landmark_68: face-api's 68 landmarks within 0.01 px of the 112 px crop, on every instruction set") {
    const auto model = load_face_landmark_68();
    if (!model) return;
    const json::Value reference = test::load_faceapi_reference();
    REQUIRE(reference["crops"].array().size() >= 3);
    for (const KernelSet* ks : test::all_kernel_sets()) {
        GraphExecutor net(model, *ks);
        double worst = 0;
        for (const json::Value& crop : reference["crops"].array()) {
            const Image image = load_image(test::source_path("tests/faceapi/" + crop["image"].string()));
            net.set_input(image);
            net.run();
            const std::vector<float> points = net.output(0); // x0, y0, x1, ... in [0, 1] of the crop
            const std::vector<json::Value>& expected = crop["landmarks"].array();
            REQUIRE(points.size() == 2 * expected.size());
            for (std::size_t i = 0; i < expected.size(); ++i)
                for (int k = 0; k < 2; ++k)
                    worst = std::max(worst, std::fabs(points[2 * i + k] * kCropSide - expected[i][k].number()));
        }
        MESSAGE(std::string(ks->isa) << ": largest landmark difference from face-api " << worst << " px of the 112 px crop");
        CAPTURE(std::string(ks->isa));
        CHECK(worst < 0.01);
    }
}
