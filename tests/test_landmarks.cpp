// Dense landmarks (models/landmarks.hpp): upstream's crop and OpenCV's bicubic to the last bit, and
// PFLD-GhostOne end to end on the golden face, on every instruction set.
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/io/json.hpp>
#include <facet/models/landmarks.hpp>
#include <facet/models/recognizer.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "facet_writer.hpp"
#include "npy.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

struct GoldenFace {
    std::array<float, 4> box{};
    LandmarkPoints landmarks;
};

GoldenFace load_golden_face() {
    std::ifstream f(test::shared_path("golden/pfld_ghostone_kate_siegel.json"));
    REQUIRE(f);
    std::stringstream text;
    text << f.rdbuf();
    const json::Value doc = json::parse(text.str());
    const json::Value& face = doc["faces"][0];
    GoldenFace g;
    for (int k = 0; k < 4; ++k) g.box[k] = static_cast<float>(face["box"][k].number());
    for (const json::Value& p : face["landmarks98"].array())
        g.landmarks.push_back({static_cast<float>(p[0].number()), static_cast<float>(p[1].number())});
    return g;
}

// A graph file whose height x width input is pooled to one pixel, then a dense layer with zero
// weights: its output is `bias`, whatever the image. `landmarks` goes into the metadata as it is
// (e.g. R"("landmarks": {...}, )").
WeightFile pooled_dense_file(int height, int width, const std::vector<float>& bias, const std::string& landmarks = "") {
    const std::string size = std::to_string(height) + ", " + std::to_string(width), outputs = std::to_string(bias.size());
    const std::string metadata =
        R"({"format": "facet", "model": "graph", "input": {"color": "rgb", "mean": [0, 0, 0], "scale": [1, 1, 1]}, )" + landmarks + R"(
            "graph": {"input": {"name": "x", "onnx_shape": [1, 3, )" + size + R"(]},
                      "outputs": [{"name": "points", "value": "points", "onnx_shape": [1, )" + outputs + R"(], "order": "hwc"}],
                      "values": {"x": [)" + size + R"(, 3], "pooled": [1, 1, 3], "points": [1, 1, )" + outputs + R"(]}, "constants": {},
                      "ops": [{"op": "avg_pool", "name": "pool", "input": "x", "output": "pooled", "kernel": [)" + size + R"(],
                               "stride": [)" + size + R"(], "pads": [0, 0, 0, 0], "count_include_pad": false},
                              {"op": "dense", "name": "fc", "input": "pooled", "output": "points", "weight": "fc.weight",
                               "bias": "fc.bias", "activation": {"kind": "none"}}]}})";
    const auto n = static_cast<std::uint32_t>(bias.size());
    const std::vector<test::TensorSpec> tensors{{"fc.weight", {n, 3}, std::vector<float>(3 * bias.size(), 0.0f)}, {"fc.bias", {n}, bias}};
    return test::parse(test::write_facet(metadata, tensors));
}

} // namespace

TEST_CASE("bicubic resampling: an unchanged size is the identity, and the weights sum to one") {
    for (int n : {1, 2, 7, 112})
        for (const CubicTap& t : cubic_taps(n, n)) CHECK(t.weight == std::array<int, 4>{0, 2048, 0, 0});
    for (auto [in, out] : {std::pair<int, int>{307, 112}, {50, 112}, {3, 9}})
        for (const CubicTap& t : cubic_taps(in, out)) {
            CHECK(std::abs(t.weight[0] + t.weight[1] + t.weight[2] + t.weight[3] - 2048) <= 2);
            for (int i : t.index) CHECK((i >= 0 && i < in));
        }
    Image image(5, 4);
    for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>(i * 37);
    Image copy(5, 4);
    std::vector<std::int32_t> rows;
    resample_cubic<3>(
        cubic_taps(5, 5), cubic_taps(4, 4), rows, [&](int y) { return image.pixel(0, y); }, [&](int y) { return copy.pixel(0, y); });
    CHECK(copy.rgb == image.rgb);
}

TEST_CASE("PFLD-GhostOne: upstream's crop to the bit, and the 98 landmarks within 1 px of the golden ones, every instruction set") {
    const GoldenFace golden = load_golden_face();
    const Image image = load_image(test::shared_path("upstream/images/portrait_kate_siegel.jpg"));
    // The square of side max(w, h) around the golden box, rounded as upstream rounds it.
    const LandmarkCrop crop = landmark_crop(golden.box);
    CHECK(crop.x == 500);
    CHECK(crop.y == 114);
    CHECK(crop.side == 307);
    const test::Npy input = test::load_npy(test::shared_path("golden/pfld_ghostone_kate_siegel_input.npy"));
    const auto model = GraphModel::from_file(test::weights_path("pfld_ghostone.facet"));
    for (const KernelSet* ks : test::all_kernel_sets()) {
        FaceLandmarker landmarker(model, *ks);
        CHECK(landmarker.points() == 98);
        const LandmarkPoints points = landmarker.landmarks(image, golden.box);
        // The network input is OpenCV's INTER_CUBIC crop exactly: the golden input holds it as
        // (x / 255 - 0.5) / 0.5 in NCHW.
        int differing = 0;
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 112; ++y)
                for (int x = 0; x < 112; ++x) {
                    const float expected = (input.data[(static_cast<std::size_t>(c) * 112 + y) * 112 + x] * 0.5f + 0.5f) * 255.0f;
                    differing += std::fabs(landmarker.last_crop().pixel(x, y)[c] - expected) > 0.01f;
                }
        CHECK(differing == 0);
        REQUIRE(points.size() == golden.landmarks.size());
        double worst = 0;
        for (std::size_t i = 0; i < points.size(); ++i)
            for (int k = 0; k < 2; ++k) worst = std::max(worst, static_cast<double>(std::fabs(points[i][k] - golden.landmarks[i][k])));
        MESSAGE(std::string(ks->isa) << ": largest landmark difference " << worst << " px");
        CAPTURE(std::string(ks->isa));
        CHECK(worst < 1.0);
        CHECK(worst < 0.01); // in fact: the golden JSON rounds to 0.001 px
    }
}

