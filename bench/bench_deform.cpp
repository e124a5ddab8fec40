// Deformable convolution: what it costs next to the plain 3x3 conv it replaces, at the sizes of
// RetinaFace's three pyramid levels on a 640x480 frame (64 channels in and out at 60x80, 30x40 and
// 15x20), per instruction set; and the deformable RetinaFace's network on that frame.
//
//   deformable/deform_conv2d/<isa>/64x60x80->64        the kernel, offsets and mask given
//   deformable/modulated_layer/<isa>/64x60x80->64      the layer the model runs: the 3x3 conv that
//                                                      predicts offsets and mask, the sigmoid, the kernel
//   deformable/conv3x3_s1/<isa>/64x60x80->64           the plain conv, direct
//   deformable/conv3x3_s1_winograd/<isa>/64x60x80->64  the plain conv, Winograd (what the model runs)
//   BM_RetinaFace_DCN_VGA_Network/<isa>[/kernel_threads:2]
//                                                      forward_raw() of the deformable RetinaFace;
//                                                      compare BM_RetinaFace_VGA_Network (bench_models.cpp)
//   BM_RetinaFace_DCN_VGA_Network/<best isa>/kernel_threads:N/neighbour
//                                                      1 and 2 threads while another process keeps
//                                                      one core busy (noisy_neighbour.hpp)
//
// FLOPS is the same figure for the four kernel cases of a level, 2 x the multiply-accumulates of a
// plain 64->64 3x3 conv, so the rates compare the time to do the same convolution; the deformable
// cases do more (sampling; the layer also its offset conv). Offsets are uniform in [-3, 3] pixels
// (a few samples per row fall outside the map, as at a trained model's borders), masks in [0, 1].
// The model case needs <build>/retinaface_dcn_reference.facet, which the tests' build converts from
// tests/deform/retinaface_dcn (the PyTorch reference, random weights: its detections are
// meaningless, its time is not), and ../shared/golden/crowd_640x480.png (FACET_SHARED overrides).
#include <benchmark/benchmark.h>
#include <facet/io/image.hpp>
#include <facet/models/modulated_deform_conv.hpp>
#include <facet/models/retinaface.hpp>

#include "noisy_neighbour.hpp"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace facet;

constexpr int kChannels = 64;
constexpr int kKernelThreads = 1;

struct Level { int h, w; };
constexpr Level kLevels[] = {{60, 80}, {30, 40}, {15, 20}};

void fill_uniform(const FeatureMap& m, float lo, float hi, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int y = 0; y < m.h; ++y)
        for (int x = 0; x < m.w; ++x)
            for (int c = 0; c < m.c; ++c) m.at(y, x)[c] = dist(rng);
}

