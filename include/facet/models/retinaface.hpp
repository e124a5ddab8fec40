// facet: RetinaFace with the MobileNet-0.25 backbone (MODELS.md section 1).
//
// RetinaFaceModel holds the weights, repacked once at load for the kernels, and everything the
// weight file's metadata says (anchors, strides, variances, input normalisation, activation of
// every conv): no checkpoint-specific constant lives here. It is immutable and shared.
// RetinaFace is a detector: a model plus the scratch memory of one call. One RetinaFace must not
// be used by two threads at once; clone() gives another one sharing the weights, cheaply.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "../io/image.hpp"
#include "../io/weights.hpp"
#include "../kernels/kernel_set.hpp"
#include "../post/nms.hpp"
#include "../post/priors.hpp"
#include "layers.hpp"
#include "modulated_deform_conv.hpp"

namespace facet {

struct RetinaFaceOptions {
    float score_threshold = 0.5f; // faces scoring at or below this are dropped
    float nms_iou = 0.4f;         // greedy NMS overlap threshold
    int top_k = 5000;             // candidates kept (best first) before NMS
    int max_faces = 750;          // faces kept after NMS
    int max_side = 640;           // shrink so the longer side is at most this before the network; 0: never
    int threads = 1;              // threads inside the kernels (core/parallel.hpp)
};

// The network's outputs for one input, in prior order (level, row, column, anchor).
struct RetinaFaceRaw {
    int width = 0, height = 0;        // network input size
    std::vector<float> loc;           // [priors][4] box deltas
    std::vector<float> conf;          // [priors] face probability
    std::vector<float> landms;        // [priors][10] landmark deltas
};

class RetinaFaceModel {
public:
    static constexpr int kLevels = 3;
    static constexpr int kHeadChannels = 32; // per anchor pair: 2 x 2 logits | 2 x 4 box | 2 x 10 landmarks

    explicit RetinaFaceModel(const WeightFile& file) { load(file); }
    static std::shared_ptr<const RetinaFaceModel> from_file(const std::string& path) {
        return std::make_shared<const RetinaFaceModel>(WeightFile::load(path));
    }

    const std::vector<int>& steps() const { return steps_; }
    const std::vector<std::vector<float>>& min_sizes() const { return min_sizes_; }
    int anchors_per_cell() const { return anchors_per_cell_; }
    float variance_centre() const { return variances_[0]; }
    float variance_size() const { return variances_[1]; }

    struct DwBlock {
        DepthwiseLayer dw;
        ConvLayer pw;
    };
    struct ContextModule {
        ConvLayer conv3x3, conv5x5_1, conv5x5_2, conv7x7_2, conv7x7_3;
        // deformable_context only: the five convs above, in that order, as modulated deformable
        // convs sampling where their `<conv>.conv_offset` says; the plain ones are then empty.
        std::array<ModulatedDeformConv, 5> deformable;
    };

    // The network's input is the 8-bit image as floats, in the image's channel order (RGB): the
    // file's normalisation, network channel c = (pixel[source channel of c] - mean[c]) * scale[c],
    // is folded into the stem conv (its weights scaled and put in image order, the mean moved into
    // its bias), so the stem reads the frame's bytes as they are. Zero padding in the normalised
    // domain is the mean in the image's: `padding_pixel` is what the stem sees outside the image.
    std::array<float, 3> padding_pixel{};
    PackedConv stem;
    std::vector<DwBlock> blocks;                 // backbone, in order
    std::array<int, kLevels> stage_end{};        // index in `blocks` of each stage's last block
    std::array<ConvLayer, kLevels> fpn_output;  // lateral 1x1
    std::array<ConvLayer, kLevels - 1> fpn_merge;
    std::array<ContextModule, kLevels> context;
    std::array<PackedConv, kLevels> heads;       // class | box | landmark heads fused into one 1x1
    // retinaface.context = "deformable": the paper's full model, deformable context modules.
    bool deformable_context = false;
    // The file's "precision" ("fp32" when absent; "bf16": converters/quantize_bf16.py; "int8":
    // facet-quantize). Each layer is loaded by its weights' dtype, so a file may keep some layers
    // float32: bf16 weights run on the bf16 kernels where the CPU has AVX512-BF16, widened to
    // float32 elsewhere; int8 layers on the int8 kernels.
    std::string precision = "fp32";

private:
    void load(const WeightFile& f);
    void link_quantized_outputs();

