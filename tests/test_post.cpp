// Post-processing: NMS conventions, box decoding, alignment, JSON output.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace facet;

namespace {

Face face(float x1, float y1, float x2, float y2, float score) {
    Face f;
    f.box = {x1, y1, x2, y2};
    f.score = score;
    return f;
}

} // namespace

TEST_CASE("overlap: +1 pixel convention, plain IoU and intersection over the smaller area") {
    const std::array<float, 4> a{0, 0, 9, 9}, b{5, 0, 14, 9};
    // +1: both 10x10 = 100, intersection 5x10 = 50 -> 50 / 150.
    CHECK(box_overlap(a, b, {1.0f, false}) == doctest::Approx(1.0 / 3.0));
    // plain: 9x9 = 81 each, intersection 4x9 = 36 -> 36 / 126.
    CHECK(box_overlap(a, b, {0.0f, false}) == doctest::Approx(36.0 / 126.0));
    // over min: a box inside another overlaps it fully.
    CHECK(box_overlap({0, 0, 10, 10}, {2, 2, 4, 4}, {0.0f, true}) == doctest::Approx(1.0));
    CHECK(box_overlap({0, 0, 1, 1}, {5, 5, 6, 6}, {0.0f, false}) == 0.0f);
}

TEST_CASE("NMS keeps the best of each cluster, in score order, up to max_keep") {
    std::vector<Face> faces{face(0, 0, 9, 9, 0.8f), face(1, 0, 10, 9, 0.9f), face(50, 50, 60, 60, 0.7f), face(100, 0, 110, 9, 0.95f)};
    auto kept = nms(faces, 0.4f, {1.0f, false}, 10);
    REQUIRE(kept.size() == 3);
    CHECK(kept[0].score == 0.95f);
    CHECK(kept[1].score == 0.9f);
    CHECK(kept[2].score == 0.7f);
    CHECK(nms(faces, 0.4f, {1.0f, false}, 2).size() == 2);
    // Overlap exactly at the threshold is kept (upstream suppresses only ovr > thresh).
    std::vector<Face> pair{face(0, 0, 9, 9, 0.9f), face(5, 0, 14, 9, 0.8f)};
    CHECK(nms(pair, 1.0f / 3.0f + 1e-6f, {1.0f, false}, 10).size() == 2);
    CHECK(nms(pair, 0.3f, {1.0f, false}, 10).size() == 1);
}

TEST_CASE("NMS over many boxes decides as box_overlap pair by pair does, on both rules, call after call") {
    // The kept boxes are tested in vectorised blocks of 16 (KeptBoxes); the reference is the plain
    // greedy loop over box_overlap (nms_sorted_reference). Boxes cluster on a few centres so that
    // hundreds are suppressed and dozens kept (several blocks, a partly filled last one); a smaller
    // call after a larger one checks that the previous call's kept boxes are not seen again.
    std::uint32_t state = 12345;
    auto next = [&](float range) {
        state = state * 1664525u + 1013904223u;
        return static_cast<float>(state >> 8) / 16777216.0f * range;
    };
    KeptBoxes boxes; // one for every call, as a detector keeps it
    for (int n : {700, 40, 3}) {
        std::vector<Face> faces;
        for (int i = 0; i < n; ++i) {
            const float cx = std::floor(next(8.0f)) * 80.0f + next(30.0f), cy = std::floor(next(6.0f)) * 80.0f + next(30.0f);
            const float side = 8.0f + next(40.0f);
            faces.push_back(face(cx, cy, cx + side, cy + side * (0.8f + next(0.4f)), 1.0f - static_cast<float>(i) / n));
        }
        for (NmsRule rule : {NmsRule{1.0f, false}, NmsRule{0.0f, false}, NmsRule{1.0f, true}})
            for (float threshold : {0.3f, 0.5f, 0.7f}) {
                CAPTURE(n);
                CAPTURE(rule.pixel_offset);
                CAPTURE(rule.over_min_area);
                CAPTURE(threshold);
                const std::vector<Face> expected = nms_sorted_reference(faces, threshold, rule);
                std::vector<Face> kept = faces;
                nms_sorted_in_place(kept, threshold, rule, faces.size(), boxes);
                REQUIRE(kept.size() == expected.size());
                for (std::size_t i = 0; i < kept.size(); ++i) CHECK(kept[i].box == expected[i].box);
                if (n == 700) CHECK(kept.size() > 20);
            }
    }
}

