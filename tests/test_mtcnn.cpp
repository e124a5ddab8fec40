// MTCNN against the upstream facenet-pytorch cascade's outputs (../shared/golden), on every
// instruction set, plus the inputs the golden files do not cover: images too small for the
// pyramid, faces cut by the image border, bad options and files.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "test_util.hpp"

using namespace facet;

namespace {

std::shared_ptr<const MtcnnModel> load_model() {
    const std::string path = test::weights_path("mtcnn.facet");
    INFO("weight file " << path << " (made by ./setup.sh)");
    REQUIRE(std::ifstream(path).good());
    return MtcnnModel::from_file(path);
}

float area(const Face& f) { return (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]); }

// The acceptance rule of the MTCNN issue: as many faces as the golden file; each golden face
// matched with IoU >= 0.98, score within 0.002 and every landmark within 1 px; and listed in the
// same order (largest first). Reports the worst differences it saw.
void check_against_golden(const std::string& image_name, const std::string& golden_name) {
    const Image image = load_image(test::shared_path("upstream/images/" + image_name));
    const auto golden = test::load_golden_faces(test::shared_path("golden/" + golden_name));
    const auto model = load_model();
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        Mtcnn detector(model, *ks);
        const auto faces = detector.detect(image);
        CHECK(faces.size() == golden.size());
        float min_iou = 1, max_score_diff = 0, max_landmark_diff = 0;
        for (std::size_t i = 0; i < golden.size(); ++i) {
            const Face& g = golden[i];
            const Face* best = nullptr;
            for (const Face& f : faces)
                if (!best || box_iou(f.box, g.box) > box_iou(best->box, g.box)) best = &f;
            REQUIRE(best != nullptr);
            CAPTURE(g.box[0]); CAPTURE(g.box[1]); CAPTURE(g.score);
            CHECK(best == &faces[std::min(i, faces.size() - 1)]); // same order
            min_iou = std::min(min_iou, box_iou(best->box, g.box));
            max_score_diff = std::max(max_score_diff, std::fabs(best->score - g.score));
            for (int n = 0; n < 5; ++n)
                for (int k = 0; k < 2; ++k)
                    max_landmark_diff = std::max(max_landmark_diff, std::fabs(best->landmarks[n][k] - g.landmarks[n][k]));
        }
        MESSAGE(image_name << " " << std::string(ks->isa) << ": " << faces.size() << " faces (golden " << golden.size()
                           << "), min IoU " << min_iou << ", max score diff " << max_score_diff
                           << ", max landmark diff " << max_landmark_diff << " px");
        CHECK(min_iou >= 0.98f);
        CHECK(max_score_diff <= 0.002f);
        CHECK(max_landmark_diff <= 1.0f);
        for (std::size_t i = 1; i < faces.size(); ++i) CHECK(area(faces[i - 1]) >= area(faces[i]));
    }
}

// A test image of a given size: a smooth pattern, no face.
Image pattern(int w, int h) {
    Image img(w, h);
    for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i * 37 % 251);
    return img;
}

// The rows [y0, y0 + h) and columns [x0, x0 + w) of an image.
Image sub_image(const Image& src, int x0, int y0, int w, int h) {
    Image out(w, h);
    for (int y = 0; y < h; ++y) std::copy(src.pixel(x0, y0 + y), src.pixel(x0 + w, y0 + y), out.pixel(0, y));
    return out;
}

} // namespace

TEST_CASE("MTCNN matches the golden detections on crowd.jpg and multiface.jpg") {
    check_against_golden("crowd.jpg", "mtcnn_crowd.json");
    check_against_golden("multiface.jpg", "mtcnn_multiface.json");
}

TEST_CASE("MTCNN model: defaults from the file's metadata") {
    const auto model = load_model();
    CHECK(model->defaults().min_face == 20);
    CHECK(model->defaults().factor == 0.709);
    CHECK(model->defaults().thresholds == std::array<float, 3>{0.6f, 0.7f, 0.7f});
    CHECK(model->pnet.heads.cout == 6);
    CHECK(model->onet.heads.cout == 16);
}