    std::vector<int> steps_;
    std::vector<std::vector<float>> min_sizes_;
    std::array<float, 2> variances_{};
    int anchors_per_cell_ = 0;
};

namespace detail {

inline Epilogue read_activation(const WeightFile& f, const std::string& layer) {
    return f.read_metadata("activation of " + layer, [&](const json::Value& m) {
        const json::Value& a = m["retinaface"]["activations"][layer];
        const std::string& kind = a["kind"].string();
        if (kind == "relu") return Epilogue{Activation::relu, 0.0f};
        if (kind == "none") return Epilogue{Activation::none, 0.0f};
        if (kind == "leaky_relu") {
            const double slope = a["slope"].number();
            if (!(slope >= 0.0 && slope <= 1.0)) throw Error("leaky_relu slope must be in [0, 1]");
            return Epilogue{Activation::leaky_relu, static_cast<float>(slope)};
        }
        throw Error("unknown activation kind '" + kind + "'");
    });
}

inline ConvLayer load_layer(const WeightFile& f, const std::string& name, int cin, int cout, int k, int stride) {
    return load_layer(f, name, cin, cout, k, stride, read_activation(f, name));
}

inline PackedConv load_conv(const WeightFile& f, const std::string& name, int cin, int cout, int k, int stride) {
    return load_conv(f, name, cin, cout, k, stride, read_activation(f, name));
}

inline DepthwiseLayer load_depthwise_layer(const WeightFile& f, const std::string& name, int c, int stride) {
    return load_depthwise_layer(f, name, c, stride, read_activation(f, name));
}

// Layers never int8 in any file: the fused stem kernel and the heads have no int8 form.
inline void refuse_int8(const WeightFile& f, const std::string& name) {
    if (stored_int8(f, name))
        throw Error(f.path() + ": " + name + " is int8, but the fused stem and the heads have no int8 kernel "
                    "(facet-quantize keeps them float32)");
}

// The file's input normalisation (metadata "input"): network channel c = (pixel[source_channel[c]]
// - mean[c]) * scale[c].
struct InputNormalisation {
    std::array<int, 3> source_channel{};
    std::array<double, 3> mean{}, scale{};
};

// The stem conv (3x3 stride 2, 3 -> 8) with the input normalisation folded in, reading the image's
// own channels (RetinaFaceModel::padding_pixel): w'[o][source_channel[c]] = w[o][c] * scale[c] and
// b'[o] = b[o] - sum over c and taps of w[o][c] * scale[c] * mean[c]; `padding_pixel` gets the
// pixel that normalises to zero. Sums in double: the bias absorbs sum(w * mean), hundreds for the
// usual means, and must not lose what the outputs keep.
inline PackedConv load_stem(const WeightFile& f, const InputNormalisation& in, std::array<float, 3>& padding_pixel) {
    const std::string name = "body.stage1.0.0";
    constexpr int kCout = 8, kCin = 3, kTaps = 9;
    const LayerWeights w = read_layer_weights(f, name + ".weight", {kCout, kCin, 3, 3});
    const WeightTensor& b = f.tensor(name + ".bias", {kCout});
    std::vector<float> weight(static_cast<std::size_t>(kCout) * kCin * kTaps), bias(kCout);
    for (int o = 0; o < kCout; ++o) {
        double shift = 0;
        for (int c = 0; c < kCin; ++c)
            for (int t = 0; t < kTaps; ++t) {
                const double v = w.values[(o * kCin + c) * kTaps + t];
                weight[(o * kCin + in.source_channel[c]) * kTaps + t] = static_cast<float>(v * in.scale[c]);
                shift += v * in.scale[c] * in.mean[c];
            }
        bias[o] = static_cast<float>(b.data[o] - shift);
    }
    for (int c = 0; c < kCin; ++c) padding_pixel[in.source_channel[c]] = static_cast<float>(in.mean[c]);
    return pack_conv(weight.data(), bias.data(), kCout, kCin, 3, 2, read_activation(f, name));
}

} // namespace detail

inline void RetinaFaceModel::load(const WeightFile& f) {
    using detail::load_conv;
    using detail::read_activation;
    f.expect_model("retinaface");
    detail::InputNormalisation input;
    f.read_metadata("retinaface", [&](const json::Value& m) {
        const json::Value& r = m["retinaface"];
        if (r["backbone"].string() != "mobilenet0.25")
            throw Error("backbone '" + r["backbone"].string() + "' is not supported (mobilenet0.25 is)");
        for (const auto& s : r["steps"].array()) steps_.push_back(static_cast<int>(s.number()));
        for (const auto& level : r["min_sizes"].array()) {
            min_sizes_.emplace_back();
            for (const auto& s : level.array()) min_sizes_.back().push_back(static_cast<float>(s.number()));
        }
        if (steps_.size() != kLevels || min_sizes_.size() != kLevels)
            throw Error("steps and min_sizes must have 3 levels (this backbone has 3)");
        for (int k = 0; k < kLevels; ++k)
            if (steps_[k] != (8 << k)) throw Error("steps must be [8, 16, 32] (the backbone's strides)");
        anchors_per_cell_ = static_cast<int>(min_sizes_[0].size());
        for (const auto& level : min_sizes_)
            if (static_cast<int>(level.size()) != 2) throw Error("the heads predict 2 anchors per cell");
        variances_ = {static_cast<float>(r["variances"][0].number()), static_cast<float>(r["variances"][1].number())};
        // Files converted before the deformable variant existed have no "context".
        const std::string context = r.has("context") ? r["context"].string() : "plain";
        if (context != "plain" && context != "deformable") throw Error("context must be 'plain' or 'deformable'");
        deformable_context = context == "deformable";

        if (m.has("precision")) precision = m["precision"].string();
        if (precision != "fp32" && precision != "bf16" && precision != "int8")
            throw Error("precision '" + precision + "' is not supported (fp32, bf16 or int8 are)");

        const json::Value& in = m["input"];
        const std::string& color = in["color"].string();
        if (color != "bgr" && color != "rgb") throw Error("input color must be 'bgr' or 'rgb'");
        for (int c = 0; c < 3; ++c) {
            input.source_channel[c] = color == "bgr" ? 2 - c : c;
            input.mean[c] = in["mean"][c].number();
            input.scale[c] = in["scale"][c].number();
        }
        return 0;
    });

    stem = detail::load_stem(f, input, padding_pixel);
    // MobileNetV1 x0.25: (in, out, stride) of every depthwise-separable block after the stem.
    struct BlockShape { const char* stage; int index, cin, cout, stride; };
    static const BlockShape shapes[] = {
        {"stage1", 1, 8, 16, 1},    {"stage1", 2, 16, 32, 2},   {"stage1", 3, 32, 32, 1},
        {"stage1", 4, 32, 64, 2},   {"stage1", 5, 64, 64, 1},   {"stage2", 0, 64, 128, 2},
        {"stage2", 1, 128, 128, 1}, {"stage2", 2, 128, 128, 1}, {"stage2", 3, 128, 128, 1},
        {"stage2", 4, 128, 128, 1}, {"stage2", 5, 128, 128, 1}, {"stage3", 0, 128, 256, 2},
        {"stage3", 1, 256, 256, 1},
    };
    for (const BlockShape& s : shapes) {
        const std::string prefix = std::string("body.") + s.stage + "." + std::to_string(s.index);
        blocks.push_back({detail::load_depthwise_layer(f, prefix + ".0", s.cin, s.stride),
                          detail::load_layer(f, prefix + ".3", s.cin, s.cout, 1, 1)});
        // A depthwise writes uint8 for its pointwise only.
        if (blocks.back().dw.quantized() && !blocks.back().pw.quantized())
            throw Error(f.path() + ": " + prefix + ".0 is int8 but " + prefix + ".3 is not (an int8 depthwise needs an int8 pointwise)");
    }
    // The stem kernel fuses the first conv, block and depthwise (run_network).
    for (const char* name : {"body.stage1.0.0", "body.stage1.1.0", "body.stage1.1.3", "body.stage1.2.0"}) detail::refuse_int8(f, name);
    stage_end = {4, 10, 12};

    const int stage_channels[kLevels] = {64, 128, 256};
    for (int k = 0; k < kLevels; ++k) {
        const std::string n = std::to_string(k + 1);
        fpn_output[k] = detail::load_layer(f, "fpn.output" + n + ".0", stage_channels[k], 64, 1, 1);
        if (k < kLevels - 1) fpn_merge[k] = detail::load_layer(f, "fpn.merge" + n + ".0", 64, 64, 3, 1);

        // The context module's final ReLU follows a concat of three branches that have no
        // activation of their own, so it is fused into each branch's epilogue.
        const std::string ssh = "ssh" + n;
        const Epilogue out = read_activation(f, ssh + ".out");
        for (const char* branch : {".conv3X3.0", ".conv5X5_2.0", ".conv7x7_3.0"})
            if (read_activation(f, ssh + branch).kind != Activation::none)
                throw Error(f.path() + ": " + ssh + branch + " must have no activation (the module's own follows the concat)");
        ContextModule& c = context[k];
        c.conv3x3 = detail::load_layer(f, ssh + ".conv3X3.0", 64, 32, 3, 1, out);
        c.conv5x5_1 = detail::load_layer(f, ssh + ".conv5X5_1.0", 64, 16, 3, 1);
        c.conv5x5_2 = detail::load_layer(f, ssh + ".conv5X5_2.0", 16, 16, 3, 1, out);
        c.conv7x7_2 = detail::load_layer(f, ssh + ".conv7X7_2.0", 16, 16, 3, 1);
        c.conv7x7_3 = detail::load_layer(f, ssh + ".conv7x7_3.0", 16, 16, 3, 1, out);
        if (deformable_context) {
            // Each conv keeps its weights and samples where its own plain 3x3 conv says.
            const std::pair<const char*, ConvLayer*> convs[] = {{".conv3X3.0", &c.conv3x3}, {".conv5X5_1.0", &c.conv5x5_1},
                                                                {".conv5X5_2.0", &c.conv5x5_2}, {".conv7X7_2.0", &c.conv7x7_2},
                                                                {".conv7x7_3.0", &c.conv7x7_3}};
            for (std::size_t i = 0; i < c.deformable.size(); ++i) {
                if (convs[i].second->quantized()) throw Error(f.path() + ": deformable context convs have no int8 form");
                PackedConv& conv = convs[i].second->fp32;
                PackedConv offset_mask = load_conv(f, ssh + convs[i].first + ".conv_offset", conv.cin,
                                                   ModulatedDeformConv::offset_mask_channels(conv.k * conv.k), conv.k, conv.stride);
                c.deformable[i] = make_modulated_deform_conv(std::move(offset_mask), std::move(conv));
            }
        }

        // Heads: stack the three 1x1 convs' output channels (2 x 2 + 2 x 4 + 2 x 10 = 32) so one
        // pointwise pass computes them all.
        // In bf16 when all three are (a mix runs in float32).
        std::vector<float> w(static_cast<std::size_t>(kHeadChannels) * 64), b(kHeadChannels);
        int row = 0;
        bool bf16 = true;
        for (auto [head, per_anchor] : {std::pair<const char*, int>{"ClassHead", 2}, {"BboxHead", 4}, {"LandmarkHead", 10}}) {
            const std::string name = std::string(head) + "." + std::to_string(k) + ".conv1x1";
            const int cout = per_anchor * anchors_per_cell_;
            detail::refuse_int8(f, name);
            const LayerWeights hw = read_layer_weights(f, name + ".weight", {cout, 64, 1, 1});
            const WeightTensor& hb = f.tensor(name + ".bias", {cout});
            std::copy(hw.values.begin(), hw.values.end(), w.begin() + static_cast<std::ptrdiff_t>(row) * 64);
            std::copy(hb.data, hb.data + hb.count, b.begin() + row);
            row += cout;
            bf16 = bf16 && hw.bf16;
        }
        heads[k] = pack_conv(w.data(), b.data(), kHeadChannels, 64, 1, 1, Epilogue{});
        if (bf16) add_bf16_weights(heads[k]);
    }
    link_quantized_outputs();
}

// An int8 layer writes uint8, in its consumers' input quantisation, when all its consumers are
// int8 layers reading that same quantisation; else float (the kernel dequantises in its epilogue).
// Float-only consumers: the FPN's up-sample-add (the laterals, and merge2's output), the heads.
inline void RetinaFaceModel::link_quantized_outputs() {
    // A layer reading the output: its name, and its input quantisation if it is int8 (else nullptr).
    struct Consumer {
        const std::string& name;
        const QuantParams* int8_input;
    };
    const auto reader = [](const auto& layer) { return Consumer{layer.name, layer.quantized() ? &layer.int8.input : nullptr}; };
    // No consumers: a float-only one (up-sample-add, concat into the heads).
    const auto link = [](ConvLayer& producer, std::initializer_list<Consumer> consumers) {
        if (!producer.quantized()) return;
        bool all_int8 = consumers.size() > 0;
        for (const Consumer& c : consumers) all_int8 = all_int8 && c.int8_input;
        if (!all_int8) return set_output(producer.int8, false);
        const Consumer& first = *consumers.begin();
        for (const Consumer& c : consumers)
            if (c.int8_input->scale != first.int8_input->scale || c.int8_input->zero_point != first.int8_input->zero_point)
                throw Error(producer.name + "'s consumers " + first.name + " and " + c.name +
                            " read its output with different input_scale / input_zero_point");
        set_output(producer.int8, true, *first.int8_input);
    };
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        if (blocks[b].dw.quantized()) set_output(blocks[b].dw.int8, blocks[b].pw.int8.input);
        const int level = static_cast<int>(std::find(stage_end.begin(), stage_end.end(), static_cast<int>(b)) - stage_end.begin());
        const bool last = b + 1 == blocks.size();
        if (level < kLevels && last) link(blocks[b].pw, {reader(fpn_output[level])});
        else if (level < kLevels) link(blocks[b].pw, {reader(blocks[b + 1].dw), reader(fpn_output[level])});
        else link(blocks[b].pw, {reader(blocks[b + 1].dw)});
    }
    for (int k = 0; k < kLevels; ++k) {
        ContextModule& c = context[k];
        link(fpn_output[k], {});
        // merge1's output feeds level 1's context module; merge2's is also up-sampled into level 1.
        if (k == 0) link(fpn_merge[0], {reader(c.conv3x3), reader(c.conv5x5_1)});
        if (k == 1) link(fpn_merge[1], {});
        link(c.conv5x5_1, {reader(c.conv5x5_2), reader(c.conv7x7_2)});
        link(c.conv7x7_2, {reader(c.conv7x7_3)});
        for (ConvLayer* branch : {&c.conv3x3, &c.conv5x5_2, &c.conv7x7_3}) link(*branch, {});
    }
}

