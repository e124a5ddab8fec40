// facet: face attributes from face-api's nets (npm @vladmandic/face-api, MIT), imported as graph
// models by converters/tfjs2facet.py: FaceExpressionNet (seven expression probabilities) and
// AgeGenderNet (age in years, gender with its probability).
//
// Each net sees a face as face-api cuts it (src/dom/extractFaceTensors.ts, then
// NetInput.toBatchTensor(112, true)): the detector's box, clipped to the image and floored (x, y,
// width, height each), padded with black to a square centred on it (the extra column or row after
// it), resized to 112 x 112 by TensorFlow's bilinear resize (align_corners and half_pixel_centers
// false: source pixel = destination pixel x side / 112), in float, never rounded to 8 bits; then
// (pixel - mean) / 255 as the file says. The model file may widen the box first (metadata
// "attributes.crop_margin", FORMAT.md): by that fraction of its longer side on each side.
//
// A FaceExpression or AgeGender holds its network's buffers: one per thread (the model is shared).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../io/image.hpp"
#include "../post/face.hpp"
#include "graph.hpp"

namespace facet {

// A face box as face-api crops it: x, y, width, height in image pixels, after clipping and flooring.
struct FaceApiBox {
    int x = 0, y = 0, width = 0, height = 0;
};

// face-api's Box.clipAtImageBorders: the part of [x, x + width) x [y, y + height) inside the image,
// each of x, y, width, height floored. Throws when nothing of the box is left.
inline FaceApiBox faceapi_clip_box(double x, double y, double width, double height, int image_width, int image_height) {
    const double cx = std::max(x, 0.0), cy = std::max(y, 0.0);
    const double w = std::min(x + width - cx, image_width - cx), h = std::min(y + height - cy, image_height - cy);
    if (!(std::floor(w) >= 1 && std::floor(h) >= 1)) // face-api drops such a face
        throw Error("the face box (" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(width) + " x " +
                    std::to_string(height) + ") leaves less than a pixel of the " + std::to_string(image_width) + "x" +
                    std::to_string(image_height) + " image");
    return {static_cast<int>(std::floor(cx)), static_cast<int>(std::floor(cy)), static_cast<int>(std::floor(w)),
            static_cast<int>(std::floor(h))};
}

namespace detail {

// One axis of TF.js's bilinear resize of the padded square to `size`: output i reads the square's
// pixels first and second (as offsets into the box along the axis, -1 in the padding), `frac` of the
// way from the first to the second.
struct BilinearTap {
    int first = -1, second = -1;
    double frac = 0;
};

// tf.image.resizeBilinear's sampling (align_corners and half_pixel_centers false, as TF.js's CPU
// backend computes it): output i reads square coordinate i x side / size, its floor and ceiling.
inline std::vector<BilinearTap> faceapi_taps(int size, int side, int pad_before, int extent) {
    std::vector<BilinearTap> taps(static_cast<std::size_t>(size));
    const double ratio = static_cast<double>(side) / size;
    const auto in_box = [&](int s) { return s - pad_before >= 0 && s - pad_before < extent ? s - pad_before : -1; };
    for (int i = 0; i < size; ++i) {
        const double f = ratio * i;
        const int s0 = static_cast<int>(std::floor(f)), s1 = std::min(side - 1, static_cast<int>(std::ceil(f)));
        taps[static_cast<std::size_t>(i)] = {in_box(s0), in_box(s1), f - s0};
    }
    return taps;
}

} // namespace detail

// Fills `net`'s input with face-api's crop of `box` (see the top of this file); `net`'s input must
// be square.
inline void set_faceapi_input(GraphExecutor& net, const Image& image, const FaceApiBox& box) {
    const GraphModel& m = net.model();
    const FeatureMap& in = net.input();
    const int size = in.h;
    // padToSquare(centred): the shorter side gets round(diff / 2) after and the rest before.
    const int side = std::max(box.width, box.height), diff = side - std::min(box.width, box.height);
    const int before = diff - static_cast<int>(std::floor(diff * 0.5 + 0.5));
    const int left = box.width < box.height ? before : 0, top = box.height < box.width ? before : 0;
    const std::vector<detail::BilinearTap> xs = detail::faceapi_taps(size, side, left, box.width);
    const std::vector<detail::BilinearTap> ys = detail::faceapi_taps(size, side, top, box.height);
    // A row of the box (null in the padding) and its pixel x, channel c (0 in the padding).
    const auto row = [&](int y) { return y >= 0 ? image.pixel(box.x, box.y + y) : nullptr; };
    const auto value = [](const std::uint8_t* pixels, int x, int c) { return pixels && x >= 0 ? double(pixels[3 * x + c]) : 0.0; };
    for (int oy = 0; oy < size; ++oy) {
        const detail::BilinearTap& ty = ys[static_cast<std::size_t>(oy)];
        const std::uint8_t *upper = row(ty.first), *lower = row(ty.second);
        for (int ox = 0; ox < size; ++ox) {
            const detail::BilinearTap& tx = xs[static_cast<std::size_t>(ox)];
            float* out = in.at(oy, ox);
            for (int c = 0; c < 3; ++c) {
                const int source = m.source_channel[c];
                // In double, in TF.js's order of operations, then stored as float32.
                const double a = value(upper, tx.first, source), b = value(upper, tx.second, source);
                const double d = value(lower, tx.first, source), e = value(lower, tx.second, source);
                const double top_value = a + (b - a) * tx.frac, bottom_value = d + (e - d) * tx.frac;
                const float pixel = static_cast<float>(top_value + (bottom_value - top_value) * ty.frac);
                out[c] = (pixel - m.mean[c]) * m.scale[c];
            }
        }
    }
}

namespace detail {

// The network of one face attribute model, the labels of its outputs, and the crop rule.
class FaceAttributeNet {
public:
    // `outputs`: the graph outputs the kind needs, each with its label count (0: a single value).
    FaceAttributeNet(const std::string& path, const std::string& kind, const std::vector<std::pair<std::string, int>>& outputs,
                     const KernelSet& kernels, int threads) {
        const WeightFile file = WeightFile::load(path);
        const auto model = std::make_shared<const GraphModel>(file);
        file.read_metadata("attributes", [&](const json::Value& m) {
            if (!m.has("attributes"))
                throw Error("no 'attributes': not a face attribute model (tfjs2facet.py --net " + kind + " writes one)");
            const json::Value& a = m["attributes"];
            crop_margin_ = a.has("crop_margin") ? detail::read_float(a["crop_margin"], "attributes crop_margin") : 0.0f;
            if (!(crop_margin_ >= 0.0f && crop_margin_ <= 1.0f)) throw Error("attributes crop_margin must be in [0, 1]");
            for (const auto& [name, label_count] : outputs) {
                if (!a.has(name)) throw Error("no 'attributes." + name + "': not face-api's " + kind + " model");
                std::vector<std::string> labels;
                if (label_count > 0)
                    for (const json::Value& l : a[name]["labels"].array()) labels.push_back(l.string());
                if (static_cast<int>(labels.size()) != label_count)
                    throw Error("attributes." + name + " has " + std::to_string(labels.size()) + " labels, expected " +
                                std::to_string(label_count));
                labels_.push_back(std::move(labels));
            }
            return 0;
        });
        model->require_square_input(path + ": a face attribute model");
        for (const auto& [name, label_count] : outputs) {
            const auto& o = model->outputs();
            // `wanted`: C++17 lambdas cannot capture a structured binding (clang refuses it).
            const auto it = std::find_if(o.begin(), o.end(), [&wanted = name](const GraphOutput& x) { return x.name == wanted; });
            if (it == o.end()) throw Error(path + ": the graph has no output '" + name + "'");
            const GraphValue& v = model->values()[it->value];
            if (v.h * v.w * v.c != std::max(label_count, 1))
                throw Error(path + ": output '" + name + "' has " + std::to_string(v.h * v.w * v.c) + " values, expected " +
                            std::to_string(std::max(label_count, 1)));
            output_index_.push_back(static_cast<std::size_t>(it - o.begin()));
        }
        net_ = std::make_unique<GraphExecutor>(model, kernels, threads);
        model_ = model;
        threads_ = threads;
    }
    // Another network on the same (shared, immutable) model, with buffers of its own.
    FaceAttributeNet(const FaceAttributeNet& other)
        : net_(std::make_unique<GraphExecutor>(other.model_, other.net_->kernels(), other.threads_)), model_(other.model_),
          threads_(other.threads_), output_index_(other.output_index_), labels_(other.labels_), crop_margin_(other.crop_margin_) {}
    FaceAttributeNet& operator=(const FaceAttributeNet&) = delete;

