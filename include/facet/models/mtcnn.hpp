// facet: the MTCNN face detector (MODELS.md section 2), a cascade of three small nets.
//
// P-Net slides a 12 x 12 window (stride 2) over an image pyramid and proposes boxes; R-Net
// re-scores and refines 24 x 24 crops of them; O-Net does the same on 48 x 48 crops and adds five
// landmarks. Between the stages: NMS, box regression and squaring. Every step follows
// facenet-pytorch's detect_face, which produced the golden files, down to its arithmetic: the
// boxes are float32 tensors there, so the box maths below is in float, in upstream's operation
// order, and each stage's NMS uses upstream's convention for it.
//
// MtcnnModel holds the three nets, repacked once at load, and the pipeline defaults from the
// weight file's metadata; it is immutable and shared. Mtcnn is a detector: a model, options and
// the scratch memory of one call, so one Mtcnn must not be used by two threads at once (clone()
// gives another). Its maps, candidate lists and sort buffers are reused from call to call, so once
// warm (frames of one size with about as many candidates) a call allocates nothing.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/parallel.hpp"
#include "../core/tensor.hpp"
#include "../io/image.hpp"
#include "../io/weights.hpp"
#include "../kernels/kernel_set.hpp"
#include "../kernels/maxpool_size.hpp"
#include "layers.hpp"
#include "../post/nms.hpp"

namespace facet {

struct MtcnnOptions {
    double min_face = 20;  // smallest face side, in pixels, looked for: the pyramid starts at 12 / min_face
    double factor = 0.709; // scale from one pyramid level to the next, in (0, 1)
    // Face probability a candidate needs to pass P-Net (>=), R-Net (>) and O-Net (>), as upstream.
    std::array<float, 3> thresholds{0.6f, 0.7f, 0.7f};
    int threads = 1; // threads over P-Net's pyramid levels and over R-Net's and O-Net's crops
};

// Throws an Error naming the first option out of range.
inline void check_options(const MtcnnOptions& o) {
    // At least a pixel: the first pyramid level is the image scaled by 12 / min_face, so a smaller
    // one would ask for levels larger than any image facet reads (or than an int holds).
    if (!(o.min_face >= 1 && std::isfinite(o.min_face)))
        throw Error("MTCNN min_face must be a number of pixels, at least 1, got " + std::to_string(o.min_face));
    if (!(o.factor > 0 && o.factor < 1))
        throw Error("MTCNN factor must be in (0, 1), got " + std::to_string(o.factor));
    for (int stage = 0; stage < 3; ++stage)
        if (!(o.thresholds[stage] >= 0 && o.thresholds[stage] <= 1))
            throw Error("MTCNN threshold " + std::to_string(stage + 1) + " must be in [0, 1], got " +
                        std::to_string(o.thresholds[stage]));
    if (o.threads < 1) throw Error("MTCNN threads must be at least 1, got " + std::to_string(o.threads));
}

// The cascade's arithmetic, kept apart from the model and the detector so that the tests can check
// each rule of MODELS.md section 2 on its own.
namespace mtcnn {

// The pyramid's scales for an image: m = 12 / min_face, then m * factor^k for as long as the
// image's shorter side, scaled, is at least P-Net's 12-pixel window. The shorter side is scaled
// by its own running product, as upstream computes it (the two products can differ in the last
// bit, which decides whether a level exactly at 12 pixels is kept). They replace `scales`.
// A factor near 1 would make millions of levels (P-Net runs on each): more than kMaxPyramidLevels
// is refused. (Upstream's 0.709 makes 29 on the largest image facet reads, with min_face 1.)
constexpr std::size_t kMaxPyramidLevels = 100;

inline void pyramid_scales(int height, int width, double min_face, double factor, std::vector<double>& scales) {
    const double m = 12.0 / min_face;
    scales.clear();
    double scale = m, shorter_side = std::min(height, width) * m;
    while (shorter_side >= 12) {
        if (scales.size() == kMaxPyramidLevels)
            throw Error("MTCNN factor " + std::to_string(factor) + " with min_face " + std::to_string(min_face) + " makes more than " +
                        std::to_string(kMaxPyramidLevels) + " pyramid levels on a " + std::to_string(width) + "x" +
                        std::to_string(height) + " image (upstream's factor is 0.709)");
        scales.push_back(scale);
        scale *= factor;
        shorter_side *= factor;
    }
}

// A pyramid level's size, int(side * scale + 1) as upstream.
inline int level_size(int side, double scale) { return static_cast<int>(side * scale + 1); }

// Face probability from the two logits of a head: softmax index 1, as PyTorch computes it.
inline float face_probability(const float* logits) {
    const float top = std::max(logits[0], logits[1]);
    const float e0 = std::exp(logits[0] - top), e1 = std::exp(logits[1] - top);
    return e1 / (e0 + e1);
}

// Box regression: each edge moves by its offset times the box's width or height. P-Net's boxes
// are measured as x2 - x1, R-Net's and O-Net's as x2 - x1 + 1 (`pixel_offset`), as upstream.
inline std::array<float, 4> regress_box(const std::array<float, 4>& b, const std::array<float, 4>& offsets,
                                        float pixel_offset) {
    const float w = b[2] - b[0] + pixel_offset, h = b[3] - b[1] + pixel_offset;
    return {b[0] + offsets[0] * w, b[1] + offsets[1] * h, b[2] + offsets[2] * w, b[3] + offsets[3] * h};
}

// The square of side max(w, h) with the box's centre (upstream's rerec, operation for operation).
inline std::array<float, 4> square_box(const std::array<float, 4>& b) {
    const float w = b[2] - b[0], h = b[3] - b[1], side = std::max(w, h);
    const float x1 = b[0] + w * 0.5f - side * 0.5f, y1 = b[1] + h * 0.5f - side * 0.5f;
    return {x1, y1, x1 + side, y1 + side};
}

// The pixels a box is cropped to (MODELS.md's padding rule, upstream's pad()): the box truncated to
// integers, x1 and y1 clamped to >= 1, x2 and y2 to <= the image size, then rows y1 - 1 .. y2 - 1
// and columns x1 - 1 .. x2 - 1 inclusive. A box reaching past the image is cropped to the part
// inside, not skipped; a box entirely outside gives an empty crop.
struct CropRect {
    int x = 0, y = 0, w = 0, h = 0; // first column and row, size
    bool empty() const { return w <= 0 || h <= 0; }
};
inline CropRect crop_rect(const std::array<float, 4>& box, int image_w, int image_h) {
    const int x1 = std::max(static_cast<int>(box[0]), 1), y1 = std::max(static_cast<int>(box[1]), 1);
    const int x2 = std::min(static_cast<int>(box[2]), image_w), y2 = std::min(static_cast<int>(box[3]), image_h);
    return {x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1};
}

} // namespace mtcnn

class MtcnnModel {
public:
    static constexpr int kRnetInput = 24, kOnetInput = 48;