class RetinaFace {
public:
    explicit RetinaFace(std::shared_ptr<const RetinaFaceModel> model, RetinaFaceOptions options = {},
                        const KernelSet& kernels = default_kernel_set())
        : model_(std::move(model)), options_(options), layers_(kernels) {}
    explicit RetinaFace(const std::string& weight_path, RetinaFaceOptions options = {})
        : RetinaFace(RetinaFaceModel::from_file(weight_path), options) {}

    // Another detector on the same weights, with its own scratch memory (for another thread).
    RetinaFace clone() const { return RetinaFace(model_, options_, layers_.kernels()); }

    RetinaFaceOptions& options() { return options_; }
    const RetinaFaceOptions& options() const { return options_; }
    // The weights it runs (their precision among them).
    const RetinaFaceModel& model() const { return *model_; }
    const KernelSet& kernels() const { return layers_.kernels(); }
    // Sees the inputs of every later call's layers (calibration); an empty function: none.
    void set_calibration_observer(CalibrationObserver observer) { layers_.set_observer(std::move(observer)); }

    // Faces in `image`, best first.
    std::vector<Face> detect(const Image& image) {
        std::vector<Face> faces;
        detect(image, faces);
        return faces;
    }

    // The same into `faces`, reusing its memory: once the detector has seen a frame of this size
    // and `faces` has held as many faces, a call allocates nothing (tests/test_retinaface.cpp).
    void detect(const Image& image, std::vector<Face>& faces) {
        check_image_size(image.width, image.height, "input");
        const double shrink = options_.max_side > 0 ? std::min(1.0, static_cast<double>(options_.max_side) /
                                                                        std::max(image.width, image.height))
                                                    : 1.0;
        const int net_w = std::max(1, static_cast<int>(std::lround(image.width * shrink)));
        const int net_h = std::max(1, static_cast<int>(std::lround(image.height * shrink)));
        set_input(image, net_w, net_h);
        run_network();
        decode(static_cast<float>(image.width), static_cast<float>(image.height), faces);
    }

