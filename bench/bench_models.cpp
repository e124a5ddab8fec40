// Whole-model benchmarks: RetinaFace-mnet0.25 on one 640x480 frame, per instruction set.
//
//   BM_RetinaFace_VGA/<isa>                    detect(): preprocess + network + decode + NMS
//   BM_RetinaFace_VGA_Bf16/<isa>               the same with the bf16 weight file (its layers on the
//                                              bf16 kernels where the set has them, else widened)
//   BM_RetinaFace_VGA_Int8/<isa>               the same with the int8 file (facet-quantize; its FLOPS
//                                              count the same arithmetic)
//   BM_RetinaFace_VGA_Network/<isa>            forward_raw(): the network, see bm_network
//   BM_RetinaFace_VGA/<best isa>/kernel_threads:2   detect() with the kernels on two threads (also
//                                                   _Int8 and _Bf16: each file's own kernels)
//   BM_RetinaFace_720p/<best isa>/kernel_threads:N  detect() on the frame scaled to 1280x720, 1 and 2
//                                                   threads: how the kernels scale on a larger map
//   .../kernel_threads:N/neighbour             the same while another process keeps one core busy
//                                              (noisy_neighbour.hpp), best isa, 1 and 2 threads
//                                              (VGA from all three files, 720p fp32)
//   BM_Throughput_Images/<best isa>/threads:N[/neighbour]
//                                              detect_files() over every image of
//                                              shared/upstream/images (decode + detect at the
//                                              default max_side 640), N images at a time, each on
//                                              its own clone: images/s
//
// Inputs: the golden frame shared/golden/crowd_640x480.png (FACET_SHARED overrides the shared
// directory) and weights/retinaface_mnet025_official.facet, or its _bf16 twin (FACET_WEIGHTS_DIR
// overrides the weights directory). When either is missing every case reports an error saying how to make it.
//
// Times are wall-clock (UseRealTime): a frame's latency is what a caller waits, and the default
// CPU time would count only the calling thread of the two-thread case. FLOPS is the network's
// arithmetic (2 x multiply-accumulates, counted from the loaded model's layers) per second, so the
// cases compare directly with the kernel benchmarks; faces is what detect() found.
#include <benchmark/benchmark.h>
#include <facet/io/image.hpp>
#include <facet/models/batch.hpp>
#include <facet/models/retinaface.hpp>

#include "noisy_neighbour.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

