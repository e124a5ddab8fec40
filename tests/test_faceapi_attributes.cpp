// face-api's FaceExpressionNet and AgeGenderNet (converters/tfjs2facet.py --net face_expression /
// age_gender) against face-api itself: the outputs tests/faceapi/make_reference.mjs had the package
// compute in node on its bundled TensorFlow.js CPU backend, on every instruction set, for the 112x112
// crops of tests/faceapi (the networks alone) and for boxes face-api cut out of one of them itself
// (the crop: clipping, flooring, padding to a square, bilinear resize).
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/io/json.hpp>
#include <facet/models/attributes.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "faceapi_reference.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

// The largest differences from face-api over a case list: expression and gender probabilities
// (absolute), age (relative); and whether every gender label agreed.
struct Differences {
    double probability = 0, age = 0;
    bool labels_agree = true;

    void add(const json::Value& expected, const std::vector<float>& expression, const AgeGenderEstimate& age_gender) {
        const std::vector<json::Value>& probabilities = expected["expression"].array();
        REQUIRE(probabilities.size() == expression.size());
        for (std::size_t i = 0; i < expression.size(); ++i)
            probability = std::max(probability, std::fabs(expression[i] - probabilities[i].number()));
        probability = std::max(probability, std::fabs(age_gender.gender_probability - expected["gender_probability"].number()));
        age = std::max(age, std::fabs(age_gender.age - expected["age"].number()) / std::fabs(expected["age"].number()));
        labels_agree = labels_agree && age_gender.gender == expected["gender"].string();
    }
    void check(const char* isa, const char* what) const {
        MESSAGE(std::string(isa) << ", " << std::string(what) << ": largest probability difference from face-api " << probability
                    << ", age relative " << age);
        CAPTURE(std::string(isa));
        CHECK(probability < 1e-4);
        CHECK(age < 1e-4);
        CHECK(labels_agree);
    }
};

} // namespace

TEST_CASE("face-api attributes: expression, age and gender within 1e-4 of face-api, on every instruction set") {
    const std::string expression_path = test::faceapi_model_path("face_expression.facet"), age_gender_path = test::faceapi_model_path("age_gender.facet");
    if (expression_path.empty() || age_gender_path.empty()) return;
    const json::Value reference = test::load_source_json("tests/faceapi/reference.json");
    REQUIRE(reference["crops"].array().size() >= 5);
    REQUIRE(reference["face_crops"].array().size() >= 3);
    for (const KernelSet* ks : test::all_kernel_sets()) {
        FaceExpression expression(expression_path, *ks);
        AgeGender age_gender(age_gender_path, *ks);
        std::vector<std::string> labels;
        for (const json::Value& l : reference["expression_labels"].array()) labels.push_back(l.string());
        CHECK(expression.labels() == labels);
        Differences networks;
        for (const json::Value& crop : reference["crops"].array()) {
            const Image image = load_image(test::source_path("tests/faceapi/" + crop["image"].string()));
            networks.add(crop, expression.probabilities_of_crop(image), age_gender.estimate_of_crop(image));
        }
        networks.check(ks->isa, "112 px crops");
        Differences cut;
        for (const json::Value& crop : reference["face_crops"].array()) {
            const Image image = load_image(test::source_path("tests/faceapi/" + crop["image"].string()));
            const std::vector<json::Value>& b = crop["box"].array(); // x, y, width, height
            const std::array<float, 4> box{static_cast<float>(b[0].number()), static_cast<float>(b[1].number()),
                                           static_cast<float>(b[0].number() + b[2].number()),
                                           static_cast<float>(b[1].number() + b[3].number())};
            cut.add(crop, expression.probabilities(image, box), age_gender.estimate(image, box));
        }
        cut.check(ks->isa, "boxes face-api cut");
    }
}

TEST_CASE("face-api's crop rule: clipped and floored box, a hand-computed case") {
    // A box reaching past the left and top borders: x, y clipped to 0, the width and height cut at
    // the border and each floored (face-api's Box.clipAtImageBorders then floor()).
    const FaceApiBox b = faceapi_clip_box(-7.3, 20.5, 120.2, 70.9, 112, 112);
    CHECK(b.x == 0);
    CHECK(b.y == 20);
    CHECK(b.width == 112);  // min(-7.3 + 120.2 - 0, 112 - 0) = 112
    CHECK(b.height == 70);  // min(20.5 + 70.9 - 20.5, 112 - 20.5) = 70.9
    CHECK_THROWS_WITH_AS(faceapi_clip_box(200, 10, 50, 50, 112, 112), doctest::Contains("leaves less than a pixel"), Error);
}

TEST_CASE("face attribute models: the wrong model is refused by name") {
    const std::string landmarks = test::weights_path("face_landmark_68.facet");
    if (!std::ifstream(landmarks).good()) return;
    CHECK_THROWS_WITH_AS(FaceExpression{landmarks}, doctest::Contains("not a face attribute model"), Error);
    const std::string expression_path = test::faceapi_model_path("face_expression.facet");
    if (expression_path.empty()) return;
    CHECK_THROWS_WITH_AS(AgeGender{expression_path}, doctest::Contains("no 'attributes.age': not face-api's age_gender model"), Error);
    const std::string age_gender_path = test::faceapi_model_path("age_gender.facet");
    if (age_gender_path.empty()) return;
    CHECK_THROWS_WITH_AS(FaceExpression{age_gender_path}, doctest::Contains("no 'attributes.expression'"), Error);
    CHECK_THROWS_WITH_AS(FaceExpression{test::weights_path("retinaface_mnet025_official.facet")},
                         doctest::Contains("expected a 'graph' model"), Error);
}