    // The raw network outputs for an image fed at its own size (no max_side): for parity tests.
    RetinaFaceRaw forward_raw(const Image& image) {
        check_image_size(image.width, image.height, "input");
        set_input(image, image.width, image.height);
        run_network();
        RetinaFaceRaw raw;
        raw.width = image.width;
        raw.height = image.height;
        for_each_prior([&](const Prior&, const float* logits, const float* box, const float* landmarks) {
            raw.conf.push_back(face_probability(logits));
            raw.loc.insert(raw.loc.end(), box, box + 4);
            raw.landms.insert(raw.landms.end(), landmarks, landmarks + 10);
        });
        return raw;
    }

private:
    static float face_probability(const float* logits) { return 1.0f / (1.0f + std::exp(logits[0] - logits[1])); }

    // The network input: `image` itself when it is net_w x net_h (the stem reads its bytes), else
    // resampled (bilinear) into floats (the tables are kept for the next frame of that size). Its
    // padding is the model's padding pixel: the normalisation is in the stem
    // (RetinaFaceModel::padding_pixel). `image` must outlive run_network().
    void set_input(const Image& image, int net_w, int net_h) {
        const std::array<float, 3>& pad = model_->padding_pixel;
        if (net_w == image.width && net_h == image.height) {
            stem_input_ = StemImage::of_bytes(image.data(), net_h, net_w, 3, pad.data());
            return;
        }
        input_.resize(net_h, net_w, 3, 1);
        const FeatureMap& in = input_.map();
        for (int x = -1; x <= net_w; ++x) {
            std::copy(pad.begin(), pad.end(), in.at(-1, x));
            std::copy(pad.begin(), pad.end(), in.at(net_h, x));
        }
        for (int y = 0; y < net_h; ++y) {
            std::copy(pad.begin(), pad.end(), in.at(y, -1));
            std::copy(pad.begin(), pad.end(), in.at(y, net_w));
        }
        if (taps_x_.size() != static_cast<std::size_t>(net_w) || taps_source_w_ != image.width) taps_x_ = bilinear_taps(image.width, net_w);
        if (taps_y_.size() != static_cast<std::size_t>(net_h) || taps_source_h_ != image.height) taps_y_ = bilinear_taps(image.height, net_h);
        taps_source_w_ = image.width;
        taps_source_h_ = image.height;
        resample_bilinear(
            taps_x_, taps_y_, 3, [&](int x, int y, int c) { return static_cast<float>(image.pixel(x, y)[c]); },
            [&](int x, int y, int c, float v) { in.at(y, x)[c] = v; });
        stem_input_ = StemImage::of_map(in);
    }