    explicit MtcnnModel(const WeightFile& file) { load(file); }
    static std::shared_ptr<const MtcnnModel> from_file(const std::string& path) {
        return std::make_shared<const MtcnnModel>(WeightFile::load(path));
    }

    // Each net's two or three heads are stacked into one layer, so one pass computes them all.
    // The convs are in the file's precision (float32, or int8: weights/FORMAT.md); the heads and
    // the dense layers are float32.
    struct PNet {
        ConvLayer conv1, conv2, conv3; // 3x3, PReLU
        PackedConv heads;              // 1x1 32 -> 2 logits | 4 box offsets
    };
    struct RNet {
        ConvLayer conv1, conv2, conv3; // 3x3, 3x3, 2x2, PReLU
        PackedDense dense4;            // 3x3x64 -> 128, PReLU
        PackedDense heads;             // 128 -> 2 logits | 4 box offsets
    };
    struct ONet {
        ConvLayer conv1, conv2, conv3, conv4; // 3x3, 3x3, 3x3, 2x2, PReLU
        PackedDense dense5;                   // 3x3x128 -> 256, PReLU
        PackedDense heads;                    // 256 -> 2 logits | 4 box offsets | 10 landmarks
    };

    // Input normalisation: network channel c = (pixel[source_channel[c]] - mean[c]) * scale[c].
    std::array<int, 3> source_channel{};
    std::array<float, 3> mean{}, scale{};
    PNet pnet;
    RNet rnet;
    ONet onet;
    // The file's "precision": "fp32" (when absent) or "int8" (facet-quantize: some convs int8).
    std::string precision = "fp32";

    // The pipeline defaults the weight file names (min face, factor, thresholds).
    const MtcnnOptions& defaults() const { return defaults_; }

private:
    void load(const WeightFile& f);