namespace {

using namespace facet;

constexpr int kFrameWidth = 640, kFrameHeight = 480;
constexpr const char* kModelFile = "retinaface_mnet025_official.facet";
constexpr const char* kBf16ModelFile = "retinaface_mnet025_official_bf16.facet"; // converters/quantize_bf16.py
constexpr const char* kInt8ModelFile = "retinaface_mnet025_official_int8.facet"; // facet-quantize
constexpr const char* kFrameFile = "golden/crowd_640x480.png";

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : fallback;
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

// Multiply-accumulates of one forward pass on an h x w input, walking the loaded model's layers in
// the order, and at the sizes, RetinaFace::run_network runs them. FPN additions are not counted.
double network_macs(const RetinaFaceModel& m, int h, int w) {
    double macs = 0;
    // Counts `c` on an h x w input and moves h, w to its output size.
    const auto dense = [&macs](int k, int stride, int cin, int cout, int& h, int& w) {
        h = conv_out_size(h, k, stride);
        w = conv_out_size(w, k, stride);
        macs += static_cast<double>(h) * w * cout * cin * k * k;
    };
    const auto layer = [&dense](const ConvLayer& c, int& h, int& w) { dense(c.k(), c.stride(), c.cin(), c.cout(), h, w); };
    dense(m.stem.k, m.stem.stride, m.stem.cin, m.stem.cout, h, w);
    int level_h[RetinaFaceModel::kLevels], level_w[RetinaFaceModel::kLevels];
    for (int b = 0, level = 0; b < static_cast<int>(m.blocks.size()); ++b) {
        const auto& block = m.blocks[b];
        h = conv_out_size(h, 3, block.dw.stride());
        w = conv_out_size(w, 3, block.dw.stride());
        macs += static_cast<double>(h) * w * block.dw.c() * 9;
        layer(block.pw, h, w);
        if (level < RetinaFaceModel::kLevels && b == m.stage_end[level]) {
            level_h[level] = h;
            level_w[level++] = w;
        }
    }
    // Everything after the backbone keeps its level's size.
    for (int k = 0; k < RetinaFaceModel::kLevels; ++k) {
        const auto at_level = [&](const ConvLayer& c) {
            int lh = level_h[k], lw = level_w[k];
            layer(c, lh, lw);
        };
        at_level(m.fpn_output[k]);
        if (k < RetinaFaceModel::kLevels - 1) at_level(m.fpn_merge[k]);
        const auto& ctx = m.context[k];
        for (const ConvLayer* c : {&ctx.conv3x3, &ctx.conv5x5_1, &ctx.conv5x5_2, &ctx.conv7x7_2, &ctx.conv7x7_3})
            at_level(*c);
        int lh = level_h[k], lw = level_w[k];
        dense(m.heads[k].k, m.heads[k].stride, m.heads[k].cin, m.heads[k].cout, lh, lw);
    }
    return macs;
}

// What every case needs, loaded once on first use (not at registration, so listing the benchmarks
// stays instant), or why it could not be.
struct VgaInputs {
    std::shared_ptr<const RetinaFaceModel> model;
    Image frame;
    std::string error; // non-empty: the cases skip with this message
};

VgaInputs load_vga_inputs(const char* model_file) {
    VgaInputs in;
    const std::string model_path = env_or("FACET_WEIGHTS_DIR", FACET_SOURCE_DIR "/weights") + "/" + model_file;
    const std::string frame_path = env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/" + kFrameFile;
    if (!file_exists(model_path)) {
        in.error = model_path + " not found: run ./setup.sh to convert the weights (or set FACET_WEIGHTS_DIR)";
        return in;
    }
    if (!file_exists(frame_path)) {
        in.error = frame_path + " not found: run ./setup.sh (or set FACET_SHARED to the shared data directory)";
        return in;
    }
    try {
        in.model = RetinaFaceModel::from_file(model_path);
        in.frame = load_image(frame_path);
        if (in.frame.width != kFrameWidth || in.frame.height != kFrameHeight)
            throw Error(frame_path + " is " + std::to_string(in.frame.width) + "x" + std::to_string(in.frame.height) +
                        ", not the 640x480 these benchmarks are named for");
    } catch (const std::exception& e) {
        in.model.reset();
        in.error = e.what();
    }
    return in;
}

enum class Weights { fp32, bf16, int8 };

const VgaInputs& vga_inputs(Weights weights = Weights::fp32) {
    if (weights == Weights::bf16) {
        static const VgaInputs bf16 = load_vga_inputs(kBf16ModelFile);
        return bf16;
    }
    if (weights == Weights::int8) {
        static const VgaInputs int8 = load_vga_inputs(kInt8ModelFile);
        return int8;
    }
    static const VgaInputs fp32 = load_vga_inputs(kModelFile);
    return fp32;
}

// A detector for the frame on `kernels`, or nothing after SkipWithError.
std::optional<RetinaFace> make_detector(benchmark::State& state, const KernelSet& kernels, int threads,
                                        Weights weights = Weights::fp32) {
    const VgaInputs& in = vga_inputs(weights);
    if (!in.error.empty()) {
        state.SkipWithError(in.error.c_str());
        return std::nullopt;
    }
    RetinaFaceOptions options;
    options.max_side = 0; // the frame is already VGA: no resize
    options.score_threshold = 0.5f;
    options.threads = threads;
    return RetinaFace(in.model, options, kernels);
}

using Rate = benchmark::Counter;

// FLOPS: the network's arithmetic on `frame`, per second.
void set_flops(benchmark::State& state, const Image& frame) {
    state.counters["FLOPS"] = Rate(2 * network_macs(*vga_inputs().model, frame.height, frame.width), Rate::kIsIterationInvariantRate,
                                   Rate::kIs1000);
}

// The frame scaled to 1280x720 by nearest neighbour: the content only has to hold faces; what the
// case measures is the network on a 720p map.
Image frame_720p(const Image& vga) {
    Image out(1280, 720);
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x)
            std::copy_n(vga.pixel(x * vga.width / out.width, y * vga.height / out.height), 3, out.pixel(x, y));
    return out;
}

// End to end on the VGA frame, or on it scaled to 720p. The untimed first call sizes the
// detector's scratch buffers and builds the priors, which later frames of the same size reuse.
void bm_detect(benchmark::State& state, const KernelSet* kernels, int threads, bool at_720p, bool neighbour,
               Weights weights) {
    auto detector = make_detector(state, *kernels, threads, weights);
    if (!detector) return;
    std::optional<bench::NoisyNeighbour> busy;
    if (neighbour) busy.emplace();
    const Image frame = at_720p ? frame_720p(vga_inputs().frame) : vga_inputs().frame;
    std::size_t faces = detector->detect(frame).size();
    for (auto _ : state) faces = detector->detect(frame).size();
    state.counters["faces"] = static_cast<double>(faces);
    set_flops(state, frame);
}

