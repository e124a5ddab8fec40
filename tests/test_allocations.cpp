// The per-frame path allocates nothing once warm: global operator new is counted here.
#include <doctest/doctest.h>
#include <facet/facet.hpp>
#include <facet/io/y4m.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "test_util.hpp"

namespace {
std::atomic<long> g_allocations{0};
std::atomic<std::size_t> g_largest_allocation{0}; // since a test last reset it

void note_allocation(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    std::size_t largest = g_largest_allocation.load(std::memory_order_relaxed);
    while (size > largest && !g_largest_allocation.compare_exchange_weak(largest, size, std::memory_order_relaxed)) {}
}
} // namespace

// Replacing the global allocation functions counts every new in the program (this test binary).
// They pair malloc with free, which GCC cannot see through the replacement and warns about.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
    note_allocation(size);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them, then frees it with the
// sized delete above): AddressSanitizer brings its own nothrow new, whose memory free() must not
// release (alloc-dealloc-mismatch).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    note_allocation(size);
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

// Runs `detector` (RetinaFace or Mtcnn) on `frame` twice to warm it up (buffers, priors or the
// pyramid, per-thread scratch, the result's capacity), then checks a third call allocates nothing.
template <class Detector>
void check_warm_detect_allocates_nothing(Detector& detector, const facet::Image& frame) {
    std::vector<facet::Face> faces;
    detector.detect(frame, faces);
    detector.detect(frame, faces);
    const long before = g_allocations.load();
    detector.detect(frame, faces);
    CHECK(g_allocations.load() - before == 0);
    CHECK(faces.size() > 10);
}

// The fp32, int8 and bf16 files (setup.sh makes all three), on every instruction set: the int8
// file's float-to-uint8 maps and the bf16 kernels' paths are the other files' own.
TEST_CASE("RetinaFace::detect allocates nothing per frame once warm (fp32, int8, bf16; 1 and 2 threads)") {
    using namespace facet;
    const Image frame = load_image(test::shared_path("golden/crowd_640x480.png"));
    for (const char* file : {"retinaface_mnet025_official.facet", "retinaface_mnet025_official_int8.facet",
                             "retinaface_mnet025_official_bf16.facet"}) {
        const auto model = test::load_retinaface_model(file);
        for (const KernelSet* kernels : test::all_kernel_sets()) {
            RetinaFace detector(model, {}, *kernels);
            for (int threads : {1, 2}) {
                CAPTURE(std::string(file));
                CAPTURE(std::string(kernels->isa));
                CAPTURE(threads);
                detector.options().threads = threads;
                check_warm_detect_allocates_nothing(detector, frame);
            }
        }
    }
}

TEST_CASE("Mtcnn::detect allocates nothing per frame once warm (fp32 and int8, 1 and 2 threads)") {
    using namespace facet;
    const Image frame = load_image(test::shared_path("golden/crowd_640x480.png"));
    for (const char* file : {"mtcnn.facet", "mtcnn_int8.facet"}) {
        CAPTURE(std::string(file));
        Mtcnn detector(test::required_weights_path(file));
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            detector.options().threads = threads;
            check_warm_detect_allocates_nothing(detector, frame);
        }
    }
}

TEST_CASE("GraphExecutor::run allocates nothing once warm (PFLD-GhostOne fp32 and int8, 1 and 2 threads)") {
    using namespace facet;
    for (const char* file : {"pfld_ghostone.facet", "pfld_ghostone_int8.facet"}) {
        const auto model = GraphModel::from_file(test::weights_path(file));
        for (int threads : {1, 2}) {
            CAPTURE(file);
            CAPTURE(threads);
            GraphExecutor net(model, default_kernel_set(), threads);
            const std::size_t scratch = net.scratch_floats(); // the slots, aligned_alloc'd when the executor is made
            net.run(); // warm-up: the Winograd kernel's per-thread scratch
            const long before = g_allocations.load();
            net.run();
            CHECK(g_allocations.load() - before == 0);
            CHECK(net.scratch_floats() == scratch);
        }
    }
}

TEST_CASE("Y4mReader: a header and a FRAME marker alone do not allocate the frame they announce") {
    // 10000 x 10000 in 4:4:4 announces 300 MB a frame; 1000 bytes arrive.
    std::string stream = "YUV4MPEG2 W10000 H10000 C444\nFRAME\n" + std::string(1000, '\x80');
    std::FILE* f = fmemopen(stream.data(), stream.size(), "rb");
    REQUIRE(f != nullptr);
    g_largest_allocation = 0;
    facet::Image frame;
    facet::Y4mReader reader(f, "big.y4m");
    CHECK_THROWS_WITH_AS(reader.read(frame), "big.y4m: truncated frame", facet::Error);
    std::fclose(f);
    CHECK(g_largest_allocation.load() <= (std::size_t(2) << 20)); // one chunk (1 MiB), grown at most once
}