    MtcnnOptions defaults_;
};

namespace detail {

// Conv `<net>.<conv>` (stride 1) in the file's precision, with the PReLU `<net>.<prelu>.weight`
// [cout] fused into its epilogue.
inline ConvLayer load_conv_prelu(const WeightFile& f, const std::string& net, const std::string& conv,
                                 const std::string& prelu, int cin, int cout, int k) {
    const WeightTensor& slopes = f.tensor(net + "." + prelu + ".weight", {cout});
    return load_layer(f, net + "." + conv, cin, cout, k, 1, Epilogue{Activation::prelu, 0.0f, slopes.data});
}

// An int8 conv writes uint8 for the int8 conv that reads its output next (in that conv's input
// quantisation, which a max-pool between them keeps), float for a float reader or a float layer.
inline void link_output(ConvLayer& producer, const ConvLayer* reader) {
    if (!producer.quantized()) return;
    const bool bytes = reader && reader->quantized();
    set_output(producer.int8, bytes, bytes ? reader->int8.input : QuantParams{});
}

// nn.Linear `<net>.<dense>` reading an in_h x in_w x cin map, with its PReLU.
inline PackedDense load_dense_prelu(const WeightFile& f, const std::string& net, const std::string& dense,
                                    const std::string& prelu, int in_h, int in_w, int cin, int cout) {
    const WeightTensor& w = f.tensor(net + "." + dense + ".weight", {cout, in_h * in_w * cin});
    const WeightTensor& b = f.tensor(net + "." + dense + ".bias", {cout});
    const WeightTensor& slopes = f.tensor(net + "." + prelu + ".weight", {cout});
    return pack_dense(w.data, b.data, cout, in_h, in_w, cin, Epilogue{Activation::prelu, 0.0f, slopes.data});
}

// Heads `<net>.<name>` (weights [rows][inputs, 1, 1 for a conv], bias [rows]) stacked in the
// order given, as one weight matrix [sum of rows][inputs] and bias.
struct StackedHeads {
    std::vector<float> weights, bias;
    int rows = 0;
};
inline StackedHeads stack_heads(const WeightFile& f, const std::string& net,
                                std::initializer_list<std::pair<const char*, int>> heads, int inputs, bool conv1x1) {
    StackedHeads s;
    for (auto [name, rows] : heads) {
        const std::string prefix = net + "." + name;
        const WeightTensor& w = conv1x1 ? f.tensor(prefix + ".weight", {rows, inputs, 1, 1})
                                        : f.tensor(prefix + ".weight", {rows, inputs});
        const WeightTensor& b = f.tensor(prefix + ".bias", {rows});
        s.weights.insert(s.weights.end(), w.data, w.data + w.count);
        s.bias.insert(s.bias.end(), b.data, b.data + b.count);
        s.rows += rows;
    }
    return s;
}

} // namespace detail

inline void MtcnnModel::load(const WeightFile& f) {
    using detail::load_conv_prelu;
    using detail::load_dense_prelu;
    using detail::stack_heads;
    f.expect_model("mtcnn");
    f.read_metadata("input", [&](const json::Value& m) {
        const json::Value& in = m["input"];
        const std::string& color = in["color"].string();
        if (color != "bgr" && color != "rgb") throw Error("input color must be 'bgr' or 'rgb'");
        for (int c = 0; c < 3; ++c) {
            source_channel[c] = color == "bgr" ? 2 - c : c;
            mean[c] = static_cast<float>(in["mean"][c].number());
            scale[c] = static_cast<float>(in["scale"][c].number());
        }
        return 0;
    });
    f.read_metadata("mtcnn", [&](const json::Value& m) {
        const json::Value& d = m["mtcnn"];
        defaults_.min_face = d["min_face"].number();
        defaults_.factor = d["factor"].number();
        for (int stage = 0; stage < 3; ++stage) defaults_.thresholds[stage] = static_cast<float>(d["thresholds"][stage].number());
        check_options(defaults_);
        return 0;
    });
    f.read_metadata("precision", [&](const json::Value& m) {
        if (m.has("precision")) precision = m["precision"].string();
        if (precision != "fp32" && precision != "int8")
            throw Error("precision '" + precision + "' is not supported by MTCNN (fp32 or int8 are)");
        return 0;
    });

    pnet.conv1 = load_conv_prelu(f, "pnet", "conv1", "prelu1", 3, 10, 3);
    pnet.conv2 = load_conv_prelu(f, "pnet", "conv2", "prelu2", 10, 16, 3);
    pnet.conv3 = load_conv_prelu(f, "pnet", "conv3", "prelu3", 16, 32, 3);
    const auto p = stack_heads(f, "pnet", {{"conv4_1", 2}, {"conv4_2", 4}}, 32, true);
    pnet.heads = pack_conv(p.weights.data(), p.bias.data(), p.rows, 32, 1, 1, Epilogue{});

    rnet.conv1 = load_conv_prelu(f, "rnet", "conv1", "prelu1", 3, 28, 3);
    rnet.conv2 = load_conv_prelu(f, "rnet", "conv2", "prelu2", 28, 48, 3);
    rnet.conv3 = load_conv_prelu(f, "rnet", "conv3", "prelu3", 48, 64, 2);
    rnet.dense4 = load_dense_prelu(f, "rnet", "dense4", "prelu4", 3, 3, 64, 128);
    const auto r = stack_heads(f, "rnet", {{"dense5_1", 2}, {"dense5_2", 4}}, 128, false);
    rnet.heads = pack_dense(r.weights.data(), r.bias.data(), r.rows, 1, 1, 128, Epilogue{});

    onet.conv1 = load_conv_prelu(f, "onet", "conv1", "prelu1", 3, 32, 3);
    onet.conv2 = load_conv_prelu(f, "onet", "conv2", "prelu2", 32, 64, 3);
    onet.conv3 = load_conv_prelu(f, "onet", "conv3", "prelu3", 64, 64, 3);
    onet.conv4 = load_conv_prelu(f, "onet", "conv4", "prelu4", 64, 128, 2);
    onet.dense5 = load_dense_prelu(f, "onet", "dense5", "prelu5", 3, 3, 128, 256);
    const auto o = stack_heads(f, "onet", {{"dense6_1", 2}, {"dense6_2", 4}, {"dense6_3", 10}}, 256, false);
    onet.heads = pack_dense(o.weights.data(), o.bias.data(), o.rows, 1, 1, 256, Epilogue{});

    // R-Net's and O-Net's convs always see a crop's maps, so each 3x3 one gets the Winograd tile
    // that covers its fixed output with the fewest products (winograd_tile_for): R-Net conv2 makes
    // 9 x 9 (24 -> 22 -> pool 11 -> 9), O-Net conv2 21 x 21 and conv3 8 x 8. Float layers only;
    // a bf16 one keeps the F(4x4, 3x3) U its bf16 GEMMs read.
    const auto fit_winograd = [](ConvLayer& layer, int out_size) {
        PackedConv& p = layer.fp32;
        const int tile = winograd_tile_for(out_size, out_size);
        if (!layer.quantized() && p.winograd && !p.bf16 && p.winograd_tile != tile) pack_winograd(p, tile);
    };
    fit_winograd(rnet.conv2, 9);
    fit_winograd(onet.conv2, 21);
    fit_winograd(onet.conv3, 8);

    using detail::link_output;
    link_output(pnet.conv1, &pnet.conv2);
    link_output(pnet.conv2, &pnet.conv3);
    link_output(pnet.conv3, nullptr);
    link_output(rnet.conv1, &rnet.conv2);
    link_output(rnet.conv2, &rnet.conv3);
    link_output(rnet.conv3, nullptr);
    link_output(onet.conv1, &onet.conv2);
    link_output(onet.conv2, &onet.conv3);
    link_output(onet.conv3, &onet.conv4);
    link_output(onet.conv4, nullptr);
}

class Mtcnn {
public:
    explicit Mtcnn(std::shared_ptr<const MtcnnModel> model, const KernelSet& kernels = default_kernel_set())
        : Mtcnn(model, model->defaults(), kernels) {}
    Mtcnn(std::shared_ptr<const MtcnnModel> model, MtcnnOptions options, const KernelSet& kernels = default_kernel_set())
        : model_(std::move(model)), options_(options), kernels_(&kernels) {
        // Read by the dense layers, pixel by pixel: their rings never are (NetScratch says more).
        for (FeatureBuffer* map : {&features_, &hidden_, &heads_}) map->set_ring_read(false);
    }
    explicit Mtcnn(const std::string& weight_path) : Mtcnn(MtcnnModel::from_file(weight_path)) {}

