// PFLD converted from PyTorch checkpoints (recipes pfld and pfld-angles, converters/recipes.py)
// against its PyTorch reference (tests/pfld/pfld_reference.py: written from the paper's tables in
// PFLD-pytorch's layout, randomly initialised, outputs computed in float64), on every instruction
// set; and FaceLandmarker running such a file. The reference is committed (tests/pfld/reference);
// the build converts its checkpoints into <build>/pfld (CMakeLists.txt).
#include <doctest/doctest.h>
#include <facet/models/graph.hpp>
#include <facet/models/landmarks.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "npy.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

// A converted checkpoint, made by the build.
std::string pfld_path(const std::string& file) {
    const std::string path = std::string(FACET_BINARY_DIR) + "/pfld/" + file;
    if (!std::ifstream(path)) FAIL(path << " is missing: build the facet-pfld-reference target");
    return path;
}

// An input or output of the PyTorch reference.
std::string reference_path(const std::string& file) { return std::string(FACET_SOURCE_DIR) + "/tests/pfld/reference/" + file; }

// The reference's 112 x 112 test image (RGB values 0..255 as float32).
Image reference_image() {
    const test::Npy pixels = test::load_npy(reference_path("image.npy"));
    REQUIRE(pixels.shape == std::vector<int>{112, 112, 3});
    Image image(112, 112);
    std::transform(pixels.data.begin(), pixels.data.end(), image.rgb.begin(), [](float v) { return static_cast<std::uint8_t>(v); });
    return image;
}

// Runs the converted `model_file` on the reference image (normalised as the file says) and checks
// each output against the reference's `expected` files within 1e-4, on every instruction set.
void check_against_reference(const std::string& model_file, const std::vector<std::string>& outputs,
                             const std::vector<std::string>& expected) {
    const auto model = GraphModel::from_file(pfld_path(model_file));
    REQUIRE(model->outputs().size() == outputs.size());
    const Image image = reference_image();
    for (const KernelSet* ks : test::all_kernel_sets()) {
        GraphExecutor net(model, *ks);
        net.set_input(image);
        net.run();
        for (std::size_t i = 0; i < outputs.size(); ++i) {
            CHECK(model->outputs()[i].name == outputs[i]);
            const double error = test::max_abs_difference(net.output(i), test::load_npy(reference_path(expected[i])).data);
            CAPTURE(std::string(ks->isa));
            MESSAGE(model_file << ", " << std::string(ks->isa) << ": " << outputs[i] << " within " << error << " of PyTorch");
            CHECK(error < 1e-4);
        }
    }
}

} // namespace

TEST_CASE("PFLD, 98 points with the auxiliary net (recipe pfld-angles): landmarks and angles as PyTorch's, every instruction set") {
    check_against_reference("pfld98_angles.facet", {"landmarks", "angles"}, {"pfld98_landmarks.npy", "pfld98_angles.npy"});
}

TEST_CASE("PFLD, 98 points from a training checkpoint (recipe pfld): landmarks as PyTorch's, every instruction set") {
    check_against_reference("pfld98.facet", {"landmarks"}, {"pfld98_landmarks.npy"});
}

TEST_CASE("PFLD, 68 points from a backbone's state dict (recipe pfld): landmarks as PyTorch's, every instruction set") {
    check_against_reference("pfld68.facet", {"landmarks"}, {"pfld68_landmarks.npy"});
}

TEST_CASE("FaceLandmarker runs a converted PFLD: points in image pixels and, from pfld-angles, the head angles") {
    // The box is the whole 112 x 112 image: the crop is the image itself (bicubic at an unchanged
    // size is the identity), so the points are the reference's outputs times 112.
    const Image image = reference_image();
    const std::array<float, 4> box{0.0f, 0.0f, 112.0f, 112.0f};
    FaceLandmarker with_angles(pfld_path("pfld98_angles.facet"));
    CHECK(with_angles.points() == 98);
    REQUIRE(with_angles.has_angles());
    const LandmarkPoints points = with_angles.landmarks(image, box);
    CHECK(with_angles.last_crop().rgb == image.rgb);
    const std::vector<float> expected = test::load_npy(reference_path("pfld98_landmarks.npy")).data;
    REQUIRE(points.size() == 98);
    for (int i = 0; i < 98; ++i) {
        CHECK(std::fabs(points[i][0] - 112 * expected[2 * i]) < 112e-4);
        CHECK(std::fabs(points[i][1] - 112 * expected[2 * i + 1]) < 112e-4);
    }
    const std::vector<float> angles = test::load_npy(reference_path("pfld98_angles.npy")).data;
    for (int k = 0; k < 3; ++k) CHECK(std::fabs(with_angles.last_angles()[k] - angles[k]) < 1e-4);

    FaceLandmarker without_angles(pfld_path("pfld68.facet"));
    CHECK(without_angles.points() == 68);
    CHECK_FALSE(without_angles.has_angles());
    CHECK(without_angles.landmarks(image, box).size() == 68);
}