TEST_CASE("pyramid scales per MODELS.md") {
    // 624 px short side, min face 20: 0.6, 0.6 * 0.709, ... while 624 * s >= 12.
    const auto scales_of = [](int height, int width, double min_face, double factor) {
        std::vector<double> scales{42.0}; // replaced, not appended to
        mtcnn::pyramid_scales(height, width, min_face, factor, scales);
        return scales;
    };
    const auto scales = scales_of(624, 1024, 20, 0.709);
    REQUIRE(scales.size() == 11);
    CHECK(scales[0] == 0.6);
    CHECK(scales[1] == 0.6 * 0.709);
    CHECK(624 * scales.back() >= 12);
    CHECK(624 * scales.back() * 0.709 < 12);
    CHECK(mtcnn::level_size(624, 0.6) == 375); // int(624 * 0.6 + 1)
    CHECK(scales_of(11, 500, 12, 0.709).empty());
    CHECK(scales_of(12, 12, 12, 0.709).size() == 1);
    CHECK(scales_of(100, 19, 20, 0.709).empty()); // shorter than the minimum face
    // A factor near 1 would make millions of levels: refused past 100. Upstream's factor on the
    // largest image with the smallest min_face makes 29.
    CHECK(scales_of(16384, 16384, 1, 0.709).size() == 29);
    CHECK(scales_of(640, 480, 20, 0.96).size() == 78); // 480 / 20 * 0.96^77 = 1.03 >= 1
    CHECK_THROWS_AS(scales_of(640, 480, 20, 0.97), Error); // 105 levels
    CHECK_THROWS_WITH_AS(scales_of(640, 480, 20, 0.999999),
                         "MTCNN factor 0.999999 with min_face 20.000000 makes more than 100 pyramid levels on a 480x640 image "
                         "(upstream's factor is 0.709)", Error);
    // min_face below a pixel (1e-300 made the first level's size an out-of-range double -> int cast).
    MtcnnOptions tiny_face;
    tiny_face.min_face = 1e-300;
    CHECK_THROWS_WITH_AS(check_options(tiny_face), doctest::Contains("MTCNN min_face must be a number of pixels, at least 1"), Error);
}

TEST_CASE("MTCNN on images smaller than the window or the minimum face: no faces, no error") {
    Mtcnn detector(load_model());
    for (auto [w, h] : {std::pair<int, int>{1, 1}, {11, 11}, {11, 400}, {400, 11}, {19, 300}}) {
        CAPTURE(w); CAPTURE(h);
        std::vector<Face> faces;
        CHECK_NOTHROW(faces = detector.detect(pattern(w, h)));
        CHECK(faces.empty());
    }
    // The smallest image that has a pyramid level runs the whole cascade.
    detector.options().min_face = 12;
    CHECK_NOTHROW(detector.detect(pattern(12, 12)));
}

TEST_CASE("mtcnn box arithmetic: regression with and without +1 sizes, squaring, softmax") {
    // 20 x 40 box; P-Net measures it as is, R-Net and O-Net as 21 x 41.
    const std::array<float, 4> box{10, 20, 30, 60}, offsets{0.1f, 0.2f, -0.1f, 0.5f};
    const auto p = mtcnn::regress_box(box, offsets, 0.0f);
    CHECK(p[0] == doctest::Approx(12)); CHECK(p[1] == doctest::Approx(28));
    CHECK(p[2] == doctest::Approx(28)); CHECK(p[3] == doctest::Approx(80));
    const auto r = mtcnn::regress_box(box, offsets, 1.0f);
    CHECK(r[0] == doctest::Approx(12.1)); CHECK(r[1] == doctest::Approx(28.2));
    CHECK(r[2] == doctest::Approx(27.9)); CHECK(r[3] == doctest::Approx(80.5));
    // Square of side max(w, h) = 40 about the centre (20, 40).
    CHECK(mtcnn::square_box(box) == std::array<float, 4>{0, 20, 40, 60});
    const float logits[2] = {0.5f, 2.0f};
    CHECK(mtcnn::face_probability(logits) == doctest::Approx(1.0 / (1.0 + std::exp(-1.5))));
}