    // Another detector on the same weights, with its own scratch memory (for another thread).
    Mtcnn clone() const { return Mtcnn(model_, options_, *kernels_); }

    // The weights it runs (their precision among them).
    const MtcnnModel& model() const { return *model_; }

    // Calls `observer` with the input of every conv of every later detect(), in the order the
    // cascade runs them (facet-quantize calibrates on them); an empty function: none. Run with
    // one thread while observing: the calls come from the threads running the nets.
    void set_calibration_observer(CalibrationObserver observer) {
        observer_ = std::move(observer);
        for (NetScratch& s : scratch_) s.layers.set_observer(observer_);
    }

    MtcnnOptions& options() { return options_; }
    const MtcnnOptions& options() const { return options_; }
    const KernelSet& kernels() const { return *kernels_; }

    // Faces in `image`, largest box first (as upstream's select_largest). An image smaller than
    // 12 px or than min_face has no pyramid level and so no faces.
    std::vector<Face> detect(const Image& image) {
        std::vector<Face> faces;
        detect(image, faces);
        return faces;
    }

    // The same into `faces` (replaced), which a caller can keep from frame to frame.
    void detect(const Image& image, std::vector<Face>& faces) {
        check_image_size(image.width, image.height, "input");
        check_options(options_);
        pnet_stage(image, proposed_); // builds image_sums_ where it finds candidates: R-Net and O-Net read it
        if (proposed_.empty()) {
            faces.clear();
            return;
        }
        rnet_on_sums(proposed_, refined_);
        onet_on_sums(refined_, faces);
        sort_descending_stable(faces, [](const Face& f) { return box_area(f.box, 0.0f); }, face_sort_); // largest first
    }

    // The cascade stage by stage (detect() runs them in turn; public for tests and benchmarks).
    // Boxes and scores pass from stage to stage as Faces whose landmarks only O-Net fills. Each
    // stage replaces the contents of `out`, which must not be its `candidates`.