TEST_CASE("alignment points from dense landmarks: eyes, nose tip and mouth corners where the face has them") {
    const GoldenFace golden = load_golden_face();
    const auto p = alignment_points(golden.landmarks);
    CHECK(p[0][0] < p[2][0]); // left eye, nose, right eye from left to right
    CHECK(p[2][0] < p[1][0]);
    CHECK(p[3][0] < p[4][0]); // mouth corners
    CHECK(std::max(p[0][1], p[1][1]) < p[2][1]); // eyes above the nose tip, above the mouth
    CHECK(p[2][1] < std::min(p[3][1], p[4][1]));
    CHECK_THROWS_AS(alignment_points(LandmarkPoints(5)), Error);
}

TEST_CASE("a graph that is not a 98- or 68-point landmark model is refused") {
    const auto zoo = GraphModel::from_file(FACET_BINARY_DIR "/onnx/ops_zoo.facet");
    try {
        FaceLandmarker landmarker(zoo);
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("a landmark model") != std::string::npos);
    }
}

TEST_CASE("a graph whose input is not square is refused by the landmark and face recognition models, naming its size") {
    // A 68-point model's output, so only the input's shape is wrong for the landmark model.
    const auto model = std::make_shared<const GraphModel>(pooled_dense_file(6, 8, std::vector<float>(136, 0.0f)));
    CHECK_THROWS_WITH_AS(FaceLandmarker{model}, "a landmark model takes a square crop; this one's input is 8x6", Error);
    CHECK_THROWS_WITH_AS(FaceRecognizer{model}, "a face recognition model takes a square crop; this one's input is 8x6", Error);
}

TEST_CASE("a 68-point model: points in [0, 1] of the crop map to the square around the box") {
    // Biases that put point i at (i / 68, 1 - i / 68) of the crop.
    std::vector<float> bias(136);
    for (int i = 0; i < 68; ++i) {
        bias[2 * i] = i / 68.0f;
        bias[2 * i + 1] = 1 - i / 68.0f;
    }
    const auto model = std::make_shared<const GraphModel>(pooled_dense_file(8, 8, bias));
    CHECK(model->landmark_crop_margin == 0.0f);
    FaceLandmarker landmarker(model);
    CHECK(landmarker.points() == 68);
    const Image image(50, 40);
    const std::array<float, 4> box{10.2f, 5.0f, 30.0f, 35.4f}; // 19.8 x 30.4: a 30-pixel square at (5, 5)
    const LandmarkCrop crop = landmark_crop(box);
    CHECK(crop.side == 30);
    CHECK(crop.x == 5);
    CHECK(crop.y == 5);
    // An odd side on a half-pixel centre: the square [0, 11) is centred on the box's 5.5; rounding
    // the centre first (6) and taking 11 / 2 = 5 off it gave [1, 12), a pixel off.
    CHECK(landmark_crop({0.0f, 0.0f, 11.0f, 11.0f}).x == 0);
    CHECK(landmark_crop({20.0f, 30.0f, 31.0f, 35.0f}).y == 27); // centre 32.5, side 11: 27.0
    const LandmarkPoints points = landmarker.landmarks(image, box);
    REQUIRE(points.size() == 68);
    for (int i = 0; i < 68; ++i) {
        CHECK(points[i][0] == doctest::Approx(5 + 30.0 * i / 68).epsilon(1e-5));
        CHECK(points[i][1] == doctest::Approx(5 + 30.0 * (1 - i / 68.0)).epsilon(1e-5));
    }
    const auto five = alignment_points(points); // eyes: means of points 36-41 and 42-47
    CHECK(five[0][0] == doctest::Approx(5 + 30.0 * 38.5 / 68).epsilon(1e-5));
    CHECK(five[2][0] == doctest::Approx(points[30][0]));

    // The file's landmarks.crop_margin grows the square by that fraction of max(w, h) on each side:
    // 0.25 of 30.4 makes it 45.6 -> 46 pixels around the box's centre (20.1, 20.2), from (-3, -3).
    FaceLandmarker loose(std::make_shared<const GraphModel>(pooled_dense_file(8, 8, bias, R"("landmarks": {"crop_margin": 0.25}, )")));
    CHECK(landmark_crop(box, 0.25f).side == 46);
    CHECK(landmark_crop(box, 0.25f).x == -3);
    const LandmarkPoints loose_points = loose.landmarks(image, box);
    CHECK(loose_points[0][0] == doctest::Approx(-3.0f));
    CHECK(loose_points[67][0] == doctest::Approx(-3 + 46.0 * 67 / 68).epsilon(1e-5));
    for (const char* bad : {R"("landmarks": {"crop_margin": -0.1}, )", R"("landmarks": {"crop_margin": 1.5}, )", R"("landmarks": {}, )"})
        CHECK_THROWS_AS(GraphModel(pooled_dense_file(8, 8, bias, bad)), Error);
}