TEST_CASE("sort_descending_stable orders as std::stable_sort does, ties in input order, reusing its scratch") {
    // Scores from a handful of values, so most compare equal: the order of ties is what is tested.
    // The items remember their input position; std::stable_sort is the independent reference.
    struct Item {
        float score;
        int position;
    };
    SortScratch<Item> scratch;
    for (int n : {0, 1, 2, 7, 100, 1000}) {
        CAPTURE(n);
        std::vector<Item> items;
        for (int i = 0; i < n; ++i) items.push_back({static_cast<float>((i * 7919) % 5) * 0.25f, i});
        std::vector<Item> expected = items;
        std::stable_sort(expected.begin(), expected.end(), [](const Item& a, const Item& b) { return a.score > b.score; });
        sort_descending_stable(items, [](const Item& item) { return item.score; }, scratch);
        REQUIRE(items.size() == expected.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            CAPTURE(i);
            CHECK(items[i].score == expected[i].score);
            CHECK(items[i].position == expected[i].position);
        }
    }
}

TEST_CASE("box and landmark decoding per MODELS.md") {
    const Prior p{0.5f, 0.25f, 0.1f, 0.2f};
    const float zero[4] = {0, 0, 0, 0};
    auto b = decode_box(p, zero, 0.1f, 0.2f);
    CHECK(b[0] == doctest::Approx(0.45));
    CHECK(b[3] == doctest::Approx(0.35));
    const float d[4] = {1.0f, -1.0f, std::log(2.0f) / 0.2f, 0.0f};
    b = decode_box(p, d, 0.1f, 0.2f);
    // cx = 0.5 + 0.1 * 0.1 = 0.51, w = 0.2; cy = 0.25 - 0.1 * 0.2 = 0.23, h = 0.2.
    CHECK(b[0] == doctest::Approx(0.41));
    CHECK(b[2] == doctest::Approx(0.61));
    CHECK(b[1] == doctest::Approx(0.13));
    const float l[10] = {0, 0, 0, 0, 1, 2, 0, 0, 0, 0};
    const auto nose = decode_landmark(p, l, 2, 0.1f);
    CHECK(nose[0] == doctest::Approx(0.51));
    CHECK(nose[1] == doctest::Approx(0.29));
}

TEST_CASE("alignment recovers a known similarity transform and warps onto the template") {
    // Landmarks = template rotated by 30 degrees, scaled by 2 and shifted: the estimate must invert it.
    const auto& tpl = alignment_template_112();
    const double angle = 30.0 * M_PI / 180.0, s = 2.0, tx = 40.0, ty = -7.0;
    Face f;
    for (int i = 0; i < 5; ++i) {
        const double x = tpl[i][0], y = tpl[i][1];
        f.landmarks[i] = {static_cast<float>(s * (std::cos(angle) * x - std::sin(angle) * y) + tx),
                          static_cast<float>(s * (std::sin(angle) * x + std::cos(angle) * y) + ty)};
    }
    const auto m = similarity_transform(f.landmarks, tpl);
    for (int i = 0; i < 5; ++i) {
        const double x = m(0, 0) * f.landmarks[i][0] + m(0, 1) * f.landmarks[i][1] + m(0, 2);
        const double y = m(1, 0) * f.landmarks[i][0] + m(1, 1) * f.landmarks[i][1] + m(1, 2);
        CHECK(x == doctest::Approx(tpl[i][0]).epsilon(1e-4));
        CHECK(y == doctest::Approx(tpl[i][1]).epsilon(1e-4));
    }
    CHECK(std::hypot(m(0, 0), m(1, 0)) == doctest::Approx(0.5)); // scale 1 / s
    // The warp samples the source where T^-1 sends each output pixel: paint the source's left-eye
    // spot and find it at the template's left eye in the crop.
    Image src(300, 300);
    const int ex = static_cast<int>(std::lround(f.landmarks[0][0])), ey = static_cast<int>(std::lround(f.landmarks[0][1]));
    for (int y = ey - 3; y <= ey + 3; ++y)
        for (int x = ex - 3; x <= ex + 3; ++x) src.pixel(x, y)[0] = 255;
    const Image crop = align_face(src, f);
    CHECK(crop.width == 112);
    CHECK(crop.pixel(38, 52)[0] > 200);
    CHECK(crop.pixel(73, 52)[0] == 0);
}