// The network alone, as closely as the public API allows: forward_raw() also converts the 8-bit
// frame to floats before the network and, after it, copies every prior's outputs into
// three vectors (with a sigmoid per prior). That work is small next to the convolutions, but it is
// in this time; the difference to BM_RetinaFace_VGA is decode + NMS minus that copy.
void bm_network(benchmark::State& state, const KernelSet* kernels) {
    auto detector = make_detector(state, *kernels, 1);
    if (!detector) return;
    const Image& frame = vga_inputs().frame;
    benchmark::DoNotOptimize(detector->forward_raw(frame));
    for (auto _ : state) benchmark::DoNotOptimize(detector->forward_raw(frame));
    set_flops(state, frame);
}

// Throughput mode: the shared images, `threads` at a time, as facet-detect IMAGES... --threads N runs
// them. Each iteration clones the detectors anew, as a facet-detect run does.
void bm_throughput(benchmark::State& state, const KernelSet* kernels, int threads, bool neighbour) {
    const VgaInputs& in = vga_inputs();
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    const std::string dir = env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/upstream/images";
    std::vector<std::string> paths;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) paths.push_back(entry.path().string());
    if (paths.empty()) return state.SkipWithError((dir + ": no images (run ./setup.sh or set FACET_SHARED)").c_str());
    std::sort(paths.begin(), paths.end());
    const RetinaFace detector(in.model, RetinaFaceOptions{}, *kernels);
    std::optional<bench::NoisyNeighbour> busy;
    if (neighbour) busy.emplace();
    std::size_t faces = 0;
    for (auto _ : state) {
        faces = 0;
        for (const auto& r : detect_files(detector, paths, threads)) {
            if (!r.ok()) return state.SkipWithError(r.error.c_str());
            faces += r.value.faces.size();
        }
    }
    state.counters["images"] = Rate(static_cast<double>(paths.size()), Rate::kIsIterationInvariantRate);
    state.counters["faces"] = static_cast<double>(faces);
}

template <class... Args>
void register_case(const std::string& name, Args&&... args) {
    benchmark::RegisterBenchmark(name.c_str(), std::forward<Args>(args)...)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}

// benchmark_main has its own main(), so registration happens during static initialisation.
const bool kRegistered = [] {
    const auto isas = supported_isas();
    for (Isa isa : isas) {
        const KernelSet* kernels = &kernel_set(isa);
        register_case(std::string("BM_RetinaFace_VGA/") + kernels->isa, bm_detect, kernels, 1, false, false, Weights::fp32);
        register_case(std::string("BM_RetinaFace_VGA_Bf16/") + kernels->isa, bm_detect, kernels, 1, false, false, Weights::bf16);
        register_case(std::string("BM_RetinaFace_VGA_Int8/") + kernels->isa, bm_detect, kernels, 1, false, false, Weights::int8);
        register_case(std::string("BM_RetinaFace_VGA_Network/") + kernels->isa, bm_network, kernels);
    }
    if (!isas.empty()) {
        const KernelSet* best = &kernel_set(isas.back());
        // 1 and 2 threads, idle and beside the neighbour: VGA from each file (its 1-thread idle case
        // is the per-isa one above), 720p from the fp32 file.
        struct Threaded {
            const char* stem;
            bool at_720p;
            Weights weights;
        };
        for (const Threaded& c : {Threaded{"BM_RetinaFace_VGA", false, Weights::fp32},
                                  Threaded{"BM_RetinaFace_VGA_Int8", false, Weights::int8},
                                  Threaded{"BM_RetinaFace_VGA_Bf16", false, Weights::bf16},
                                  Threaded{"BM_RetinaFace_720p", true, Weights::fp32}})
            for (bool neighbour : {false, true})
                for (int threads : {1, 2})
                    if (neighbour || threads == 2 || c.at_720p)
                        register_case(std::string(c.stem) + "/" + best->isa + "/kernel_threads:" + std::to_string(threads) +
                                          (neighbour ? "/neighbour" : ""),
                                      bm_detect, best, threads, c.at_720p, neighbour, c.weights);
        for (bool neighbour : {false, true})
            for (int threads : {1, 2})
                register_case(std::string("BM_Throughput_Images/") + best->isa + "/threads:" + std::to_string(threads) +
                                  (neighbour ? "/neighbour" : ""),
                              bm_throughput, best, threads, neighbour);
    }
    return true;
}();

} // namespace
