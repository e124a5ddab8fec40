// Concurrency: facet's thread pool (core/parallel.hpp) runs every index once, hands exceptions
// to the caller and does not wait for a stalled worker; detectors cloned once per thread, running
// at the same time on different images, give exactly the results of serial calls; 1 or 2 threads
// inside a call give identical results; a batch of files keeps each file's result or error.
// scripts/sanitize.sh also builds this file alone (facet-concurrency-tests) and runs it under
// ThreadSanitizer.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <new>
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

// Runs `detector`'s clones in kThreads threads at once, each with `inner_threads` threads inside,
// over every image (each thread starting at a different one), and checks every result against
// `expected`.
template <class Detector>
void check_clones(const Detector& detector, int inner_threads, const std::vector<Image>& images,
                  const std::vector<std::vector<Face>>& expected) {
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            Detector mine = detector.clone(); // cloned in the thread: clone() itself runs concurrently
            mine.options().threads = inner_threads;
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

TEST_CASE("parallel_for runs every index exactly once, on any thread count") {
    for (int threads : {1, 2, 3, 8})
        for (int items : {0, 1, 2, 7, 1000}) {
            CAPTURE(threads);
            CAPTURE(items);
            std::vector<std::atomic<int>> visits(static_cast<std::size_t>(items) + 3);
            parallel_for(3, items + 3, threads, [&](int i) { ++visits[static_cast<std::size_t>(i)]; });
            for (int i = 0; i < items + 3; ++i) CHECK(visits[static_cast<std::size_t>(i)] == (i < 3 ? 0 : 1));
        }
}

TEST_CASE("parallel_for_workers: no two threads in a loop share a worker index") {
    constexpr int kLoopThreads = 3;
    std::atomic<bool> busy[kLoopThreads] = {};
    std::atomic<int> clashes{0}, out_of_range{0};
    for (int round = 0; round < 50; ++round)
        parallel_for_workers(0, 200, kLoopThreads, [&](int, int worker) {
            if (worker < 0 || worker >= kLoopThreads) return void(++out_of_range);
            if (busy[worker].exchange(true)) ++clashes;
            std::this_thread::sleep_for(std::chrono::microseconds(5));
            busy[worker] = false;
        });
    CHECK(out_of_range == 0);
    CHECK(clashes == 0);
}

TEST_CASE("an exception thrown inside a parallel loop reaches the caller as itself") {
    for (int threads : {1, 2, 4}) {
        CAPTURE(threads);
        CHECK_THROWS_WITH_AS(parallel_for(0, 100, threads, [](int i) {
                                 if (i == 57) throw Error("index 57 failed");
                             }),
                             "index 57 failed", Error);
        CHECK_THROWS_AS(parallel_for(0, 100, threads, [](int i) {
                            if (i == 3) throw std::bad_alloc();
                        }),
                        std::bad_alloc);
        // The pool works on after a failed loop.
        std::atomic<int> sum{0};
        parallel_for(0, 100, threads, [&](int i) { sum += i; });
        CHECK(sum == 4950);
    }
}

TEST_CASE("a stalled worker does not stall the loop: the caller takes every index it does not hold") {
    // The first chunk a pool worker takes sleeps 300 ms, as a worker descheduled by a busy machine
    // would; the caller (worker 0) must run all the other indices meanwhile, not wait for its share.
    // The caller holds its first index until the worker has joined (or 2 s), so that the worker
    // does take a chunk rather than find the loop already done.
    constexpr int kItems = 64;
    std::vector<int> ran_by(kItems, -1);
    std::atomic<bool> stalled{false};
    std::atomic<int> stalled_items{0};
    parallel_for_workers(0, kItems, 2, [&](int i, int worker) {
        ran_by[static_cast<std::size_t>(i)] = worker;
        if (worker == 0) {
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
            while (stalled_items == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
            return;
        }
        ++stalled_items;
        if (!stalled.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    });
    const auto by_caller = std::count(ran_by.begin(), ran_by.end(), 0);
    CAPTURE(stalled_items.load());
    // One chunk is kItems / 16 = 4 indices; the worker may have claimed one more chunk before the stall.
    CHECK(by_caller >= kItems - 4);
    CHECK(std::count(ran_by.begin(), ran_by.end(), -1) == 0);
}

TEST_CASE("detect_files: results in input order, a bad file is its own error and the others run") {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    REQUIRE(std::ifstream(path).good());
    RetinaFace detector(RetinaFaceModel::from_file(path));
    const std::vector<std::string> files = {test::shared_path("upstream/images/multiface.jpg"), "/nonexistent/x.jpg",
                                            test::shared_path("golden/crowd_640x480.png")};
    const std::vector<Face> multiface = detector.detect(load_image(files[0]));
    const std::vector<Face> crowd = detector.detect(load_image(files[2]));
    for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        const auto results = detect_files(detector, files, threads);
        REQUIRE(results.size() == 3);
        CHECK((results[0].ok() && results[0].value.width == 1200 && identical(results[0].value.faces, multiface)));
        CHECK(!results[1].ok());
        CHECK(results[1].error.find("/nonexistent/x.jpg") != std::string::npos);
        CHECK((results[2].ok() && results[2].value.width == 640 && identical(results[2].value.faces, crowd)));
    }
}

TEST_CASE("RetinaFace: clones in 4 threads give the serial results, with 1 and 2 threads inside") {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    REQUIRE(std::ifstream(path).good());
    RetinaFace detector(RetinaFaceModel::from_file(path));
    detector.options().score_threshold = 0.3f; // more candidates through decoding and NMS
    const std::vector<Image> images = test_images();
    std::vector<std::vector<Face>> serial;
    for (const Image& img : images) serial.push_back(detector.detect(img));
    CHECK(serial[0].size() > 10);
    CHECK(serial[1].size() == 6);
    // 2 threads in one call: the same faces, bit for bit.
    RetinaFace two = detector.clone();
    two.options().threads = 2;
    for (std::size_t i = 0; i < images.size(); ++i) CHECK(identical(two.detect(images[i]), serial[i]));
    for (int inner : {1, 2}) {
        CAPTURE(inner);
        check_clones(detector, inner, images, serial);
    }
}

TEST_CASE("MTCNN: clones in 4 threads give the serial results, with 1 and 2 threads inside") {
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
    for (int inner : {1, 2}) {
        CAPTURE(inner);
        check_clones(detector, inner, images, serial);
    }
}