    // P-Net on every pyramid level; candidates with NMS per level (IoU 0.5) and over all levels
    // (0.7), refined by their box regression and squared.
    void pnet_stage(const Image& image, std::vector<Face>& out) {
        out.clear();
        mtcnn::pyramid_scales(image.height, image.width, options_.min_face, options_.factor, scales_);
        if (scales_.empty()) return;
        // The first level is the largest: it bounds what the pyramid allocates. (The message is
        // made only for a refusal: a string that long would be an allocation per call.)
        const int top_w = mtcnn::level_size(image.width, scales_[0]), top_h = mtcnn::level_size(image.height, scales_[0]);
        if (!image_size_within_limits(top_w, top_h))
            check_image_size(top_w, top_h, "MTCNN pyramid (min_face " + std::to_string(options_.min_face) + ")");
        image_sums_.build(image); // after the refusals: it takes 12 bytes a pixel
        const mtcnn::CropRect whole{0, 0, image.width, image.height};
        const int levels = static_cast<int>(scales_.size());
        const int lanes = thread_scratch(levels);
        if (per_level_.size() < scales_.size()) per_level_.resize(scales_.size());
        assign_levels(image, lanes);
        // Each lane (its levels, in turn, on its scratch) runs on one thread, whichever claims it.
        parallel_for(0, lanes, lanes, [&](int lane) {
            NetScratch& s = scratch_[static_cast<std::size_t>(lane)];
            for (int level = 0; level < levels; ++level) {
                if (level_lane_[static_cast<std::size_t>(level)] != lane) continue;
                const double scale = scales_[static_cast<std::size_t>(level)];
                set_input(whole, mtcnn::level_size(image.width, scale), mtcnn::level_size(image.height, scale),
                          model_->pnet.conv1, s);
                run_pnet(s);
                std::vector<Proposal>& found = per_level_[static_cast<std::size_t>(level)];
                pnet_proposals(s.heads.map(), scale, found);
                nms(found, 0.5f, kPlainIou, kAll, s.sort);
            }
        });
        proposals_.clear();
        for (int level = 0; level < levels; ++level) {
            const std::vector<Proposal>& found = per_level_[static_cast<std::size_t>(level)];
            proposals_.insert(proposals_.end(), found.begin(), found.end());
        }
        nms(proposals_, 0.7f, kPlainIou, kAll, proposal_sort_);
        for (const Proposal& p : proposals_)
            out.push_back(face(mtcnn::square_box(mtcnn::regress_box(p.box, p.regression, 0.0f)), p.score));
    }

    // R-Net on a 24 x 24 crop of every candidate: keeps probability > thresholds[1], NMS 0.7,
    // refined and squared again.
    void rnet_stage(const Image& image, const std::vector<Face>& candidates, std::vector<Face>& out) {
        image_sums_.build(image);
        rnet_on_sums(candidates, out);
    }

    // O-Net on a 48 x 48 crop of every candidate: keeps probability > thresholds[2], reads the
    // landmarks (relative to the crop's box), refines the boxes, and a last NMS at 0.7 with
    // intersection over the smaller area and "+1" areas.
    void onet_stage(const Image& image, const std::vector<Face>& candidates, std::vector<Face>& out) {
        image_sums_.build(image);
        onet_on_sums(candidates, out);
    }

private:
    // The stages after P-Net on the image whose summed-area table image_sums_ holds (built once
    // a detect(), 0.34 ms for VGA; the public stages build it themselves).
    void rnet_on_sums(const std::vector<Face>& candidates, std::vector<Face>& out) {
        const MtcnnModel::RNet& net = model_->rnet;
        run_on_crops(candidates, MtcnnModel::kRnetInput, net.conv1, net.dense4, [&](NetScratch& s, const FeatureMap& features) {
            s.layers.conv(net.conv1, s.input, s.a, Padding::none);
            pool(3, s.a, s.b);
            s.layers.conv(net.conv2, s.b, s.a, Padding::none);
            pool(3, s.a, s.b);
            s.layers.conv_into(net.conv3, s.b, features, Padding::none);
        });
        run_dense_layers(net.dense4, net.heads, cropped_.size());
        proposals_.clear();
        for (std::size_t i = 0; i < cropped_.size(); ++i) {
            const float* o = heads_.map().at(static_cast<int>(i), 0);
            const float score = mtcnn::face_probability(o);
            if (score > options_.thresholds[1]) proposals_.push_back({cropped_[i].box, score, {o[2], o[3], o[4], o[5]}});
        }
        nms(proposals_, 0.7f, kPlainIou, kAll, proposal_sort_);
        out.clear();
        for (const Proposal& p : proposals_)
            out.push_back(face(mtcnn::square_box(mtcnn::regress_box(p.box, p.regression, 1.0f)), p.score));
    }

    void onet_on_sums(const std::vector<Face>& candidates, std::vector<Face>& out) {
        const MtcnnModel::ONet& net = model_->onet;
        run_on_crops(candidates, MtcnnModel::kOnetInput, net.conv1, net.dense5, [&](NetScratch& s, const FeatureMap& features) {
            s.layers.conv(net.conv1, s.input, s.a, Padding::none);
            pool(3, s.a, s.b);
            s.layers.conv(net.conv2, s.b, s.a, Padding::none);
            pool(3, s.a, s.b);
            s.layers.conv(net.conv3, s.b, s.a, Padding::none);
            pool(2, s.a, s.b);
            s.layers.conv_into(net.conv4, s.b, features, Padding::none);
        });
        run_dense_layers(net.dense5, net.heads, cropped_.size());
        out.clear();
        for (std::size_t i = 0; i < cropped_.size(); ++i) {
            const float* o = heads_.map().at(static_cast<int>(i), 0);
            const float score = mtcnn::face_probability(o);
            if (!(score > options_.thresholds[2])) continue;
            const std::array<float, 4>& b = cropped_[i].box;
            // Landmarks are fractions of the box before its regression, measured with "+1" sizes.
            const float w = b[2] - b[0] + 1.0f, h = b[3] - b[1] + 1.0f;
            Face f = face(mtcnn::regress_box(b, {o[2], o[3], o[4], o[5]}, 1.0f), score);
            for (int n = 0; n < 5; ++n) f.landmarks[n] = {w * o[6 + n] + b[0] - 1.0f, h * o[11 + n] + b[1] - 1.0f};
            out.push_back(f);
        }
        nms(out, 0.7f, NmsRule{1.0f, true}, kAll, face_sort_);
    }