    // Runs the network on face-api's crop of `box` ([x1, y1, x2, y2], image pixels).
    void run(const Image& image, const std::array<float, 4>& box) {
        const double w = box[2] - box[0], h = box[3] - box[1], grow = crop_margin_ * std::max(w, h);
        last_box_ = faceapi_clip_box(box[0] - grow, box[1] - grow, w + 2 * grow, h + 2 * grow, image.width, image.height);
        set_faceapi_input(*net_, image, last_box_);
        net_->run();
    }
    // Runs the network on a crop that is already the input's size, as it is.
    void run_on_crop(const Image& crop) {
        net_->set_input(crop);
        net_->run();
    }

    // Output k (in the constructor's order) of the last run.
    std::vector<float> output(std::size_t k) const { return net_->output(output_index_.at(k)); }
    const std::vector<std::string>& labels(std::size_t k) const { return labels_.at(k); }
    const FaceApiBox& last_box() const { return last_box_; }
    float crop_margin() const { return crop_margin_; }

private:
    std::unique_ptr<GraphExecutor> net_;
    std::shared_ptr<const GraphModel> model_;
    int threads_ = 1;
    std::vector<std::size_t> output_index_;
    std::vector<std::vector<std::string>> labels_;
    float crop_margin_ = 0.0f;
    FaceApiBox last_box_;
};

} // namespace detail

// face-api's FaceExpressionNet: the probability of each expression (face-api's order: neutral, happy,
// sad, angry, fearful, disgusted, surprised), summing to 1.
class FaceExpression {
public:
    explicit FaceExpression(const std::string& path, const KernelSet& kernels = default_kernel_set(), int threads = 1)
        : net_(path, "face_expression", {{"expression", kExpressions}}, kernels, threads) {}
    // Another on the same weights, with its own buffers (one per thread).
    FaceExpression clone() const { return *this; }

