// MTCNN benchmarks: the kernels it adds, at the shapes the cascade runs them, and the whole cascade
// on one 640x480 frame, per instruction set.
//
//   maxpool2x2_s2/<isa>/<c>x<h>x<w>, maxpool3x3_s2/<isa>/...   one pooling call (bytes); `_int8`
//                                      after the kernel's name: the same on a uint8 map
//   conv3x3_s1/<isa>/<cin>x<h>x<w>-><cout>, conv2x2_s1/...     one unpadded conv with PReLU, as the
//                                      cascade runs it (FLOPS); `_int8` after the kernel's name:
//                                      the int8 kernel, uint8 maps in and out, PReLU requantised
//                                      (OPS, integer operations counted as FLOPS are)
//   dense/<isa>/<items>x<in_h>x<in_w>x<cin>-><cout>            one dense layer over a batch (FLOPS)
//   area_rows/<isa>/<w>x<h>-><out_w>x<out_h>                   a region's area resampling to the
//                                      net input, every row (bytes: the two table rows over the
//                                      region and the values written); `_int8`: to bytes
//   BM_MTCNN_VGA/<isa>                 the cascade on shared/golden/crowd_640x480.png, 1 thread
//   BM_MTCNN_VGA_Int8/<isa>            the same with weights/mtcnn_int8.facet (setup.sh's int8 file)
//   BM_MTCNN_VGA/<best isa>/threads:2  the same with pyramid levels and crops on two threads
//   BM_MTCNN_VGA/<best isa>/threads:N/neighbour   1 and 2 threads while another process keeps
//                                      one core busy (noisy_neighbour.hpp)
//
// The cascade cases time the three stages detect() runs (detect() adds only a sort of the faces by
// size), each on its own clock, and report each stage's share of the frame: pnet_share (pyramid
// resampling, P-Net on every level, NMS), rnet_share (24x24 crops, R-Net, NMS), onet_share (48x48
// crops, O-Net, landmarks, NMS). pnet_boxes and rnet_boxes are how many candidates P-Net and R-Net
// pass on (the crops the next stage runs), faces what O-Net keeps.
//
// Inputs: weights/mtcnn.facet and mtcnn_int8.facet (FACET_WEIGHTS_DIR overrides the directory) and the golden frame
// (FACET_SHARED overrides the shared directory); when either is missing the cascade cases report
// an error saying how to make it, and the kernel cases still run. Times are wall-clock
// (UseRealTime), as in bench_models.cpp.
#include <benchmark/benchmark.h>
#include <facet/io/image.hpp>
#include <facet/kernels/maxpool_size.hpp>
#include <facet/models/mtcnn.hpp>

#include "bench_inputs.hpp"
#include "noisy_neighbour.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace facet;

using Rate = benchmark::Counter;

// Batches of the dense cases: the candidates R-Net and O-Net get on the VGA frame (pnet_boxes and
// rnet_boxes of BM_MTCNN_VGA).
constexpr int kRnetCrops = 793, kOnetCrops = 176;

using facet::bench::fill_random;
using facet::bench::fill_random_bytes;
using facet::bench::kInt8Activation;
using facet::bench::random_int8;

template <class... Args>
benchmark::internal::Benchmark* register_case(const std::string& name, Args&&... args) {
    return benchmark::RegisterBenchmark(name.c_str(), std::forward<Args>(args)...)->UseRealTime();
}