    void run_network() {
        const RetinaFaceModel& m = *model_;
        const int threads = options_.threads;
        layers_.threads = threads;
        const KernelSet& kernels = layers_.kernels();
        // The stem conv, the first block and the second block's depthwise run fused
        // (kernels/mobilenet_stem.hpp), in float32 in any file. Then the backbone alternates two
        // buffers: a block's depthwise writes ping_[1], its pointwise ping_[0] (whose old content,
        // the block's input, has been consumed by then).
        const RetinaFaceModel::DwBlock &first = m.blocks[0], &second = m.blocks[1];
        const StemImage& in = stem_input_;
        const int mid_h = conv_out_size(in.h, 3, 2), mid_w = conv_out_size(in.w, 3, 2);
        ping_[1].quantized = false;
        ping_[1].floats.resize(conv_out_size(mid_h, 3, 2), conv_out_size(mid_w, 3, 2), second.dw.c());
        const std::size_t scratch = StemScratch(mid_w, m.stem.cin, m.stem.cout, first.pw.fp32.cout_pad).floats(threads);
        if (scratch > stem_scratch_floats_) {
            stem_scratch_ = make_aligned_floats(scratch);
            stem_scratch_floats_ = scratch;
        }
        kernels.mobilenet_stem(in, m.stem, first.dw.fp32, first.pw.fp32, second.dw.fp32, stem_scratch_.get(),
                                 ping_[1].floats.map(), threads);
        layers_.conv(second.pw, ping_[1], ping_[0]);
        const LayerMap* x = &ping_[0];
        int level = 0;
        for (std::size_t b = 2; b < m.blocks.size(); ++b) {
            const auto& block = m.blocks[b];
            layers_.dwconv(block.dw, *x, ping_[1]);
            // A stage's last output feeds the FPN and must outlive the ping-pong buffers.
            const bool stage_end = level < RetinaFaceModel::kLevels && static_cast<int>(b) == m.stage_end[level];
            LayerMap& pw_out = stage_end ? stage_[level++] : ping_[0];
            layers_.conv(block.pw, ping_[1], pw_out);
            x = &pw_out;
        }
        // FPN: lateral 1x1s, then top-down: o2 = merge2(o2 + up(o3)), o1 = merge1(o1 + up(o2)).
        // The laterals and merge2's output are float (the up-sample-add is).
        for (int k = 0; k < RetinaFaceModel::kLevels; ++k) layers_.conv(m.fpn_output[k], stage_[k], lateral_[k]);
        const LayerMap* coarser = &lateral_[2];
        for (int k = RetinaFaceModel::kLevels - 2; k >= 0; --k) {
            kernels.upsample_nearest_add(coarser->floats.map(), lateral_[k].floats.map(), threads);
            layers_.conv(m.fpn_merge[k], lateral_[k], merged_[k]);
            coarser = &merged_[k];
        }
        const LayerMap* features[RetinaFaceModel::kLevels] = {&merged_[0], &merged_[1], &lateral_[2]};
        // Context modules write their three branches into slices of one 64-channel float map.
        for (int k = 0; k < RetinaFaceModel::kLevels; ++k) {
            const auto& c = m.context[k];
            const LayerMap& f = *features[k];
            context_[k].resize(f.h(), f.w(), 64);
            const FeatureMap& out = context_[k].map();
            if (m.deformable_context) {
                // The same dataflow as below, every conv deformable (ContextModule::deformable), float32.
                const auto deformable = [&](int i, const FeatureMap& in, const FeatureMap& to) {
                    run_modulated_deform_conv(kernels, c.deformable[i], in, context_offsets_, to, threads);
                };
                context_t_.floats.resize(f.h(), f.w(), 16);
                context_u_.floats.resize(f.h(), f.w(), 16);
                deformable(0, f.floats.map(), out.channels(0, 32));
                deformable(1, f.floats.map(), context_t_.floats.map());
                deformable(2, context_t_.floats.map(), out.channels(32, 16));
                deformable(3, context_t_.floats.map(), context_u_.floats.map());
                deformable(4, context_u_.floats.map(), out.channels(48, 16));
            } else {
                layers_.conv_into(c.conv3x3, f, out.channels(0, 32));
                layers_.conv(c.conv5x5_1, f, context_t_);
                layers_.conv_into(c.conv5x5_2, context_t_, out.channels(32, 16));
                layers_.conv(c.conv7x7_2, context_t_, context_u_);
                layers_.conv_into(c.conv7x7_3, context_u_, out.channels(48, 16));
            }
            layers_.conv(m.heads[k], out, heads_[k]);
        }
    }