    const std::vector<std::string>& labels() const { return net_.labels(0); }

    std::vector<float> probabilities(const Image& image, const Face& face) { return probabilities(image, face.box); }
    std::vector<float> probabilities(const Image& image, const std::array<float, 4>& box) {
        net_.run(image, box);
        return net_.output(0);
    }
    // On a crop of the network's input size (112 x 112), as face-api takes one.
    std::vector<float> probabilities_of_crop(const Image& crop) {
        net_.run_on_crop(crop);
        return net_.output(0);
    }

    // The box face-api's rule cut for the last face (for tests and inspection).
    const FaceApiBox& last_box() const { return net_.last_box(); }

private:
    static constexpr int kExpressions = 7;
    detail::FaceAttributeNet net_;
};

struct AgeGenderEstimate {
    float age = 0;                // years
    std::string gender;           // "male" or "female" (the file's labels)
    float gender_probability = 0; // of that gender, >= 0.5
};

// face-api's AgeGenderNet: the age the net regresses, and the more probable gender (face-api's
// predictAgeAndGender: male when its probability is above 0.5).
class AgeGender {
public:
    explicit AgeGender(const std::string& path, const KernelSet& kernels = default_kernel_set(), int threads = 1)
        : net_(path, "age_gender", {{"age", 0}, {"gender", 2}}, kernels, threads) {}
    // Another on the same weights, with its own buffers (one per thread).
    AgeGender clone() const { return *this; }

    AgeGenderEstimate estimate(const Image& image, const Face& face) { return estimate(image, face.box); }
    AgeGenderEstimate estimate(const Image& image, const std::array<float, 4>& box) {
        net_.run(image, box);
        return read();
    }
    AgeGenderEstimate estimate_of_crop(const Image& crop) {
        net_.run_on_crop(crop);
        return read();
    }

    const FaceApiBox& last_box() const { return net_.last_box(); }

private:
    AgeGenderEstimate read() const {
        const std::vector<float> gender = net_.output(1);
        const bool first = gender[0] > 0.5f;
        return {net_.output(0)[0], net_.labels(1)[first ? 0 : 1], first ? gender[0] : 1 - gender[0]};
    }
    detail::FaceAttributeNet net_;
};

} // namespace facet