// bytes: the input and output maps the call reads and writes, padded channel lanes included.
void bm_maxpool(benchmark::State& state, const KernelSet* kernels, int k, int c, int h, int w, bool int8) {
    const int oh = maxpool_out_size(h, k, 2), ow = maxpool_out_size(w, k, 2);
    std::size_t lane_bytes = sizeof(float);
    int cstride = 0;
    if (int8) {
        QuantizedBuffer in, out;
        in.resize(h, w, c, kInt8Activation);
        out.resize(oh, ow, c, in.map().q);
        fill_random_bytes(in.map(), 1);
        const MaxPoolInt8Kernel pool = k == 2 ? kernels->maxpool2x2_s2_int8 : kernels->maxpool3x3_s2_int8;
        for (auto _ : state) {
            pool(in.map(), out.map(), 1);
            benchmark::ClobberMemory();
        }
        lane_bytes = 1;
        cstride = in.map().cstride;
    } else {
        FeatureBuffer in(h, w, c), out(oh, ow, c);
        fill_random(in.map(), 1);
        const MaxPoolKernel pool = k == 2 ? kernels->maxpool2x2_s2 : kernels->maxpool3x3_s2;
        for (auto _ : state) {
            pool(in.map(), out.map(), 1);
            benchmark::ClobberMemory();
        }
        cstride = in.map().cstride;
    }
    const double bytes = (static_cast<double>(h) * w + static_cast<double>(oh) * ow) * cstride * lane_bytes;
    state.counters["bytes"] = Rate(bytes, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

// An unpadded k x k conv (k = 2 or 3) with PReLU on a cin x h x w map, float or int8, as
// LayerRunner runs it unpadded: a 3x3 is the padded kernel on the map's interior. FLOPS / OPS: 2 x the
// multiply-accumulates of the real output channels.
void bm_conv_prelu(benchmark::State& state, const KernelSet* kernels, int k, int cin, int h, int w, int cout, bool int8) {
    const int oh = h - k + 1, ow = w - k + 1, inset = (k - 1) / 2;
    const std::vector<float> bias(static_cast<std::size_t>(cout), 0.1f), slopes(static_cast<std::size_t>(cout), 0.25f);
    const Epilogue prelu{Activation::prelu, 0.0f, slopes.data()};
    if (int8) {
        QuantizedBuffer in, out;
        in.resize(h, w, cin, kInt8Activation);
        out.resize(oh, ow, cout, kInt8Activation);
        fill_random_bytes(in.map(), 1);
        const std::vector<std::int8_t> weights = random_int8(static_cast<std::size_t>(cout) * cin * k * k, 2);
        const std::vector<float> weight_scale(static_cast<std::size_t>(cout), 0.01f);
        PackedConvInt8 packed = pack_conv_int8({weights.data(), weight_scale.data(), bias.data(), kInt8Activation, prelu}, cout, cin, k, 1,
                                               "benchmark conv");
        set_output(packed, true, kInt8Activation);
        const ConvInt8Kernel kernel = kernels->conv_int8_for(packed);
        const QuantizedMap interior = in.map().pixels(inset, inset, h - 2 * inset, w - 2 * inset);
        for (auto _ : state) {
            kernel(interior, packed, {&out.map(), nullptr}, 1);
            benchmark::ClobberMemory();
        }
    } else {
        // A first conv reads Mtcnn::set_input's packed map (three floats a pixel), which the
        // Winograd kernel hands to the direct one; other convs read padded channel vectors.
        FeatureBuffer in, out(oh, ow, cout);
        in.resize(h, w, cin, cin == 3 ? 1 : kChannelAlign);
        fill_random(in.map(), 1);
        const std::vector<float> weights(static_cast<std::size_t>(cout) * cin * k * k, 0.01f);
        PackedConv packed = pack_conv(weights.data(), bias.data(), cout, cin, k, 1, prelu);
        if (packed.winograd) pack_winograd(packed, winograd_tile_for(oh, ow)); // as MtcnnModel picks it
        for (auto _ : state) {
            kernels->conv_for(packed)(in.map().pixels(inset, inset, h - 2 * inset, w - 2 * inset), packed, out.map(), 1);
            benchmark::ClobberMemory();
        }
    }
    state.counters[int8 ? "OPS" : "FLOPS"] =
        Rate(2.0 * oh * ow * cout * cin * k * k, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

// FLOPS: 2 x the multiply-accumulates of the real (unpadded) output channels.
void bm_dense(benchmark::State& state, const KernelSet* kernels, int items, int in_h, int in_w, int cin, int cout) {
    FeatureBuffer in(items * in_h, in_w, cin), out(items, 1, cout);
    fill_random(in.map(), 2);
    std::vector<float> weights(static_cast<std::size_t>(cout) * in_h * in_w * cin, 0.01f), bias(cout, 0.1f);
    const PackedDense packed = pack_dense(weights.data(), bias.data(), cout, in_h, in_w, cin, Epilogue{});
    for (auto _ : state) {
        kernels->dense(in.map(), packed, out.map(), 1);
        benchmark::ClobberMemory();
    }
    const double flops = 2.0 * items * in_h * in_w * cin * cout;
    state.counters["FLOPS"] = Rate(flops, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

// A w x h region of a random image resampled as MTCNN's set_input does, row by row.
void bm_area_rows(benchmark::State& state, const KernelSet* kernels, int w, int h, int out_w, int out_h, bool int8) {
    Image image(w, h);
    std::mt19937 rng(1);
    for (std::uint8_t& v : image.rgb) v = static_cast<std::uint8_t>(rng() % 256);
    SummedAreaTable table;
    table.build(image);
    std::vector<AreaSpan> xs, ys;
    area_spans(w, out_w, xs);
    area_spans(h, out_h, ys);
    AreaRowPlan plan;
    plan_area_row(xs, {2, 1, 0}, {127.5f, 127.5f, 127.5f}, {0.0078125f, 0.0078125f, 0.0078125f}, plan);
    std::vector<float> floats(static_cast<std::size_t>(plan.padded()));
    std::vector<std::uint8_t> row_bytes(floats.size());
    std::vector<std::uint32_t> columns(static_cast<std::size_t>(plan.entries));
    for (auto _ : state) {
        for (const AreaSpan& y : ys) {
            const std::uint32_t *top = table.at(0, y.begin), *bottom = table.at(0, y.end);
            const float rows = static_cast<float>(y.end - y.begin);
            if (int8) kernels->area_row_int8(top, bottom, rows, plan, columns.data(), kInt8Activation, row_bytes.data());
            else kernels->area_row(top, bottom, rows, plan, columns.data(), floats.data());
        }
        benchmark::ClobberMemory();
    }
    // Per row: the two table rows over the region and each value written.
    const double bytes = (2.0 * sizeof(std::uint32_t) * plan.entries + (int8 ? 1.0 : sizeof(float)) * plan.values) * out_h;
    state.counters["bytes"] = Rate(bytes, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

// Greedy NMS (post/nms.hpp) on `count` candidates as P-Net leaves them on a pyramid level: boxes of
// 12-60 px spread over a VGA frame, a few overlapping, so most are kept and each candidate is tested
// against hundreds of kept boxes. "pairs": the candidate-kept pairs the greedy rule examines (up to
// the first overlap that suppresses), counted once by nms_sorted_reference.
void bm_nms(benchmark::State& state, int count, bool over_min_area) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> x(0.0f, 600.0f), y(0.0f, 440.0f), side(12.0f, 60.0f);
    std::vector<Face> candidates(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        const float x1 = x(rng), y1 = y(rng), s = side(rng);
        candidates[i].box = {x1, y1, x1 + s, y1 + s};
        candidates[i].score = 1.0f - static_cast<float>(i) / count;
    }
    const NmsRule rule{1.0f, over_min_area};
    const float threshold = 0.5f;
    double pairs = 0;
    const std::vector<Face> kept = nms_sorted_reference(candidates, threshold, rule, &pairs);
    KeptBoxes boxes;
    std::vector<Face> work;
    for (auto _ : state) {
        work = candidates;
        nms_sorted_in_place(work, threshold, rule, work.size(), boxes);
        benchmark::DoNotOptimize(work.data());
    }
    if (work.size() != kept.size()) state.SkipWithError("the NMS kept another number of boxes than nms_sorted_reference");
    state.counters["kept"] = static_cast<double>(kept.size());
    state.counters["pairs"] = Rate(pairs, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : fallback;
}

// The model and the frame, loaded on first use (listing the benchmarks stays instant), or why not.
struct CascadeInputs {
    std::shared_ptr<const MtcnnModel> model;
    Image frame;
    std::string error; // non-empty: the cascade cases skip with this message
};

CascadeInputs load_cascade_inputs(const std::string& weights) {
    CascadeInputs in;
    const std::string model_path = env_or("FACET_WEIGHTS_DIR", FACET_SOURCE_DIR "/weights") + "/" + weights;
    const std::string frame_path = env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/golden/crowd_640x480.png";
    if (!std::ifstream(model_path).good()) {
        in.error = model_path + " not found: run ./setup.sh to convert the weights (or set FACET_WEIGHTS_DIR)";
        return in;
    }
    if (!std::ifstream(frame_path).good()) {
        in.error = frame_path + " not found: run ./setup.sh (or set FACET_SHARED to the shared data directory)";
        return in;
    }
    try {
        in.model = MtcnnModel::from_file(model_path);
        in.frame = load_image(frame_path);
    } catch (const std::exception& e) {
        in.model.reset();
        in.error = e.what();
    }
    return in;
}

const CascadeInputs& cascade_inputs(bool int8) {
    static const CascadeInputs fp32_inputs = load_cascade_inputs("mtcnn.facet");
    if (!int8) return fp32_inputs;
    static const CascadeInputs int8_inputs = load_cascade_inputs("mtcnn_int8.facet");
    return int8_inputs;
}

// The untimed first call sizes the detector's scratch maps, which later frames reuse.
void bm_cascade(benchmark::State& state, const KernelSet* kernels, int threads, bool neighbour, bool int8) {
    const CascadeInputs& in = cascade_inputs(int8);
    if (!in.error.empty()) {
        state.SkipWithError(in.error.c_str());
        return;
    }
    MtcnnOptions options = in.model->defaults();
    options.threads = threads;
    Mtcnn detector(in.model, options, *kernels);
    std::optional<bench::NoisyNeighbour> busy;
    if (neighbour) busy.emplace();
    benchmark::DoNotOptimize(detector.detect(in.frame));

    using Clock = std::chrono::steady_clock;
    double seconds[3] = {0, 0, 0};
    std::vector<Face> proposed, refined, found;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        detector.pnet_stage(in.frame, proposed);
        const auto t1 = Clock::now();
        detector.rnet_stage(in.frame, proposed, refined);
        const auto t2 = Clock::now();
        detector.onet_stage(in.frame, refined, found);
        const auto t3 = Clock::now();
        seconds[0] += std::chrono::duration<double>(t1 - t0).count();
        seconds[1] += std::chrono::duration<double>(t2 - t1).count();
        seconds[2] += std::chrono::duration<double>(t3 - t2).count();
    }
    const double total = seconds[0] + seconds[1] + seconds[2];
    state.counters["pnet_share"] = seconds[0] / total;
    state.counters["rnet_share"] = seconds[1] / total;
    state.counters["onet_share"] = seconds[2] / total;
    state.counters["pnet_boxes"] = static_cast<double>(proposed.size());
    state.counters["rnet_boxes"] = static_cast<double>(refined.size());
    state.counters["faces"] = static_cast<double>(found.size());
}

// "<channels>x<height>x<width>", as bench_kernels.cpp names maps.
std::string map_name(int c, int h, int w) { return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w); }

// benchmark_main has its own main(), so registration happens during static initialisation.
const bool kRegistered = [] {
    struct Pool { int k, c, h, w; };
    // P-Net's pool on the VGA frame's first pyramid level (385x289 -> conv -> 383x287), R-Net's
    // two, O-Net's three.
    const Pool pools[] = {{2, 10, 287, 383}, {3, 28, 22, 22}, {3, 48, 9, 9}, {3, 32, 46, 46}, {3, 64, 21, 21}, {2, 64, 8, 8}};
    struct Conv { int k, cin, h, w, cout; };
    // P-Net's three on the VGA frame's first pyramid level (385x289), R-Net's three, O-Net's four.
    const Conv convs[] = {{3, 3, 289, 385, 10}, {3, 10, 144, 192, 16}, {3, 16, 142, 190, 32},
                          {3, 3, 24, 24, 28},   {3, 28, 11, 11, 48},   {2, 48, 4, 4, 64},
                          {3, 3, 48, 48, 32},   {3, 32, 23, 23, 64},   {3, 64, 10, 10, 64}, {2, 64, 4, 4, 128}};
    struct Dense { int items, in_h, in_w, cin, cout; };
    // R-Net's hidden layer and heads, O-Net's.
    const Dense denses[] = {{kRnetCrops, 3, 3, 64, 128}, {kRnetCrops, 1, 1, 128, 6}, {kOnetCrops, 3, 3, 128, 256}, {kOnetCrops, 1, 1, 256, 16}};
    struct Area { int w, h, out_w, out_h; };
    // The VGA frame to P-Net's first pyramid level; a face-sized crop to R-Net's and O-Net's input.
    const Area areas[] = {{640, 480, 385, 289}, {61, 61, 24, 24}, {97, 97, 48, 48}};
    const auto isas = supported_isas();
    for (Isa isa : isas) {
        const KernelSet* kernels = &kernel_set(isa);
        const std::string suffix = std::string("/") + kernels->isa + "/";
        for (const Pool& p : pools)
            for (bool int8 : {false, true})
                register_case((p.k == 2 ? "maxpool2x2_s2" : "maxpool3x3_s2") + std::string(int8 ? "_int8" : "") + suffix +
                                  map_name(p.c, p.h, p.w),
                              bm_maxpool, kernels, p.k, p.c, p.h, p.w, int8);
        for (const Conv& c : convs)
            for (bool int8 : {false, true})
                register_case((c.k == 2 ? "conv2x2_s1" : "conv3x3_s1") + std::string(int8 ? "_int8" : "") + suffix +
                                  map_name(c.cin, c.h, c.w) + "->" + std::to_string(c.cout),
                              bm_conv_prelu, kernels, c.k, c.cin, c.h, c.w, c.cout, int8);
        for (const Dense& d : denses)
            register_case("dense" + suffix + std::to_string(d.items) + "x" + std::to_string(d.in_h) + "x" +
                              std::to_string(d.in_w) + "x" + std::to_string(d.cin) + "->" + std::to_string(d.cout),
                          bm_dense, kernels, d.items, d.in_h, d.in_w, d.cin, d.cout);
        for (const Area& a : areas)
            for (bool int8 : {false, true})
                register_case(std::string(int8 ? "area_rows_int8" : "area_rows") + suffix + std::to_string(a.w) + "x" + std::to_string(a.h) +
                                  "->" + std::to_string(a.out_w) + "x" + std::to_string(a.out_h),
                              bm_area_rows, kernels, a.w, a.h, a.out_w, a.out_h, int8);
        register_case(std::string("BM_MTCNN_VGA/") + kernels->isa, bm_cascade, kernels, 1, false, false)->Unit(benchmark::kMillisecond);
        register_case(std::string("BM_MTCNN_VGA_Int8/") + kernels->isa, bm_cascade, kernels, 1, false, true)
            ->Unit(benchmark::kMillisecond);
    }
    // NMS is compiled once, in the models' baseline code (no kernel set).
    for (bool over_min_area : {false, true})
        register_case(std::string("nms/") + (over_min_area ? "min_area" : "union") + "/2000", bm_nms, 2000, over_min_area);
    if (!isas.empty()) {
        const KernelSet* best = &kernel_set(isas.back());
        register_case(std::string("BM_MTCNN_VGA/") + best->isa + "/threads:2", bm_cascade, best, 2, false, false)
            ->Unit(benchmark::kMillisecond);
        for (int threads : {1, 2})
            register_case(std::string("BM_MTCNN_VGA/") + best->isa + "/threads:" + std::to_string(threads) + "/neighbour",
                          bm_cascade, best, threads, true, false)
                ->Unit(benchmark::kMillisecond);
    }
    return true;
}();

} // namespace
