// Micro-benchmarks of every SIMD kernel, on every instruction set this CPU runs, at exactly the
// shapes RetinaFace-mnet0.25 runs them on a 640x480 frame.
//
// The shapes are not a sweep: they are the network's own kernel calls, derived below by walking
// the architecture the way RetinaFace::run_network does, with identical calls merged (and counted,
// so a kernel's share of a frame is its time x `per_frame`). Every instruction set is registered at
// start-up, so FACET_ISA plays no part here; --benchmark_filter=/avx2/ picks one.
//
// Names say what runs: `conv3x3_s1/avx512/64x60x80->64` is the KernelSet entry, the instruction
// set, the input map (channels x height x width) and the output channels;
// `upsample_nearest_add/avx2/64x15x20->30x40` adds a 15x20 map into a 30x40 one.
//
// The dense and depthwise convs are also timed in int8 (`conv1x1_int8/...`, kernels/conv_int8.hpp:
// uint8 maps in and out, leaky ReLU requantised); their counter is OPS, integer operations counted
// as FLOPS are, so the two compare. `quantize_int8/<isa>/<c>x<h>x<w>` times the int8 path's one
// other kernel, float map -> uint8 map, at the maps the int8 file quantises (see
// retinaface_mnet025_calls): its counter is bytes, as for the memory-bound kernels.
//
// Counters: FLOPS (2 x the useful multiply-accumulates, padded lanes not counted) for the convs;
// also bytes for the memory-bound depthwise and up-sampling kernels: the size of the maps they
// read and write, padded lanes included since the kernels move them, re-reads from cache not
// counted. Both are rates in powers of 1000, so the console shows e.g. FLOPS=21.3G/s;
// --benchmark_format=json gives the raw values. per_frame: see above.
#include <benchmark/benchmark.h>
#include <facet/kernels/conv_weights_bf16.hpp>
#include <facet/kernels/kernel_set.hpp>

#include "bench_inputs.hpp"

#include <iterator>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using facet::bench::fill_random;
using facet::bench::fill_random_bytes;
using facet::bench::kInt8Activation;
using facet::bench::random_int8;

using namespace facet;

// Every kernel below sees the same kernel threads count as the detector's default: one.
constexpr int kKernelThreads = 1;

// The epilogue the benchmarks use: the costlier of the two the model's weight files ask for, so
// that no number is flattered by a cheaper activation.
constexpr Epilogue kEpilogue{Activation::leaky_relu, 0.1f};

enum class Kind { dense, depthwise, upsample_add, mobilenet_stem, quantize };

// One kernel call of the network.
struct KernelCall {
    Kind kind;
    int k, stride;          // dense and depthwise only; upsample_add and quantize: 1, 1
    int cin, h, w;          // the input map (upsample_add: the coarse map)
    int cout, oh, ow;       // the output map (upsample_add: the fine map it adds into; quantize: the input's size)
    int per_frame;          // how many times one frame makes this exact call
    bool winograd = false;  // 3x3 stride 1: time the Winograd kernel instead of the direct one
    int mid = 0;            // mobilenet_stem: the conv's (and depthwise's) channels
    bool bf16 = false;      // pointwise and Winograd: time the bf16 kernel (KernelSet's bf16 block)
    bool int8 = false;      // dense and depthwise: time the int8 kernel

    bool same_shape(const KernelCall& o) const {
        return kind == o.kind && k == o.k && stride == o.stride && cin == o.cin && h == o.h && w == o.w &&
               cout == o.cout && oh == o.oh && ow == o.ow && mid == o.mid;
    }
};

// The kernel calls of a network, in the order it makes them, each distinct shape once.
class CallList {
public:
    // A conv with padding (k - 1) / 2 on a cin x h x w map; returns its output size.
    std::pair<int, int> dense(int k, int stride, int cin, int cout, int h, int w) {
        const int oh = conv_out_size(h, k, stride), ow = conv_out_size(w, k, stride);
        add({Kind::dense, k, stride, cin, h, w, cout, oh, ow, 1});
        return {oh, ow};
    }
    std::pair<int, int> depthwise(int stride, int c, int h, int w) {
        const int oh = conv_out_size(h, 3, stride), ow = conv_out_size(w, 3, stride);
        add({Kind::depthwise, 3, stride, c, h, w, c, oh, ow, 1});
        return {oh, ow};
    }
    void upsample_add(int c, int coarse_h, int coarse_w, int fine_h, int fine_w) {
        add({Kind::upsample_add, 1, 1, c, coarse_h, coarse_w, c, fine_h, fine_w, 1});
    }
    // The int8 file only: a float map quantised to uint8 for an int8 layer (RetinaFace::bytes_of).
    void quantize(int c, int h, int w) { add({Kind::quantize, 1, 1, c, h, w, c, h, w, 1}); }
    // The fused stem: 3x3 stride-2 conv cin -> mid, depthwise, pointwise mid -> cout, stride-2
    // depthwise.
    std::pair<int, int> mobilenet_stem(int cin, int mid, int cout, int h, int w) {
        const int oh = conv_out_size(conv_out_size(h, 3, 2), 3, 2), ow = conv_out_size(conv_out_size(w, 3, 2), 3, 2);
        add({Kind::mobilenet_stem, 3, 2, cin, h, w, cout, oh, ow, 1, false, mid});
        return {oh, ow};
    }

