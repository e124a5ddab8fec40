// Concurrency: detectors cloned once per thread, running at the same time on different images,
// give exactly the results of serial calls; and 1 or 2 OpenMP threads inside a call give
// identical results. scripts/sanitize.sh also builds this file alone (facet-concurrency-tests)
// and runs it under ThreadSanitizer.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <fstream>
#include <thread>

#include "test_util.hpp"

using namespace facet;

namespace {

constexpr int kThreads = 4;

// Two golden photos and two synthetic frames of odd sizes.
std::vector<Image> test_images() {
    std::vector<Image> images = {load_image(test::shared_path("golden/crowd_640x480.png")),
                                 load_image(test::shared_path("upstream/images/multiface.jpg"))};
    for (auto size : {std::pair<int, int>{203, 157}, std::pair<int, int>{96, 331}}) {
        Image img(size.first, size.second);
        for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i * 131 % 253);
        images.push_back(std::move(img));
    }
    return images;
}

bool identical(const std::vector<Face>& a, const std::vector<Face>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].box != b[i].box || a[i].score != b[i].score || a[i].landmarks != b[i].landmarks) return false;
    return true;
}

// Runs `detector`'s clones in kThreads threads at once, each with `omp_threads` OpenMP threads,
// over every image (each thread starting at a different one), and checks every result against
// `expected`.
template <class Detector>
void check_clones(const Detector& detector, int omp_threads, const std::vector<Image>& images,
                  const std::vector<std::vector<Face>>& expected) {
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            Detector mine = detector.clone(); // cloned in the thread: clone() itself runs concurrently
            mine.options().threads = omp_threads;
            for (std::size_t k = 0; k < images.size(); ++k) {
                const std::size_t i = (k + static_cast<std::size_t>(t)) % images.size();
                if (!identical(mine.detect(images[i]), expected[i])) ++mismatches[t];
            }
        });
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
        CAPTURE(t);
        CHECK(mismatches[t] == 0);
    }
}

} // namespace

TEST_CASE("RetinaFace: clones in 4 threads give the serial results, with 1 and 2 OpenMP threads") {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    REQUIRE(std::ifstream(path).good());
    RetinaFace detector(RetinaFaceModel::from_file(path));
    detector.options().score_threshold = 0.3f; // more candidates through decoding and NMS
    const std::vector<Image> images = test_images();
    std::vector<std::vector<Face>> serial;
    for (const Image& img : images) serial.push_back(detector.detect(img));
    CHECK(serial[0].size() > 10);
    CHECK(serial[1].size() == 6);
    // 2 OpenMP threads in one call: the same faces, bit for bit.
    RetinaFace two = detector.clone();
    two.options().threads = 2;
    for (std::size_t i = 0; i < images.size(); ++i) CHECK(identical(two.detect(images[i]), serial[i]));
    for (int omp : {1, 2}) {
        CAPTURE(omp);
        check_clones(detector, omp, images, serial);
    }
}

TEST_CASE("MTCNN: clones in 4 threads give the serial results, with 1 and 2 OpenMP threads") {
    const std::string path = test::weights_path("mtcnn.facet");
    REQUIRE(std::ifstream(path).good());
    Mtcnn detector(MtcnnModel::from_file(path));
    const std::vector<Image> images = test_images();
    std::vector<std::vector<Face>> serial;
    for (const Image& img : images) serial.push_back(detector.detect(img));
    CHECK(serial[0].size() > 10);
    CHECK(serial[1].size() == 6);
    Mtcnn two = detector.clone();
    two.options().threads = 2;
    for (std::size_t i = 0; i < images.size(); ++i) CHECK(identical(two.detect(images[i]), serial[i]));
    for (int omp : {1, 2}) {
        CAPTURE(omp);
        check_clones(detector, omp, images, serial);
    }
}
