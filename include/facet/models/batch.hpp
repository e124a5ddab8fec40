// facet: throughput mode, many images on several threads, one image per thread at a time.
//
// Splitting one frame over two threads gains only what each layer's loop can share, and every
// layer ends waiting for its last chunk; giving each thread its own images shares nothing but the
// weights, so it scales with the cores. Each thread needs its own detector (clone(): its scratch).
#pragma once
#include <new>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../io/image.hpp"
#include "../post/face.hpp"

namespace facet {

// One item's outcome in a batch: its value, or the message of the error it met.
template <class T>
struct BatchResult {
    T value{};
    std::string error; // empty on success
    bool ok() const { return error.empty(); }
};

// process(states[k], i) for every i in [0, count), on states.size() threads at once, thread k
// working with states[k] (a detector clone, say). Results are in input order. A facet::Error or
// std::bad_alloc thrown for one item becomes that item's error ("out of memory" for the latter)
// and the other items still run; any other exception (a bug) reaches the caller.
template <class State, class Process>
auto run_batch(std::vector<State>& states, int count, Process&& process) {
    using T = decltype(process(states.front(), 0));
    std::vector<BatchResult<T>> results(static_cast<std::size_t>(count));
    parallel_for_workers(0, count, static_cast<int>(states.size()), [&](int i, int worker) {
        BatchResult<T>& r = results[static_cast<std::size_t>(i)];
        try {
            r.value = process(states[static_cast<std::size_t>(worker)], i);
        } catch (const Error& e) {
            r.error = e.what();
        } catch (const std::bad_alloc&) {
            r.error = "out of memory";
        }
    });
    return results;
}

// The faces of one image file, with its size (the JSON of io/faces_json.hpp wants both).
struct ImageFaces {
    int width = 0, height = 0;
    std::vector<Face> faces;
};

// Faces in each file of `paths` (load_image, then detect), `threads` files at a time, each on its
// own clone of `detector` (a RetinaFace or an Mtcnn) running one thread inside.
template <class Detector>
std::vector<BatchResult<ImageFaces>> detect_files(const Detector& detector, const std::vector<std::string>& paths, int threads) {
    if (threads < 1) throw Error("detect_files: threads must be at least 1, got " + std::to_string(threads));
    std::vector<Detector> clones;
    for (int k = 0; k < threads; ++k) {
        clones.push_back(detector.clone());
        clones.back().options().threads = 1;
    }
    return run_batch(clones, static_cast<int>(paths.size()), [&](Detector& clone, int i) {
        const Image image = load_image(paths[static_cast<std::size_t>(i)]);
        return ImageFaces{image.width, image.height, clone.detect(image)};
    });
}

} // namespace facet