    // A candidate inside a stage: its box, score and the box regression the stage's net predicted,
    // which is applied after the stage's NMS.
    struct Proposal {
        std::array<float, 4> box;
        float score;
        std::array<float, 4> regression;
    };
    // One lane's or thread's memory for one net at a time: its input, two maps the layers alternate
    // between (float, or uint8 between int8 convs), P-Net's heads; the runner of its layers (with
    // its own scratch for a float map quantised for an int8 conv), the area-resampling tables of
    // its input and P-Net's per-level NMS.
    struct NetScratch {
        // The nets' convs are unpadded, their pools clip partial windows and P-Net's heads are
        // read pixel by pixel: nothing reads the rings of these maps, so re-shaping them (every
        // layer of every crop and pyramid level) leaves the rings be.
        explicit NetScratch(const KernelSet& kernels) : layers(kernels) {
            for (LayerMap* map : {&input, &a, &b}) map->set_ring_read(false);
            heads.set_ring_read(false);
        }
        LayerMap input, a, b;
        FeatureBuffer heads;
        LayerRunner layers;
        std::vector<AreaSpan> spans_x, spans_y;
        AreaRowPlan area;
        std::vector<std::uint32_t> area_columns; // the row kernels' scratch
        // set_input's row before it goes to the input map (the kernels write whole vectors).
        std::vector<float> row_floats;
        std::vector<std::uint8_t> row_bytes;
        SortScratch<Proposal> sort;
    };

    // P-Net and R-Net's NMS: torchvision's IoU, areas (x2 - x1) * (y2 - y1).
    static constexpr NmsRule kPlainIou{0.0f, false};
    static constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

    static Face face(const std::array<float, 4>& box, float score) {
        Face f;
        f.box = box;
        f.score = score;
        return f;
    }

    // The network input for `region` of the image, read by the net's first conv `reader`:
    // area-resampled to out_w x out_h and normalised (colour order, mean, scale) straight from the
    // 8-bit pixels into the input map, as floats (three a pixel, packed) or, for an int8 reader,
    // as bytes in its input quantisation (a float map of three channels would have to be copied
    // into a padded one before quantize_int8 could read it). The windows' sums come from the
    // image's summed-area table, image_sums_, a row at a time (kernels/area_resample.hpp).
    void set_input(const mtcnn::CropRect& region, int out_w, int out_h, const ConvLayer& reader, NetScratch& s) const {
        const MtcnnModel& m = *model_;
        area_spans(region.w, out_w, s.spans_x);
        area_spans(region.h, out_h, s.spans_y);
        plan_area_row(s.spans_x, m.source_channel, m.mean, m.scale, s.area);
        s.area_columns.resize(static_cast<std::size_t>(s.area.entries));
        const auto table_rows = [&](int y) {
            const AreaSpan sy = s.spans_y[static_cast<std::size_t>(y)];
            return std::make_tuple(image_sums_.at(region.x, region.y + sy.begin), image_sums_.at(region.x, region.y + sy.end),
                                   static_cast<float>(sy.end - sy.begin));
        };
        s.input.quantized = reader.quantized();
        if (s.input.quantized) {
            s.input.bytes.resize(out_h, out_w, 3, reader.int8.input);
            const QuantizedMap& in = s.input.bytes.map();
            s.row_bytes.resize(static_cast<std::size_t>(s.area.padded()));
            for (int y = 0; y < out_h; ++y) {
                const auto [top, bottom, rows] = table_rows(y);
                kernels_->area_row_int8(top, bottom, rows, s.area, s.area_columns.data(), in.q, s.row_bytes.data());
                for (int x = 0; x < out_w; ++x) std::memcpy(in.at(y, x), s.row_bytes.data() + x * 3, 3);
            }
        } else {
            s.input.floats.resize(out_h, out_w, 3, 1);
            const FeatureMap& in = s.input.floats.map();
            s.row_floats.resize(static_cast<std::size_t>(s.area.padded()));
            for (int y = 0; y < out_h; ++y) {
                const auto [top, bottom, rows] = table_rows(y);
                kernels_->area_row(top, bottom, rows, s.area, s.area_columns.data(), s.row_floats.data());
                std::memcpy(in.at(y, 0), s.row_floats.data(), static_cast<std::size_t>(s.area.values) * sizeof(float)); // packed: three floats a pixel
            }
        }
    }