    // Calls fn(prior, logits[2], box[4], landmarks[10]) for every prior, in output order.
    template <class Fn>
    void for_each_prior(Fn&& fn) {
        const RetinaFaceModel& m = *model_;
        const StemImage& in = stem_input_;
        if (priors_h_ != in.h || priors_w_ != in.w) {
            priors_ = make_priors(in.h, in.w, m.steps(), m.min_sizes());
            priors_h_ = in.h;
            priors_w_ = in.w;
        }
        const int anchors = m.anchors_per_cell();
        std::size_t index = 0;
        for (int k = 0; k < RetinaFaceModel::kLevels; ++k) {
            const FeatureMap& h = heads_[k].map();
            for (int y = 0; y < h.h; ++y)
                for (int x = 0; x < h.w; ++x) {
                    const float* o = h.at(y, x);
                    for (int a = 0; a < anchors; ++a)
                        fn(priors_[index++], o + 2 * a, o + 2 * anchors + 4 * a, o + 6 * anchors + 10 * a);
                }
        }
    }

    // A face candidate and the index of its prior, the tie-break that keeps sorting stable
    // without std::stable_sort's temporary buffer.
    struct Candidate : Face {
        std::size_t prior = 0;
    };

    void decode(float image_w, float image_h, std::vector<Face>& faces) {
        const RetinaFaceModel& m = *model_;
        candidates_.clear();
        std::size_t index = 0;
        for_each_prior([&](const Prior& p, const float* logits, const float* box, const float* landmarks) {
            const std::size_t prior = index++;
            const float score = face_probability(logits);
            if (!(score > options_.score_threshold)) return;
            Candidate c;
            c.prior = prior;
            c.score = score;
            const auto b = decode_box(p, box, m.variance_centre(), m.variance_size());
            c.box = {b[0] * image_w, b[1] * image_h, b[2] * image_w, b[3] * image_h};
            for (int n = 0; n < 5; ++n) {
                const auto l = decode_landmark(p, landmarks, n, m.variance_centre());
                c.landmarks[n] = {l[0] * image_w, l[1] * image_h};
            }
            candidates_.push_back(c);
        });
        std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
            return a.score != b.score ? a.score > b.score : a.prior < b.prior;
        });
        if (candidates_.size() > static_cast<std::size_t>(std::max(0, options_.top_k)))
            candidates_.resize(static_cast<std::size_t>(std::max(0, options_.top_k)));
        nms_sorted_in_place(candidates_, options_.nms_iou, NmsRule{1.0f, false}, static_cast<std::size_t>(std::max(0, options_.max_faces)),
                            kept_boxes_);
        faces.assign(candidates_.begin(), candidates_.end());
    }

    std::shared_ptr<const RetinaFaceModel> model_;
    RetinaFaceOptions options_;
    LayerRunner layers_; // the kernels, and the int8 layers' scratch and calibration observer
    // Scratch memory, sized at the first call for an input size and reused after.
    StemImage stem_input_;    // the network input: the frame's bytes, or input_
    FeatureBuffer input_;     // the frame resampled to the network's size, when it is not that size
    LayerMap ping_[2], context_t_, context_u_;
    AlignedFloats stem_scratch_; // the fused stem's rows (StemScratch), for every thread
    std::size_t stem_scratch_floats_ = 0;
    FeatureBuffer context_offsets_; // deformable_context: a context conv's predicted offsets and mask
    LayerMap stage_[RetinaFaceModel::kLevels], lateral_[RetinaFaceModel::kLevels], merged_[RetinaFaceModel::kLevels - 1];
    FeatureBuffer context_[RetinaFaceModel::kLevels], heads_[RetinaFaceModel::kLevels];
    std::vector<Prior> priors_;
    int priors_h_ = -1, priors_w_ = -1;
    std::vector<Candidate> candidates_;
    KeptBoxes kept_boxes_; // the NMS's
    std::vector<BilinearTap> taps_x_, taps_y_;
    int taps_source_w_ = -1, taps_source_h_ = -1;
};

} // namespace facet
