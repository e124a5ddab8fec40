// Face verification sanity (README, "Face verification"): facet::FaceRecognizer on RetinaFace's
// faces of the shared portraits. Same-person pairs made from one photo (horizontal flip, the face's
// box and points moved by 5% of its size or scaled by 5%, JPEG re-encoded at quality 50, halved)
// must lie below face-api's 0.6; the three people against each other and against every face of
// selfie_group.jpg above it. Prints the matrix the README reports.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "bad_inputs.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

Image mirrored(const Image& image) {
    Image out(image.width, image.height);
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) std::copy_n(image.pixel(image.width - 1 - x, y), 3, out.pixel(x, y));
    return out;
}

#ifdef FACET_WITH_LIBJPEG
// Re-encoded by libjpeg (stb_image_write's JPEG encoder shifts negative values left: undefined
// behaviour that the sanitizer build stops on).
Image jpeg_reencoded(const Image& image, int quality) {
    const std::vector<std::uint8_t> bytes = test::jpeg(image.width, image.height, 3, false, image.rgb, quality);
    return decode_image(bytes.data(), bytes.size(), "re-encoded JPEG");
}
#endif

Image halved(const Image& image) {
    const ImageF small = resize_area(to_float(image), image.width / 2, image.height / 2);
    Image out(small.width, small.height);
    for (std::size_t i = 0; i < small.data.size(); ++i) out.rgb[i] = static_cast<std::uint8_t>(std::lround(std::clamp(small.data[i], 0.0f, 255.0f)));
    return out;
}

// The face moved by (dx, dy) times its box's size and scaled by `scale` about the box's centre.
Face jittered(Face face, float dx, float dy, float scale) {
    const float w = face.box[2] - face.box[0], h = face.box[3] - face.box[1];
    const float cx = (face.box[0] + face.box[2]) / 2, cy = (face.box[1] + face.box[3]) / 2;
    const auto move = [&](float& x, float& y) {
        x = cx + (x - cx) * scale + dx * w;
        y = cy + (y - cy) * scale + dy * h;
    };
    move(face.box[0], face.box[1]);
    move(face.box[2], face.box[3]);
    for (auto& p : face.landmarks) move(p[0], p[1]);
    return face;
}

} // namespace

TEST_CASE("face verification: same-person pairs from one photo below 0.6, different people above") {
    const std::string detector_path = test::weights_path("retinaface_mnet025_official.facet");
    const std::string recognizer_path = test::weights_path("face_recognition.facet");
    if (!std::ifstream(detector_path).good() || !std::ifstream(recognizer_path).good()) {
        MESSAGE("skipped: " << detector_path << " or " << recognizer_path << " is missing (./setup.sh makes them)");
        return;
    }
    RetinaFace detector(detector_path);
    FaceRecognizer recognizer(recognizer_path);
    const auto best = [&](const Image& image) {
        const std::vector<Face> faces = detector.detect(image);
        REQUIRE(!faces.empty());
        return recognizer.embed(image, faces.front());
    };
    const std::vector<std::string> people = {"angelina_jolie", "kate_siegel", "paul_rudd"};
    std::vector<FaceDescriptor> originals;
    for (const std::string& person : people) {
        const Image image = load_image(test::shared_path("upstream/images/portrait_" + person + ".jpg"));
        const Face face = detector.detect(image).front();
        const FaceDescriptor original = recognizer.embed(image, face);
        originals.push_back(original);
        std::vector<std::pair<std::string, float>> pairs = {{"flip", FaceRecognizer::distance(original, best(mirrored(image)))}};
        for (const auto& [name, dx, dy, scale] : {std::tuple<const char*, float, float, float>{"shift +5%", 0.05f, 0.05f, 1.0f},
                                                  {"shift -5%", -0.05f, -0.05f, 1.0f}, {"scale 1.05", 0.0f, 0.0f, 1.05f},
                                                  {"scale 0.95", 0.0f, 0.0f, 0.95f}})
            pairs.emplace_back(name, FaceRecognizer::distance(original, recognizer.embed(image, jittered(face, dx, dy, scale))));
#ifdef FACET_WITH_LIBJPEG
        pairs.emplace_back("JPEG q50", FaceRecognizer::distance(original, best(jpeg_reencoded(image, 50))));
#endif
        pairs.emplace_back("0.5x", FaceRecognizer::distance(original, best(halved(image))));
        for (const auto& [name, distance] : pairs) {
            MESSAGE(person << " vs " << name << ": " << distance);
            CAPTURE(person); CAPTURE(name);
            CHECK(distance < kSamePersonDistance);
        }
    }
    const Image group = load_image(test::shared_path("upstream/images/selfie_group.jpg"));
    std::vector<FaceDescriptor> group_faces;
    for (const Face& face : detector.detect(group)) group_faces.push_back(recognizer.embed(group, face));
    REQUIRE(group_faces.size() >= 10);
    for (std::size_t a = 0; a < people.size(); ++a) {
        for (std::size_t b = a + 1; b < people.size(); ++b) {
            const float distance = FaceRecognizer::distance(originals[a], originals[b]);
            MESSAGE(people[a] << " vs " << people[b] << ": " << distance);
            CHECK(distance > kSamePersonDistance);
        }
        float nearest = 1e9f;
        for (const FaceDescriptor& d : group_faces) nearest = std::min(nearest, FaceRecognizer::distance(originals[a], d));
        MESSAGE(people[a] << " vs the nearest of selfie_group's " << group_faces.size() << " faces: " << nearest);
        CAPTURE(people[a]);
        CHECK(nearest > kSamePersonDistance);
    }
}