    // A k x k max-pool, stride 2, on float or uint8 maps (a uint8 map keeps its quantisation).
    void pool(int k, const LayerMap& in, LayerMap& out) const {
        const int oh = maxpool_out_size(in.h(), k, 2), ow = maxpool_out_size(in.w(), k, 2);
        out.quantized = in.quantized;
        if (in.quantized) {
            out.bytes.resize(oh, ow, in.bytes.map().c, in.bytes.map().q);
            (k == 2 ? kernels_->maxpool2x2_s2_int8 : kernels_->maxpool3x3_s2_int8)(in.bytes.map(), out.bytes.map(), 1);
        } else {
            out.floats.resize(oh, ow, in.floats.map().c);
            (k == 2 ? kernels_->maxpool2x2_s2 : kernels_->maxpool3x3_s2)(in.floats.map(), out.floats.map(), 1);
        }
    }

    void run_pnet(NetScratch& s) const {
        const MtcnnModel::PNet& net = model_->pnet;
        s.layers.conv(net.conv1, s.input, s.a, Padding::none);
        pool(2, s.a, s.b);
        s.layers.conv(net.conv2, s.b, s.a, Padding::none);
        s.layers.conv(net.conv3, s.a, s.b, Padding::none);
        s.layers.conv(net.heads, s.b.floats.map(), s.heads);
    }

    // Every cell of P-Net's output whose face probability reaches thresholds[0], in row-major
    // order, as the image box its 12 x 12 window covers: cell (x, y) at `scale` is
    // floor((2x + 1) / scale), floor((2y + 1) / scale), floor((2x + 12) / scale),
    // floor((2y + 12) / scale), in float as upstream. Replaces the contents of `out`.
    void pnet_proposals(const FeatureMap& heads, double scale, std::vector<Proposal>& out) const {
        const float s = static_cast<float>(scale);
        out.clear();
        for (int y = 0; y < heads.h; ++y)
            for (int x = 0; x < heads.w; ++x) {
                const float* o = heads.at(y, x);
                const float score = mtcnn::face_probability(o);
                if (!(score >= options_.thresholds[0])) continue;
                const float fx = static_cast<float>(2 * x), fy = static_cast<float>(2 * y);
                out.push_back({{std::floor((fx + 1) / s), std::floor((fy + 1) / s), std::floor((fx + 12) / s),
                                std::floor((fy + 12) / s)},
                               score,
                               {o[2], o[3], o[4], o[5]}});
            }
    }

    // Which lane runs each pyramid level (level_lane_): largest level first, each to the lane with
    // the least work so far, a level's work being its area. Levels shrink by factor^2 in area, so
    // the first is about half the work and two lanes split it level 0 | the rest. A lane is one
    // item of the parallel loop, with its own scratch; the rule is fixed rather than dynamic so
    // that a lane meets the same levels every frame: its scratch, sized by the largest it met, is
    // warm after one frame, whichever thread runs it.
    void assign_levels(const Image& image, int lanes) {
        level_lane_.assign(scales_.size(), 0);
        lane_work_.assign(static_cast<std::size_t>(lanes), 0.0);
        for (std::size_t level = 0; level < scales_.size(); ++level) {
            const auto least = std::min_element(lane_work_.begin(), lane_work_.end());
            *least += static_cast<double>(mtcnn::level_size(image.width, scales_[level])) * mtcnn::level_size(image.height, scales_[level]);
            level_lane_[level] = static_cast<int>(least - lane_work_.begin());
        }
    }

    // Grows the maps and resampling tables of the first `count` scratches to the largest any of
    // them has. The crop loop gives crops to threads dynamically, so which scratch met which
    // crops changes from frame to frame; after this, that never makes a frame allocate.
    void grow_scratch_alike(int count) {
        const auto first = scratch_.begin(), last = scratch_.begin() + count;
        for (LayerMap NetScratch::*map : {&NetScratch::input, &NetScratch::a, &NetScratch::b}) {
            std::size_t most = 0;
            for (auto s = first; s != last; ++s) most = std::max(most, ((*s).*map).floats.capacity_floats());
            for (auto s = first; s != last; ++s) ((*s).*map).floats.reserve(most);
        }
        const auto reserve_most = [&](auto vector_of) { // vector_of(scratch) -> one of its vectors
            std::size_t most = 0;
            for (auto s = first; s != last; ++s) most = std::max(most, vector_of(*s).capacity());
            for (auto s = first; s != last; ++s) vector_of(*s).reserve(most);
        };
        reserve_most([](NetScratch& s) -> auto& { return s.spans_x; });
        reserve_most([](NetScratch& s) -> auto& { return s.spans_y; });
        reserve_most([](NetScratch& s) -> auto& { return s.area.first; });
        reserve_most([](NetScratch& s) -> auto& { return s.area.last; });
        reserve_most([](NetScratch& s) -> auto& { return s.area.width; });
        reserve_most([](NetScratch& s) -> auto& { return s.area.mean; });
        reserve_most([](NetScratch& s) -> auto& { return s.area.scale; });
        reserve_most([](NetScratch& s) -> auto& { return s.area_columns; });
        reserve_most([](NetScratch& s) -> auto& { return s.row_floats; });
        reserve_most([](NetScratch& s) -> auto& { return s.row_bytes; });
    }