TEST_CASE("mtcnn::crop_rect: the padding rule clamps boxes to the image and truncates to integers") {
    // Inside: truncated; rows y1 - 1 .. y2 - 1 and columns x1 - 1 .. x2 - 1.
    mtcnn::CropRect r = mtcnn::crop_rect({10.7f, 20.2f, 30.9f, 40.5f}, 100, 80);
    CHECK(r.x == 9); CHECK(r.y == 19); CHECK(r.w == 21); CHECK(r.h == 21);
    // Past the top-left corner: x1, y1 clamp to 1 (truncation is toward zero: -10.7 -> -10).
    r = mtcnn::crop_rect({-10.7f, -0.5f, 30.0f, 50.0f}, 100, 80);
    CHECK(r.x == 0); CHECK(r.y == 0); CHECK(r.w == 30); CHECK(r.h == 50);
    // Past the bottom-right corner: x2, y2 clamp to the image size.
    r = mtcnn::crop_rect({90.0f, 70.0f, 130.0f, 110.0f}, 100, 80);
    CHECK(r.x == 89); CHECK(r.y == 69); CHECK(r.w == 11); CHECK(r.h == 11);
    CHECK(!r.empty());
    // Entirely outside: empty.
    CHECK(mtcnn::crop_rect({-40.0f, 10.0f, 0.5f, 20.0f}, 100, 80).empty());
    CHECK(mtcnn::crop_rect({120.0f, 10.0f, 150.0f, 20.0f}, 100, 80).empty());
}

TEST_CASE("a face cut by the image border is cropped with the padding rule, not skipped") {
    // multiface.jpg's face at (554, 45)-(633, 158), in a cut of the image whose top-left corner is
    // just inside the face's box: the face touches the left and top borders, and the square boxes
    // R-Net passes to O-Net reach past them, so O-Net's crops are clamped there.
    const Image full = load_image(test::shared_path("upstream/images/multiface.jpg"));
    const int x0 = 556, y0 = 48;
    const Image cut = sub_image(full, x0, y0, 150, 140);
    const std::array<float, 4> expected{554.0f - x0, 45.5f - y0, 632.8f - x0, 158.1f - y0};
    for (const KernelSet* ks : test::all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        Mtcnn detector(load_model(), *ks);
        std::vector<Face> proposed, onet_input;
        detector.pnet_stage(cut, proposed);
        detector.rnet_stage(cut, proposed, onet_input);
        CHECK(std::any_of(onet_input.begin(), onet_input.end(), [](const Face& f) { return f.box[0] < 0 && f.box[1] < 0; }));
        const auto faces = detector.detect(cut);
        REQUIRE(faces.size() == 1);
        const Face& f = faces[0];
        CAPTURE(f.box[0]); CAPTURE(f.box[1]); CAPTURE(f.box[2]); CAPTURE(f.box[3]);
        CHECK(f.score > 0.9f);
        // The clamped crop is the part of the square inside the image, stretched to 48 x 48 (no
        // zero padding, as upstream), so O-Net sees the face distorted: the box is close, not exact.
        CHECK(box_iou(f.box, expected) > 0.7f);
        CHECK((f.box[0] < 0 && f.box[1] < 0));
    }
}

TEST_CASE("MTCNN: 1 and 2 threads give identical faces; clones share the weights") {
    const Image image = load_image(test::shared_path("golden/crowd_640x480.png"));
    Mtcnn one(load_model());
    Mtcnn two = one.clone();
    two.options().threads = 2;
    const auto a = one.detect(image), b = two.detect(image);
    REQUIRE(a.size() == b.size());
    CHECK(!a.empty());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].box == b[i].box);
        CHECK(a[i].score == b[i].score);
        CHECK(a[i].landmarks == b[i].landmarks);
    }
}

TEST_CASE("MTCNN options out of range are refused by name") {
    Mtcnn detector(load_model());
    const Image img = pattern(64, 64);
    detector.options().min_face = 0;
    CHECK_THROWS_WITH_AS(detector.detect(img), doctest::Contains("min_face must be a number of pixels, at least 1"), Error);
    detector.options() = detector.options();
    detector.options().min_face = 20;
    detector.options().factor = 1.0;
    CHECK_THROWS_WITH_AS(detector.detect(img), doctest::Contains("factor must be in (0, 1)"), Error);
    detector.options().factor = 0.709;
    detector.options().thresholds[1] = 1.5f;
    CHECK_THROWS_WITH_AS(detector.detect(img), doctest::Contains("threshold 2 must be in [0, 1]"), Error);
    detector.options().thresholds[1] = 0.7f;
    // A small min_face upscales the image, here (12x) past facet's size limits.
    detector.options().min_face = 1;
    CHECK_THROWS_WITH_AS(detector.detect(pattern(2000, 1500)), doctest::Contains("MTCNN pyramid (min_face"), Error);
}

TEST_CASE("a RetinaFace weight file is refused by the MTCNN loader") {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    REQUIRE(std::ifstream(path).good());
    CHECK_THROWS_WITH_AS(MtcnnModel::from_file(path), doctest::Contains("is a 'retinaface' model, expected a 'mtcnn' model"), Error);
}