TEST_CASE("faces JSON follows the golden schema and parses back") {
    Face f = face(1.5f, 2, 30, 40.25f, 0.987654f);
    f.landmarks[4] = {7.125f, 8};
    const std::string text = faces_to_json("a \"b\".jpg", 640, 480, {f});
    const json::Value v = json::parse(text);
    CHECK(v["image"].string() == "a \"b\".jpg");
    CHECK(v["width"].number() == 640);
    CHECK(v["faces"][0]["box"][3].number() == doctest::Approx(40.25));
    CHECK(v["faces"][0]["score"].number() == doctest::Approx(0.98765));
    CHECK(v["faces"][0]["landmarks"][4][0].number() == doctest::Approx(7.125));
    CHECK(json::parse(faces_to_json("x", 1, 1, {}))["faces"].array().empty());
    CHECK_FALSE(v.has("precision"));
    FaceDetails details;
    details.precision = "bf16";
    CHECK(json::parse(faces_to_json("x", 1, 1, {}, "\n", details))["precision"].string() == "bf16");
}

TEST_CASE("faces JSON: attributes as age, gender {label, probability} and expression {label: probability}") {
    FaceAttributes both;
    both.has_age_gender = true;
    both.age = 31.456f;
    both.gender = "female";
    both.gender_probability = 0.876543f;
    both.expression = {{"neutral", 0.25f}, {"happy", 0.75f}};
    FaceAttributes expression_only;
    expression_only.expression = {{"sad", 1.0f}};
    FaceDetails details;
    details.attributes = {both, expression_only};
    const json::Value v = json::parse(faces_to_json("a.jpg", 8, 8, {face(1, 2, 3, 4, 0.9f), face(1, 2, 3, 4, 0.8f)}, "\n", details));
    const json::Value& first = v["faces"][0];
    CHECK(first["age"].number() == doctest::Approx(31.46));
    CHECK(first["gender"]["label"].string() == "female");
    CHECK(first["gender"]["probability"].number() == doctest::Approx(0.87654));
    CHECK(first["expression"]["neutral"].number() == doctest::Approx(0.25));
    CHECK(first["expression"]["happy"].number() == doctest::Approx(0.75));
    CHECK_FALSE(v["faces"][1].has("age"));
    CHECK_FALSE(v["faces"][1].has("gender"));
    CHECK(v["faces"][1]["expression"]["sad"].number() == 1);
    details.attributes[0].expression[1].second = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(faces_to_json("nan.jpg", 8, 8, {face(1, 2, 3, 4, 0.9f)}, "\n", details),
                         doctest::Contains("nan.jpg: the attribute models gave face 0 numbers that are not finite"), Error);
}

TEST_CASE("faces JSON: names that are not UTF-8 are escaped, non-finite numbers refused") {
    // Well-formed UTF-8 (2, 3 and 4 bytes) passes as it is; a stray byte, an overlong form, a
    // UTF-16 surrogate and a sequence cut short each become \udcXX (Python's surrogateescape).
    const auto image_field = [](const std::string& name) {
        const std::string text = faces_to_json(name, 1, 1, {});
        return text.substr(10, text.find(", \"width\"") - 10);
    };
    CHECK(image_field("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.jpg") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.jpg\"");
    CHECK(image_field("a\xff.jpg") == "\"a\\udcff.jpg\"");
    CHECK(image_field("\xc0\xaf") == "\"\\udcc0\\udcaf\"");          // overlong '/'
    CHECK(image_field("\xed\xa0\x80") == "\"\\udced\\udca0\\udc80\""); // surrogate U+D800
    CHECK(image_field("\xe2\x82") == "\"\\udce2\\udc82\"");          // cut short
    CHECK(image_field("tab\there\x01") == "\"tab\\there\\u0001\"");
    // JSON has no infinity: a face with one is refused, naming the image.
    Face f = face(1, 2, 3, 4, 0.9f);
    f.box[2] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(faces_to_json("inf.jpg", 8, 8, {f}), doctest::Contains("inf.jpg: the model gave face 0 numbers that are not finite"),
                         Error);
    f = face(1, 2, 3, 4, std::numeric_limits<float>::quiet_NaN());
    CHECK_THROWS_AS(faces_to_json("nan.jpg", 8, 8, {f}), Error);
    std::string out;
    CHECK_THROWS_AS(json::write_number(out, -std::numeric_limits<double>::infinity()), Error);
}