std::vector<float> uniform_floats(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

using Rate = benchmark::Counter;

enum class Case { deform_conv2d, modulated_layer, conv3x3_s1, conv3x3_s1_winograd };

const char* case_name(Case c) {
    switch (c) {
    case Case::deform_conv2d: return "deform_conv2d";
    case Case::modulated_layer: return "modulated_layer";
    case Case::conv3x3_s1: return "conv3x3_s1";
    case Case::conv3x3_s1_winograd: return "conv3x3_s1_winograd";
    }
    return "?";
}

void bm_level(benchmark::State& state, const KernelSet* ks, Case which, Level level) {
    const int h = level.h, w = level.w, taps = 9;
    FeatureBuffer in(h, w, kChannels), out(h, w, kChannels);
    fill_uniform(in.map(), -1.0f, 1.0f, 1);
    const auto weights = uniform_floats(static_cast<std::size_t>(kChannels) * kChannels * taps, 2);
    const auto bias = uniform_floats(kChannels, 3);
    const Epilogue relu{Activation::relu, 0.0f};
    PackedConv plain = pack_conv(weights.data(), bias.data(), kChannels, kChannels, 3, 1, relu);
    // The kernel case: offsets and mask in one map, as the layer leaves them.
    FeatureBuffer offsets_and_mask(h, w, ModulatedDeformConv::offset_mask_channels(taps));
    const FeatureMap offsets = offsets_and_mask.map().channels(0, 2 * taps);
    const FeatureMap mask = offsets_and_mask.map().channels(2 * taps, taps);
    fill_uniform(offsets, -3.0f, 3.0f, 4);
    fill_uniform(mask, 0.0f, 1.0f, 5);
    // The layer case: an offset conv whose outputs spread about as the offsets above: +-3 from the
    // bias, +-1 or so from the input.
    auto offset_weights = uniform_floats(static_cast<std::size_t>(offsets_and_mask.map().c) * kChannels * taps, 6);
    auto offset_bias = uniform_floats(static_cast<std::size_t>(offsets_and_mask.map().c), 7);
    for (float& v : offset_weights) v *= 0.1f;
    for (float& v : offset_bias) v *= 3.0f;
    FeatureBuffer scratch;

    switch (which) {
    case Case::deform_conv2d: {
        const PackedDeformConv deformable = as_deformable(std::move(plain));
        ks->deform_conv2d(in.map(), offsets, &mask, deformable, out.map(), kKernelThreads);
        for (auto _ : state) ks->deform_conv2d(in.map(), offsets, &mask, deformable, out.map(), kKernelThreads);
        break;
    }
    case Case::modulated_layer: {
        PackedConv offset_conv = pack_conv(offset_weights.data(), offset_bias.data(), offsets_and_mask.map().c,
                                           kChannels, 3, 1, {});
        const ModulatedDeformConv layer = make_modulated_deform_conv(std::move(offset_conv), std::move(plain));
        run_modulated_deform_conv(*ks, layer, in.map(), scratch, out.map(), kKernelThreads);
        for (auto _ : state) run_modulated_deform_conv(*ks, layer, in.map(), scratch, out.map(), kKernelThreads);
        break;
    }
    case Case::conv3x3_s1:
    case Case::conv3x3_s1_winograd: {
        const ConvKernel kernel = which == Case::conv3x3_s1 ? ks->conv3x3_s1 : ks->conv3x3_s1_winograd;
        kernel(in.map(), plain, out.map(), kKernelThreads);
        for (auto _ : state) kernel(in.map(), plain, out.map(), kKernelThreads);
        break;
    }
    }
    const double macs = static_cast<double>(h) * w * kChannels * kChannels * taps;
    state.counters["FLOPS"] = Rate(2 * macs, Rate::kIsIterationInvariantRate, Rate::kIs1000);
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : fallback;
}

void bm_dcn_network(benchmark::State& state, const KernelSet* ks, int threads, bool neighbour) {
    const std::string model_path = FACET_DCN_REFERENCE;
    const std::string frame_path = env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/golden/crowd_640x480.png";
    for (const std::string& path : {model_path, frame_path})
        if (!std::ifstream(path).good()) {
            state.SkipWithError((path + " not found (the model: build facet-dcn-reference, made with the tests)").c_str());
            return;
        }
    RetinaFaceOptions options;
    options.threads = threads;
    RetinaFace detector(RetinaFaceModel::from_file(model_path), options, *ks);
    const Image frame = load_image(frame_path);
    std::optional<bench::NoisyNeighbour> busy;
    if (neighbour) busy.emplace();
    benchmark::DoNotOptimize(detector.forward_raw(frame));
    for (auto _ : state) benchmark::DoNotOptimize(detector.forward_raw(frame));
}

// benchmark_main has its own main(), so registration happens during static initialisation.
const bool kRegistered = [] {
    const auto isas = supported_isas();
    for (Isa isa : isas) {
        const KernelSet* ks = &kernel_set(isa);
        for (const Level& level : kLevels)
            for (Case which : {Case::deform_conv2d, Case::modulated_layer, Case::conv3x3_s1, Case::conv3x3_s1_winograd}) {
                const std::string name = std::string("deformable/") + case_name(which) + "/" + ks->isa + "/" +
                                         std::to_string(kChannels) + "x" + std::to_string(level.h) + "x" +
                                         std::to_string(level.w) + "->" + std::to_string(kChannels);
                benchmark::RegisterBenchmark(name.c_str(), bm_level, ks, which, level)->Unit(benchmark::kMicrosecond);
            }
        benchmark::RegisterBenchmark((std::string("BM_RetinaFace_DCN_VGA_Network/") + ks->isa).c_str(), bm_dcn_network, ks, 1, false)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    }
    if (!isas.empty()) {
        const KernelSet* best = &kernel_set(isas.back());
        benchmark::RegisterBenchmark((std::string("BM_RetinaFace_DCN_VGA_Network/") + best->isa + "/kernel_threads:2").c_str(),
                                     bm_dcn_network, best, 2, false)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        for (int threads : {1, 2})
            benchmark::RegisterBenchmark((std::string("BM_RetinaFace_DCN_VGA_Network/") + best->isa + "/kernel_threads:" +
                                          std::to_string(threads) + "/neighbour")
                                             .c_str(),
                                         bm_dcn_network, best, threads, true)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
    }
    return true;
}();

} // namespace