    // Sizes the per-thread scratch for a loop of `tasks` and returns how many threads it uses.
    int thread_scratch(int tasks) {
        const int threads = std::max(1, std::min(options_.threads, tasks));
        while (static_cast<int>(scratch_.size()) < threads) {
            scratch_.emplace_back(*kernels_);
            scratch_.back().layers.set_observer(observer_);
        }
        return threads;
    }

    // Crops every candidate (mtcnn::crop_rect) of the image image_sums_ holds, area-resamples the
    // crop to size x size into a scratch's input and runs `conv_layers` on it, which writes the
    // net's last conv output into the rows it is given of features_: one input of the batch that
    // run_dense_layers then reads. Candidates with an empty crop (a box entirely outside the
    // image) are dropped; the rest are left in cropped_, in order, one per batch item. Crops are
    // independent, so threads take them in turn.
    template <class ConvLayers>
    void run_on_crops(const std::vector<Face>& candidates, int size, const ConvLayer& first_conv, const PackedDense& first_dense,
                      ConvLayers&& conv_layers) {
        cropped_.clear();
        crops_.clear();
        for (const Face& c : candidates) {
            const mtcnn::CropRect r = mtcnn::crop_rect(c.box, image_sums_.width, image_sums_.height); // the image's size
            if (r.empty()) continue;
            cropped_.push_back(c);
            crops_.push_back(r);
        }
        const int items = static_cast<int>(crops_.size());
        features_.resize(items * first_dense.in_h, first_dense.in_w, first_dense.cin);
        // The crops run in the order of their place in the image (bands of kCropBand rows, each
        // left to right), not in their candidates' score order: a face's crops, and its
        // neighbours', then follow one another and read the same rows of the summed-area table (12
        // bytes a pixel, beyond L2 for VGA), which the previous crop left in cache. Crop i's
        // result still goes to row i of features_.
        constexpr int kCropBand = 32;
        crop_order_.resize(crops_.size());
        std::iota(crop_order_.begin(), crop_order_.end(), 0);
        std::sort(crop_order_.begin(), crop_order_.end(), [&](int a, int b) {
            const mtcnn::CropRect &ra = crops_[static_cast<std::size_t>(a)], &rb = crops_[static_cast<std::size_t>(b)];
            return std::make_tuple(ra.y / kCropBand, ra.x, a) < std::make_tuple(rb.y / kCropBand, rb.x, b);
        });
        const int threads = thread_scratch(items);
        parallel_for_workers(0, items, threads, [&](int n, int worker) {
            const int i = crop_order_[static_cast<std::size_t>(n)];
            NetScratch& s = scratch_[static_cast<std::size_t>(worker)];
            set_input(crops_[static_cast<std::size_t>(i)], size, size, first_conv, s);
            FeatureMap item = features_.map();
            item.data = item.at(i * first_dense.in_h, 0);
            item.h = first_dense.in_h;
            conv_layers(s, item);
        });
        grow_scratch_alike(threads);
    }

    // The dense layers on the first `items` inputs of features_; heads_ row i holds input i's outputs.
    void run_dense_layers(const PackedDense& hidden, const PackedDense& heads, std::size_t items) {
        if (items == 0) return;
        const int n = static_cast<int>(items);
        FeatureMap batch = features_.map();
        batch.h = n * hidden.in_h;
        hidden_.resize(n, 1, hidden.cout);
        kernels_->dense(batch, hidden, hidden_.map(), options_.threads);
        heads_.resize(n, 1, heads.cout);
        kernels_->dense(hidden_.map(), heads, heads_.map(), options_.threads);
    }

    std::shared_ptr<const MtcnnModel> model_;
    MtcnnOptions options_;
    const KernelSet* kernels_;
    CalibrationObserver observer_;
    // Scratch memory, reused from call to call: each lane's maps for its pyramid levels, each
    // thread's for the crop it is on; the batch of crops' last conv outputs and the dense layers' outputs; the
    // pyramid's scales, which lane runs each level (and their work) and each level's proposals;
    // a stage's proposals, the candidates it cropped and their crops; P-Net's and R-Net's output;
    // the sort buffers.
    std::vector<NetScratch> scratch_;
    FeatureBuffer features_, hidden_, heads_;
    std::vector<double> scales_, lane_work_;
    std::vector<int> level_lane_;
    std::vector<std::vector<Proposal>> per_level_;
    std::vector<Proposal> proposals_;
    std::vector<Face> cropped_, proposed_, refined_;
    std::vector<mtcnn::CropRect> crops_;
    std::vector<int> crop_order_;
    SortScratch<Proposal> proposal_sort_;
    SortScratch<Face> face_sort_;
    SummedAreaTable image_sums_; // of the image the running stage reads (set_input)
};

} // namespace facet