    const std::vector<KernelCall>& calls() const { return calls_; }

private:
    void add(const KernelCall& call) {
        for (KernelCall& seen : calls_)
            if (seen.same_shape(call)) {
                ++seen.per_frame;
                return;
            }
        calls_.push_back(call);
    }

    std::vector<KernelCall> calls_;
};

// The kernel calls of RetinaFace-mnet0.25 on an h x w frame. It mirrors RetinaFaceModel::load and
// RetinaFace::run_network (models/retinaface.hpp), which keep the block table to themselves.
//
// The quantize calls are the int8 file's (setup.sh's: the stem, the rest of the first backbone
// stage and the heads float, every other conv int8): an int8 layer reading a float map quantises
// it first (RetinaFace::bytes_of), once per reading layer; maps between int8 layers stay uint8
// (RetinaFaceModel::link_quantized_outputs). At VGA that is 64x60x80 three times (the first
// stage's output for the second stage and the FPN's first lateral, merge1's input), 64x30x40
// three times and 64x15x20 twice.
std::vector<KernelCall> retinaface_mnet025_calls(int h, int w) {
    constexpr int kLevels = 3, kFpnChannels = 64;
    CallList net;
    // The stem conv (3 -> 8), the first block (8 -> 16) and the second's depthwise run fused,
    // reading the frame's bytes.
    std::tie(h, w) = net.mobilenet_stem(3, 8, 16, h, w);
    net.dense(1, 1, 16, 32, h, w);

    // MobileNetV1 x0.25 after that: depthwise 3x3 (stride) then pointwise 1x1, per block. The
    // last blocks of the three stages (strides 8, 16, 32) feed the FPN.
    struct Block { int cin, cout, stride; };
    static const Block blocks[] = {
        {8, 16, 1},    {16, 32, 2},   {32, 32, 1},   {32, 64, 2},   {64, 64, 1},   // stage 1
        {64, 128, 2},  {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, // stage 2
        {128, 256, 2}, {256, 256, 1},                                               // stage 3
    };
    const int stage_end[kLevels] = {4, 10, 12};
    int level_h[kLevels], level_w[kLevels], level_c[kLevels];
    for (int b = 2, level = 0; b < static_cast<int>(std::size(blocks)); ++b) {
        std::tie(h, w) = net.depthwise(blocks[b].stride, blocks[b].cin, h, w);
        net.dense(1, 1, blocks[b].cin, blocks[b].cout, h, w);
        if (level < kLevels && b == stage_end[level]) {
            // The float first stage's output, quantised by each of its two int8 readers.
            if (level == 0)
                for (int reader = 0; reader < 2; ++reader) net.quantize(blocks[b].cout, h, w);
            level_h[level] = h;
            level_w[level] = w;
            level_c[level++] = blocks[b].cout;
        }
    }

    // FPN: lateral 1x1s, then top-down: up-sample the coarser level into the finer, 3x3 merge.
    for (int k = 0; k < kLevels; ++k) net.dense(1, 1, level_c[k], kFpnChannels, level_h[k], level_w[k]);
    for (int k = kLevels - 2; k >= 0; --k) {
        net.upsample_add(kFpnChannels, level_h[k + 1], level_w[k + 1], level_h[k], level_w[k]);
        net.quantize(kFpnChannels, level_h[k], level_w[k]); // the merge reads the float sum
        net.dense(3, 1, kFpnChannels, kFpnChannels, level_h[k], level_w[k]);
    }

    // Per level: the context module's five 3x3 convs (64->32; 64->16 then three 16->16), then the
    // three heads fused into one 1x1 (2 anchors x (2 + 4 + 10) = 32 channels).
    for (int k = 0; k < kLevels; ++k) {
        const int lh = level_h[k], lw = level_w[k];
        // Levels 1 and 2 read float maps (merge2's output and the last lateral are up-sampled
        // too), which the first two convs quantise each; level 0 reads merge1's uint8 output.
        if (k > 0)
            for (int reader = 0; reader < 2; ++reader) net.quantize(kFpnChannels, lh, lw);
        net.dense(3, 1, kFpnChannels, 32, lh, lw);
        net.dense(3, 1, kFpnChannels, 16, lh, lw);
        for (int i = 0; i < 3; ++i) net.dense(3, 1, 16, 16, lh, lw);
        net.dense(1, 1, kFpnChannels, 32, lh, lw);
    }
    return net.calls();
}

// The KernelSet entry a call runs, named as in kernel_set.hpp.
std::string kernel_name(const KernelCall& c) {
    switch (c.kind) {
    case Kind::dense:
        return (c.k == 1 ? "conv1x1" : "conv3x3_s" + std::to_string(c.stride) + (c.winograd ? "_winograd" : "")) +
               (c.bf16 ? "_bf16" : "") + (c.int8 ? "_int8" : "");
    case Kind::depthwise: return "dwconv3x3_s" + std::to_string(c.stride) + (c.int8 ? "_int8" : "");
    case Kind::upsample_add: return "upsample_nearest_add";
    case Kind::mobilenet_stem: return "mobilenet_stem";
    case Kind::quantize: return "quantize_int8";
    }
    return "?";
}

// "<kernel>/<isa>/<cin>x<h>x<w>[-><cout>]": enough to find the layer in the network.
std::string benchmark_name(const KernelCall& c, const KernelSet& ks) {
    std::string name = kernel_name(c) + "/" + ks.isa + "/" + std::to_string(c.cin) + "x" + std::to_string(c.h) + "x" +
                       std::to_string(c.w);
    switch (c.kind) {
    case Kind::dense: return name + "->" + std::to_string(c.cout);
    case Kind::depthwise:
    case Kind::quantize: return name;
    case Kind::mobilenet_stem: return name + "->" + std::to_string(c.mid) + "->" + std::to_string(c.cout) + "/s2";
    case Kind::upsample_add: return name + "->" + std::to_string(c.oh) + "x" + std::to_string(c.ow);
    }
    return name;
}

// Fixed seeds: every run, and every instruction set, computes on the same numbers.
std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

double map_bytes(const FeatureMap& m) { return static_cast<double>(m.h) * m.w * m.cstride * sizeof(float); }
double map_bytes(const QuantizedMap& m) { return static_cast<double>(m.h) * m.w * m.cstride; }

using Rate = benchmark::Counter;
Rate per_second(double per_iteration) { return Rate(per_iteration, Rate::kIsIterationInvariantRate, Rate::kIs1000); }

// Runs `call_once` untimed (first touch of the buffers, weights into cache), then timed.
template <class Fn>
void time_calls(benchmark::State& state, Fn&& call_once) {
    call_once();
    for (auto _ : state) call_once();
}

void run_dense(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    FeatureBuffer in(c.h, c.w, c.cin), out(c.oh, c.ow, c.cout);
    fill_random(in.map(), 1);
    const auto weights = random_floats(static_cast<std::size_t>(c.cout) * c.cin * c.k * c.k, 2);
    const auto bias = random_floats(static_cast<std::size_t>(c.cout), 3);
    PackedConv packed = pack_conv(weights.data(), bias.data(), c.cout, c.cin, c.k, c.stride, kEpilogue);
    if (c.bf16) add_bf16_weights(packed); // conv_for then picks the bf16 kernel
    const bool three_by_three_s1 = c.k == 3 && c.stride == 1;
    const ConvKernel kernel =
        three_by_three_s1 && !c.bf16 ? (c.winograd ? ks.conv3x3_s1_winograd : ks.conv3x3_s1) : ks.conv_for(packed);
    time_calls(state, [&] { kernel(in.map(), packed, out.map(), kKernelThreads); });
    // Winograd does fewer multiplies; its FLOPS count the direct convolution's, so the two compare.
    const double macs = static_cast<double>(c.oh) * c.ow * c.cout * c.cin * c.k * c.k;
    state.counters["FLOPS"] = per_second(2 * macs);
}

void run_depthwise(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    FeatureBuffer in(c.h, c.w, c.cin), out(c.oh, c.ow, c.cout);
    fill_random(in.map(), 1);
    const auto weights = random_floats(static_cast<std::size_t>(c.cin) * 9, 2);
    const auto bias = random_floats(static_cast<std::size_t>(c.cin), 3);
    const PackedDepthwise packed = pack_depthwise(weights.data(), bias.data(), c.cin, c.stride, kEpilogue);
    const DepthwiseKernel kernel = ks.dwconv_for(packed);
    time_calls(state, [&] { kernel(in.map(), packed, out.map(), kKernelThreads); });
    const double macs = static_cast<double>(c.oh) * c.ow * c.cin * 9;
    state.counters["FLOPS"] = per_second(2 * macs);
    state.counters["bytes"] = per_second(map_bytes(in.map()) + map_bytes(out.map()));
}

// int8 cases: uint8 out.

void run_dense_int8(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    QuantizedBuffer in, out;
    in.resize(c.h, c.w, c.cin, kInt8Activation);
    out.resize(c.oh, c.ow, c.cout, kInt8Activation);
    fill_random_bytes(in.map(), 1);
    const auto weights = random_int8(static_cast<std::size_t>(c.cout) * c.cin * c.k * c.k, 2);
    const std::vector<float> weight_scale(static_cast<std::size_t>(c.cout), 0.01f), bias = random_floats(static_cast<std::size_t>(c.cout), 3);
    PackedConvInt8 packed = pack_conv_int8({weights.data(), weight_scale.data(), bias.data(), kInt8Activation, kEpilogue},
                                           c.cout, c.cin, c.k, c.stride, "benchmark conv");
    set_output(packed, true, kInt8Activation);
    const ConvInt8Kernel kernel = ks.conv_int8_for(packed);
    time_calls(state, [&] { kernel(in.map(), packed, {&out.map(), nullptr}, kKernelThreads); });
    state.counters["OPS"] = per_second(2.0 * c.oh * c.ow * c.cout * c.cin * c.k * c.k);
}

void run_depthwise_int8(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    QuantizedBuffer in, out;
    in.resize(c.h, c.w, c.cin, kInt8Activation);
    out.resize(c.oh, c.ow, c.cout, kInt8Activation);
    fill_random_bytes(in.map(), 1);
    const auto weights = random_int8(static_cast<std::size_t>(c.cin) * 9, 2);
    const std::vector<float> weight_scale(static_cast<std::size_t>(c.cin), 0.01f), bias = random_floats(static_cast<std::size_t>(c.cin), 3);
    PackedDepthwiseInt8 packed = pack_depthwise_int8({weights.data(), weight_scale.data(), bias.data(), kInt8Activation, kEpilogue},
                                                     c.cin, c.stride, "benchmark depthwise");
    set_output(packed, kInt8Activation);
    const DepthwiseInt8Kernel kernel = ks.dwconv_int8_for(packed);
    time_calls(state, [&] { kernel(in.map(), packed, out.map(), kKernelThreads); });
    state.counters["OPS"] = per_second(2.0 * c.oh * c.ow * c.cin * 9);
    state.counters["bytes"] = per_second(map_bytes(in.map()) + map_bytes(out.map()));
}

// Float in [-1, 1] quantised at kInt8Activation: its values do not change the time. bytes: the
// float map read, the uint8 map written, padded lanes included (the kernel converts them too).
void run_quantize(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    FeatureBuffer in(c.h, c.w, c.cin);
    fill_random(in.map(), 1);
    QuantizedBuffer out;
    out.resize(c.oh, c.ow, c.cout, kInt8Activation);
    time_calls(state, [&] { ks.quantize_int8(in.map(), out.map(), kKernelThreads); });
    state.counters["bytes"] = per_second(map_bytes(in.map()) + map_bytes(out.map()));
}

void run_upsample_add(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    FeatureBuffer coarse(c.h, c.w, c.cin), fine(c.oh, c.ow, c.cout);
    fill_random(coarse.map(), 1);
    fill_random(fine.map(), 2);
    // Adding into `fine` over and over is harmless: random inputs in [-1, 1] stay finite for
    // billions of calls, and the sums' size does not change the time of an add.
    time_calls(state, [&] { ks.upsample_nearest_add(coarse.map(), fine.map(), kKernelThreads); });
    // Each fine pixel reads one coarse pixel (from cache after its first use) and is read and
    // written: count coarse once and fine twice.
    state.counters["bytes"] = per_second(map_bytes(coarse.map()) + 2 * map_bytes(fine.map()));
}

void run_mobilenet_stem(benchmark::State& state, const KernelSet& ks, const KernelCall& c) {
    FeatureBuffer out(c.oh, c.ow, c.cout);
    std::vector<std::uint8_t> image(static_cast<std::size_t>(c.h) * c.w * c.cin);
    std::mt19937 rng(1);
    for (auto& b : image) b = static_cast<std::uint8_t>(rng() % 256);
    const std::vector<float> padding(static_cast<std::size_t>(c.cin), 117.0f);
    const StemImage in = StemImage::of_bytes(image.data(), c.h, c.w, c.cin, padding.data());
    const auto conv_w = random_floats(static_cast<std::size_t>(c.mid) * c.cin * 9, 2);
    const auto dw_w = random_floats(static_cast<std::size_t>(c.mid) * 9, 3);
    const auto pw_w = random_floats(static_cast<std::size_t>(c.cout) * c.mid, 4);
    const auto dw2_w = random_floats(static_cast<std::size_t>(c.cout) * 9, 5);
    const auto bias = random_floats(static_cast<std::size_t>(std::max(c.mid, c.cout)), 6);
    const PackedConv conv = pack_conv(conv_w.data(), bias.data(), c.mid, c.cin, 3, 2, kEpilogue);
    const PackedDepthwise dw = pack_depthwise(dw_w.data(), bias.data(), c.mid, 1, kEpilogue);
    const PackedConv pw = pack_conv(pw_w.data(), bias.data(), c.cout, c.mid, 1, 1, kEpilogue);
    const PackedDepthwise dw2 = pack_depthwise(dw2_w.data(), bias.data(), c.cout, 2, kEpilogue);
    const int mid_h = conv_out_size(c.h, 3, 2), mid_w = conv_out_size(c.w, 3, 2);
    const AlignedFloats scratch = make_aligned_floats(StemScratch(mid_w, c.cin, c.mid, pw.cout_pad).floats(kKernelThreads));
    time_calls(state, [&] { ks.mobilenet_stem(in, conv, dw, pw, dw2, scratch.get(), out.map(), kKernelThreads); });
    const double macs = static_cast<double>(mid_h) * mid_w * (c.mid * c.cin * 9 + c.mid * 9 + c.cout * c.mid) +
                        static_cast<double>(c.oh) * c.ow * c.cout * 9;
    state.counters["FLOPS"] = per_second(2 * macs);
    // It reads the image and writes the output map; the maps between stay in its scratch rows.
    state.counters["bytes"] = per_second(static_cast<double>(image.size()) + map_bytes(out.map()));
}

// The one registration helper: any call, any instruction set. Buffers and weights are made when
// the benchmark runs, not here, so listing or filtering benchmarks allocates nothing.
void register_call(const KernelSet& ks, const KernelCall& call) {
    const auto run = [kernels = &ks, call](benchmark::State& state) {
        switch (call.kind) {
        case Kind::dense: call.int8 ? run_dense_int8(state, *kernels, call) : run_dense(state, *kernels, call); break;
        case Kind::depthwise: call.int8 ? run_depthwise_int8(state, *kernels, call) : run_depthwise(state, *kernels, call); break;
        case Kind::upsample_add: run_upsample_add(state, *kernels, call); break;
        case Kind::mobilenet_stem: run_mobilenet_stem(state, *kernels, call); break;
        case Kind::quantize: run_quantize(state, *kernels, call); break;
        }
        state.counters["per_frame"] = call.per_frame;
    };
    benchmark::RegisterBenchmark(benchmark_name(call, ks).c_str(), run)->Unit(benchmark::kMicrosecond);
}

// benchmark_main has its own main(), so registration happens during static initialisation.
const bool kRegistered = [] {
    const auto calls = retinaface_mnet025_calls(480, 640);
    for (Isa isa : supported_isas())
        for (KernelCall call : calls) {
            register_call(kernel_set(isa), call);
            if (call.kind == Kind::dense || call.kind == Kind::depthwise) {
                KernelCall int8 = call;
                int8.int8 = true;
                register_call(kernel_set(isa), int8);
            }
            if (call.kind == Kind::dense && call.k == 3 && call.stride == 1) {
                call.winograd = true;
                register_call(kernel_set(isa), call);
            }
            // bf16 (kernels/*_bf16.hpp): the pointwise and Winograd layers, where the set has them.
            const bool bf16_shape = call.kind == Kind::dense && call.stride == 1 && (call.k == 1 || call.winograd);
            if (bf16_shape && kernel_set(isa).conv1x1_bf16) {
                call.bf16 = true;
                register_call(kernel_set(isa), call);
            }
        }
    return true;
}();

} // namespace
