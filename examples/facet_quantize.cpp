// facet-quantize: turns a float32 RetinaFace or MTCNN file, or a landmark graph's, into an int8
// one (weights/FORMAT.md, "int8"), calibrated by running the float network on images.
//
// Exit status: 0 on success, 1 when an input (model, image, output path) is bad, 2 on a usage error.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <facet/facet.hpp>
#include <facet/io/files.hpp>
#include <facet/io/weights_writer.hpp>

#include "cli_common.hpp"

namespace {

using facet::cli::parse_number;
using facet::cli::UsageError;

const char* const kUsage = R"(usage: facet-quantize IN.facet OUT.facet --calibrate IMAGE... [options]

Writes OUT.facet, the RetinaFace or MTCNN of IN.facet (float32) with its convs in int8: weights
symmetric per output channel, activations uint8 with a scale and zero point per conv input,
measured by running the float network on the calibration images (RetinaFace at the detector's
default size, longer side 640; MTCNN's whole cascade with the file's defaults) and on crops of
their largest faces. RetinaFace's fused stem (first conv, first block, second depthwise) and
heads stay float32; so do MTCNN's heads and dense layers (its convs are int8 unless --keep-fp32).

A landmark graph (model "graph": PFLD-GhostOne, face_landmark_68) is calibrated on the face crops
FaceLandmarker feeds it for every face --detector finds in the calibration images; its dense 1x1
and 3x3 convs that read a map (not the image) go int8, the others stay float32. --method,
--percentile, --minmax and --keep-fp32 (regexes over op names) apply; the RetinaFace-only options
(--face-crops, --no-equalise, bias correction) do not.

options:
  --calibrate IMAGE...  calibration images (at least one; every argument after it up to the next option)
  --method M            how an activation range is chosen from its values: 'percentile' (default:
                        the --percentile and 100 - --percentile quantiles, so that a few outliers
                        do not spread the 256 levels), 'entropy' (the lower end as 'percentile',
                        the upper end where 256 levels lose least information: least
                        Kullback-Leibler divergence) or 'minmax' (the extremes)
  --percentile P        for 'percentile' and 'entropy', in [90, 100] (default 99.99)
  --minmax REGEX        the input range of every conv whose module name contains a match of
                        REGEX is its min/max whatever --method says (convs reading one map must
                        agree); repeatable
  --face-crops N        also calibrate on squares around the N largest faces the float network
                        finds in each image, 1.6 and 2.5 times the face's side, so that the
                        calibration sees faces filling the frame (default 4; 0: none)
  --no-equalise         skip RetinaFace's cross-layer equalisation of the backbone's channel ranges
                        (an exact rescaling of the float network that int8 needs far fewer levels
                        for; MTCNN has none)
  --keep-fp32 REGEX     keep float32 every conv whose module name contains a match of REGEX
                        (ECMAScript syntax, e.g. 'fpn\.', '^ssh' or '^onet\.conv1'; a pointwise
                        keeps its depthwise too); repeatable
  --no-bias-correction  skip the bias correction (each int8 layer's bias moved, in network order,
                        by how far the means of its output before the activation drift from the
                        float network's on the calibration images)
  --detector FILE       a graph file: the RetinaFace file whose faces are calibrated on (required)
  -h, --help            this help
)";

struct Args {
    std::string in, out, method = "percentile";
    std::string detector; // a landmark graph's calibration faces' detector
    std::vector<std::string> images;
    std::vector<std::string> keep_fp32, minmax; // regular expressions
    double percentile = 99.99;
    int face_crops = 4;
    bool equalise = true;
    bool correct_bias = true;
};

Args parse_args(int argc, char** argv) {
    Args a;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError(arg + " wants a value");
            return argv[++i];
        };
        const auto regex_value = [&](std::vector<std::string>& to) {
            to.push_back(value());
            try {
                std::regex(to.back());
            } catch (const std::regex_error& e) {
                throw UsageError(arg + " '" + to.back() + "' is no regular expression (" + e.what() + ")");
            }
        };
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            std::exit(0);
        } else if (arg == "--calibrate") {
            while (i + 1 < argc && argv[i + 1][0] != '-') a.images.push_back(argv[++i]);
        } else if (arg == "--method") {
            a.method = value();
            if (a.method != "percentile" && a.method != "minmax" && a.method != "entropy")
                throw UsageError("--method must be 'percentile', 'entropy' or 'minmax', got '" + a.method + "'");
        } else if (arg == "--percentile") {
            a.percentile = parse_number(arg, value(), 90.0, 100.0);
        } else if (arg == "--no-equalise") {
            a.equalise = false;
        } else if (arg == "--no-bias-correction") {
            a.correct_bias = false;
        } else if (arg == "--keep-fp32") {
            regex_value(a.keep_fp32);
        } else if (arg == "--minmax") {
            regex_value(a.minmax);
        } else if (arg == "--detector") {
            a.detector = value();
        } else if (arg == "--face-crops") {
            a.face_crops = facet::cli::parse_int(arg, value(), 0, 64);
        } else if (!arg.empty() && arg[0] == '-') {
            throw UsageError("unknown option '" + arg + "'");
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() != 2) throw UsageError("wants IN.facet and OUT.facet");
    if (a.images.empty()) throw UsageError("wants --calibrate with at least one image");
    a.in = positional[0];
    a.out = positional[1];
    return a;
}

// The values one conv's input took over the calibration images: their extremes (first pass) and
// a histogram between them (second pass, for the percentiles).
struct InputRange {
    static constexpr int kBins = 8192;
    float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
    std::vector<double> histogram;

    template <class Fn>
    static void for_each_value(const facet::FeatureMap& m, Fn&& fn) {
        for (int y = 0; y < m.h; ++y)
            for (int x = 0; x < m.w; ++x)
                for (int c = 0; c < m.c; ++c) fn(m.at(y, x)[c]);
    }
    void see_extremes(const facet::FeatureMap& m) {
        for_each_value(m, [&](float v) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        });
    }
    void see_histogram(const facet::FeatureMap& m) {
        histogram.resize(kBins);
        const double width = (static_cast<double>(hi) - lo) / kBins;
        for_each_value(m, [&](float v) {
            const int bin = width > 0 ? static_cast<int>((v - lo) / width) : 0;
            histogram[static_cast<std::size_t>(std::clamp(bin, 0, kBins - 1))] += 1;
        });
    }
    // The values below which `fraction` and above which 1 - `fraction` of the samples lie, to a bin.
    std::pair<float, float> quantiles(double fraction) const {
        double total = 0;
        for (double n : histogram) total += n;
        const double width = (static_cast<double>(hi) - lo) / kBins;
        double below = 0;
        int first = 0, last = kBins - 1;
        for (; first < kBins - 1 && below + histogram[first] <= fraction * total; ++first) below += histogram[first];
        double above = 0;
        for (; last > 0 && above + histogram[last] <= fraction * total; --last) above += histogram[last];
        return {static_cast<float>(lo + first * width), static_cast<float>(lo + (last + 1) * width)};
    }
    // The range whose uint8 grid loses least information (TensorRT's entropy calibration, Migacz
    // 2017): the upper end minimising the Kullback-Leibler divergence between the histogram clipped
    // there (the clipped mass in its last bin) and that histogram merged into 256 levels and spread
    // back evenly over the bins that held values. The lower end is the `low_fraction` quantile:
    // the maps' negative side is leaky ReLU's, a tenth of the positive one's.
    std::pair<float, float> least_divergence(double low_fraction) const {
        constexpr int kLevels = 256, kStep = 8;
        const double width = (static_cast<double>(hi) - lo) / kBins;
        const float low = quantiles(low_fraction).first;
        const int first = std::clamp(static_cast<int>((low - lo) / width), 0, kBins - kLevels);
        double best = std::numeric_limits<double>::infinity();
        int best_end = kBins;
        std::vector<double> p, q;
        // As TensorRT's (2048 bins, the end from bin 128 on): the clipped range keeps at least a
        // sixteenth of the positive extreme, else the dense negative side alone wins.
        const int zero = std::clamp(static_cast<int>(-lo / width), 0, kBins - 1);
        const int shortest_end = std::max(first + kLevels, zero + (kBins - zero) / 16);
        for (int end = kBins; end >= shortest_end; end -= kStep) {
            p.assign(histogram.begin() + first, histogram.begin() + end);
            for (int i = end; i < kBins; ++i) p.back() += histogram[static_cast<std::size_t>(i)];
            for (int i = 0; i < first; ++i) p.front() += histogram[static_cast<std::size_t>(i)];
            const int n = end - first;
            q.assign(p.size(), 0.0);
            for (int level = 0; level < kLevels; ++level) {
                const int b0 = level * n / kLevels, b1 = (level + 1) * n / kLevels;
                double mass = 0;
                int used = 0;
                for (int b = b0; b < b1; ++b) {
                    mass += p[static_cast<std::size_t>(b)];
                    used += p[static_cast<std::size_t>(b)] > 0;
                }
                for (int b = b0; b < b1; ++b)
                    if (p[static_cast<std::size_t>(b)] > 0) q[static_cast<std::size_t>(b)] = mass / used;
            }
            double total = 0, divergence = 0;
            for (double v : p) total += v;
            for (std::size_t b = 0; b < p.size(); ++b)
                if (p[b] > 0) divergence += p[b] / total * std::log(p[b] / q[b]);
            if (divergence < best) {
                best = divergence;
                best_end = end;
            }
        }
        return {static_cast<float>(lo + first * width), static_cast<float>(lo + best_end * width)};
    }
};

// uint8 quantisation covering [lo, hi] and zero (the padding must be exact).
facet::QuantParams activation_params(float lo, float hi) {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    const float scale = std::max(hi - lo, 1e-6f) / 255.0f;
    return {scale, std::clamp(static_cast<int>(std::nearbyint(-lo / scale)), 0, 255)};
}

// Runs `detector` (RetinaFace, Mtcnn) on every image; `see` gets each conv's input as the conv reads it.
template <class Detector>
void run_calibration(Detector& detector, const std::vector<facet::Image>& images, const facet::CalibrationObserver& see) {
    detector.set_calibration_observer(see);
    for (const facet::Image& image : images) detector.detect(image);
    detector.set_calibration_observer(nullptr);
}

// The same for a float network, whose every conv reads a float map.
template <class Detector>
void run_float_calibration(Detector& detector, const std::vector<facet::Image>& images,
                           const std::function<void(const std::string&, const facet::FeatureMap&)>& see) {
    run_calibration(detector, images, [&](const std::string& layer, const facet::LayerInput& in) { see(layer, *in.floats); });
}

// The mean of each channel of what every conv (or only `only`, when not empty) reads over the
// images, uint8 maps dequantised; and the convs in the order the network runs them.
struct InputMeans {
    std::map<std::string, std::vector<double>> means;
    std::vector<std::string> order;
};

template <class Detector>
InputMeans input_means(Detector& detector, const std::vector<facet::Image>& images, const std::string& only = {}) {
    InputMeans r;
    std::map<std::string, double> pixels;
    run_calibration(detector, images, [&](const std::string& layer, const facet::LayerInput& in) {
        if (!only.empty() && layer != only) return;
        std::vector<double>& sum = r.means[layer];
        if (sum.empty()) r.order.push_back(layer);
        const int h = in.floats ? in.floats->h : in.bytes->h, w = in.floats ? in.floats->w : in.bytes->w,
                  c = in.floats ? in.floats->c : in.bytes->c;
        sum.resize(static_cast<std::size_t>(c));
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int k = 0; k < c; ++k)
                    sum[static_cast<std::size_t>(k)] += in.floats ? in.floats->at(y, x)[k] : in.bytes->q.dequantize(in.bytes->at(y, x)[k]);
        pixels[layer] += static_cast<double>(h) * w;
    });
    for (auto& [layer, sum] : r.means)
        for (double& v : sum) v /= pixels[layer];
    return r;
}

std::string json_string(const std::string& s) {
    std::string out;
    facet::json::write_string(out, s);
    return out;
}

std::string json_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_string(items[i]);
    return out + "]";
}

std::string base_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// IN's metadata JSON text as stored (header: meta_offset at 24, meta_size at 32).
std::string metadata_text(const std::string& path) {
    const std::vector<std::uint8_t> bytes = facet::read_file(path, facet::WeightFile::kMaxFileSize, "weight file");
    std::uint64_t offset = 0, size = 0;
    std::memcpy(&offset, bytes.data() + 24, 8);
    std::memcpy(&size, bytes.data() + 32, 8);
    return std::string(reinterpret_cast<const char*>(bytes.data() + offset), size);
}

facet::TensorRecord record_of(const facet::WeightTensor& t) {
    const std::vector<std::uint32_t> shape(t.shape.begin(), t.shape.end());
    if (t.dtype == facet::DType::int32) return facet::TensorRecord::of(t.name, t.dtype, shape, t.ints, t.count);
    return facet::TensorRecord::of(t.name, t.dtype, shape, t.data, t.count);
}

// Cross-layer equalisation (Nagel et al. 2019, "Data-Free Quantization"): between a conv and the
// convs reading its output, channel c of the output is multiplied by s_c (its weights and bias;
// ReLU and leaky ReLU commute with a positive factor) and the readers' weights on channel c divided
// by it, so the float network computes the same function. MobileNet's channels differ in range by
// 100x and more, and one uint8 scale per tensor leaves the small ones a few levels; s_c =
// sqrt(largest / own range), at most kMaxEqualisation, brings them halfway up in log scale, which
// keeps the readers' per-output-channel weight scales from being stretched as much.
class Equaliser {
public:
    static constexpr float kMaxEqualisation = 16.0f;

    Equaliser(const facet::WeightFile& file) : file_(file) {}

    // Scales the output channels of `producer` by their ranges `amax` (measured at the readers'
    // input); `dense_readers` read them as input channels, `depthwise_readers` channel by channel.
    void equalise(const std::string& producer, const std::vector<float>& amax, const std::vector<std::string>& dense_readers,
                  const std::vector<std::string>& depthwise_readers) {
        float largest = 0;
        for (float r : amax) largest = std::max(largest, r);
        std::vector<float> s(amax.size(), 1.0f);
        for (std::size_t c = 0; c < amax.size(); ++c)
            if (amax[c] > 0) s[c] = std::clamp(std::sqrt(largest / amax[c]), 1.0f, kMaxEqualisation);
        scale_rows(producer + ".weight", s, false);
        scale_rows(producer + ".bias", s, false);
        for (const std::string& r : depthwise_readers) scale_rows(r + ".weight", s, true);
        for (const std::string& r : dense_readers) {
            std::vector<float>& w = values(r + ".weight");
            const std::size_t cout = static_cast<std::size_t>(file_.tensor(r + ".weight").shape[0]), cin = s.size();
            const std::size_t taps = w.size() / (cout * cin);
            for (std::size_t o = 0; o < cout; ++o)
                for (std::size_t c = 0; c < cin; ++c)
                    for (std::size_t t = 0; t < taps; ++t) w[(o * cin + c) * taps + t] /= s[c];
        }
    }

    // The file with the equalised tensors.
    std::vector<std::uint8_t> bytes(const std::string& metadata) const {
        std::vector<facet::TensorRecord> records;
        for (const facet::WeightTensor& t : file_.tensors()) {
            const auto e = edited_.find(t.name);
            if (e == edited_.end()) records.push_back(record_of(t));
            else records.push_back(facet::TensorRecord::of(t.name, t.dtype, {t.shape.begin(), t.shape.end()}, e->second.data(), e->second.size()));
        }
        return facet::write_weight_bytes(metadata, records, facet::format_version_for(records));
    }

private:
    std::vector<float>& values(const std::string& name) {
        auto it = edited_.find(name);
        if (it != edited_.end()) return it->second;
        const facet::WeightTensor& t = file_.tensor(name);
        return edited_[name] = std::vector<float>(t.data, t.data + t.count);
    }
    // Row c (the elements of outer index c) times s_c, or divided by it.
    void scale_rows(const std::string& name, const std::vector<float>& s, bool divide) {
        std::vector<float>& v = values(name);
        const std::size_t per_row = v.size() / s.size();
        for (std::size_t c = 0; c < s.size(); ++c)
            for (std::size_t i = 0; i < per_row; ++i) v[c * per_row + i] = divide ? v[c * per_row + i] / s[c] : v[c * per_row + i] * s[c];
    }

    const facet::WeightFile& file_;
    std::map<std::string, std::vector<float>> edited_;
};

// The largest |value| of each channel of every conv's input over the images.
std::map<std::string, std::vector<float>> channel_ranges(facet::RetinaFace& detector, const std::vector<facet::Image>& images) {
    std::map<std::string, std::vector<float>> amax;
    run_float_calibration(detector, images, [&](const std::string& layer, const facet::FeatureMap& m) {
        std::vector<float>& v = amax[layer];
        v.resize(static_cast<std::size_t>(m.c));
        InputRange::for_each_value(m, [&, c = 0](float x) mutable {
            v[static_cast<std::size_t>(c)] = std::max(v[static_cast<std::size_t>(c)], std::fabs(x));
            c = (c + 1) % m.c;
        });
    });
    return amax;
}

// Equalises every junction of the backbone after the fused stem: depthwise -> pointwise, and
// pointwise -> the next depthwise (and the FPN's lateral at a stage's end).
std::vector<std::uint8_t> equalised_file(const facet::WeightFile& file, const facet::RetinaFaceModel& model,
                                         const std::vector<facet::Image>& images, const std::string& metadata) {
    facet::RetinaFace detector(std::make_shared<const facet::RetinaFaceModel>(file));
    const auto amax = channel_ranges(detector, images);
    Equaliser e(file);
    const auto& blocks = model.blocks;
    for (std::size_t b = 1; b < blocks.size(); ++b) {
        e.equalise(blocks[b].dw.name, amax.at(blocks[b].pw.name), {blocks[b].pw.name}, {});
        const auto end = std::find(model.stage_end.begin(), model.stage_end.end(), static_cast<int>(b));
        std::vector<std::string> dense, depthwise;
        if (end != model.stage_end.end()) dense.push_back(model.fpn_output[static_cast<std::size_t>(end - model.stage_end.begin())].name);
        if (b + 1 < blocks.size()) depthwise.push_back(blocks[b + 1].dw.name);
        e.equalise(blocks[b].pw.name, amax.at(dense.empty() ? depthwise[0] : dense[0]), dense, depthwise);
    }
    return e.bytes(metadata);
}

// The layer a tensor belongs to, when its name ends with `suffix` ("body.stage1.0.0" of
// "body.stage1.0.0.weight"); else empty.
std::string layer_of(const std::string& tensor, const std::string& suffix) {
    if (tensor.size() <= suffix.size() || tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) != 0) return {};
    return tensor.substr(0, tensor.size() - suffix.size());
}

// A conv as facet-quantize writes it: weights int8, symmetric per output channel (max |w| at
// 127), and the uint8 quantisation of its input.
struct Int8Layer {
    std::vector<std::int8_t> weights;
    std::vector<float> weight_scale;
    facet::QuantParams input;

    static Int8Layer of(const facet::WeightTensor& t, facet::QuantParams input) {
        Int8Layer q;
        q.input = input;
        const std::size_t cout = static_cast<std::size_t>(t.shape[0]), per_channel = t.count / cout;
        q.weights.resize(t.count);
        q.weight_scale.resize(cout);
        for (std::size_t o = 0; o < cout; ++o) {
            float amax = 0;
            for (std::size_t i = 0; i < per_channel; ++i) amax = std::max(amax, std::fabs(t.data[o * per_channel + i]));
            // The format's smallest scale (kernels/int8_layout.hpp) for a channel of near-zero
            // weights: they round to 0, as they would to within 2^-40 anyway.
            q.weight_scale[o] = amax > 0 ? std::max(amax / 127.0f, facet::kMinInt8Scale) : 1.0f;
            for (std::size_t i = 0; i < per_channel; ++i)
                q.weights[o * per_channel + i] =
                    static_cast<std::int8_t>(std::clamp(std::nearbyint(t.data[o * per_channel + i] / q.weight_scale[o]), -127.0f, 127.0f));
        }
        return q;
    }
};

// `file` with the layers of `int8` in int8 and their biases moved by `bias_shift`.
std::vector<std::uint8_t> int8_file_bytes(const facet::WeightFile& file, const std::map<std::string, Int8Layer>& int8,
                                          const std::map<std::string, std::vector<float>>& bias_shift, const std::string& metadata) {
    std::vector<facet::TensorRecord> tensors;
    for (const facet::WeightTensor& t : file.tensors()) {
        const std::vector<std::uint32_t> shape(t.shape.begin(), t.shape.end());
        const auto quantized = int8.find(layer_of(t.name, ".weight"));
        const auto shift = bias_shift.find(layer_of(t.name, ".bias"));
        if (quantized != int8.end()) {
            const std::string& layer = quantized->first;
            const Int8Layer& q = quantized->second;
            const std::int32_t zero_point = q.input.zero_point;
            tensors.push_back(facet::TensorRecord::of(t.name, facet::DType::int8, shape, q.weights.data(), q.weights.size()));
            tensors.push_back(facet::TensorRecord::of(layer + ".weight_scale", facet::DType::float32, {shape[0]}, q.weight_scale.data(),
                                                      q.weight_scale.size()));
            tensors.push_back(facet::TensorRecord::of(layer + ".input_scale", facet::DType::float32, {1}, &q.input.scale, 1));
            tensors.push_back(facet::TensorRecord::of(layer + ".input_zero_point", facet::DType::int32, {1}, &zero_point, 1));
        } else if (shift != bias_shift.end()) {
            std::vector<float> b(t.data, t.data + t.count);
            for (std::size_t o = 0; o < b.size(); ++o) b[o] += shift->second[o];
            tensors.push_back(facet::TensorRecord::of(t.name, t.dtype, shape, b.data(), b.size()));
        } else {
            tensors.push_back(record_of(t));
        }
    }
    return facet::write_weight_bytes(metadata, tensors, facet::format_version_for(tensors));
}

// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", section 4.2, measured
// on the calibration images): rounding the weights and clipping the activations move the mean of
// a layer's output, and deeper layers add their drift to what they are fed. Each int8 layer, in
// the order the network runs them, gets its bias moved by the difference between the float
// layer's mean output before the activation (its weights' per-input-channel sums times the means
// of its float input) and the int8 layer's (its dequantised weights times the means of the uint8
// map it reads in the network whose earlier layers are already corrected). A conv is linear, so
// those means are exact up to the border, where both see the same zero padding.
// `float_network` (a RetinaFace or an Mtcnn) runs `file`.
template <class Detector>
std::map<std::string, std::vector<float>> corrected_biases(const facet::WeightFile& file, Detector& float_network,
                                                            const std::map<std::string, Int8Layer>& int8,
                                                            const std::vector<facet::Image>& images, const std::string& metadata) {
    const InputMeans float_means = input_means(float_network, images);
    std::map<std::string, std::vector<float>> shift;
    for (const std::string& layer : float_means.order) {
        const auto q = int8.find(layer);
        if (q == int8.end()) continue;
        const std::vector<std::uint8_t> bytes = int8_file_bytes(file, int8, shift, metadata);
        using Model = std::decay_t<decltype(float_network.model())>;
        Detector network(std::make_shared<const Model>(facet::WeightFile::from_bytes(bytes.data(), bytes.size(), "int8 network")));
        const InputMeans int8_means = input_means(network, images, layer);
        const std::vector<double>& int8_mean = int8_means.means.at(layer);
        const std::vector<double>& float_mean = float_means.means.at(layer);
        const facet::WeightTensor& w = file.tensor(layer + ".weight");
        const std::size_t cout = static_cast<std::size_t>(w.shape[0]), weight_cin = static_cast<std::size_t>(w.shape[1]);
        const std::size_t taps = w.count / (cout * weight_cin);
        const bool depthwise = weight_cin == 1 && float_mean.size() == cout && cout > 1; // input channel o feeds output o only
        std::vector<float>& s = shift[layer];
        s.assign(cout, 0.0f);
        for (std::size_t o = 0; o < cout; ++o) {
            double drift = 0;
            for (std::size_t i = 0; i < weight_cin; ++i) {
                double float_sum = 0, int8_sum = 0;
                for (std::size_t t = 0; t < taps; ++t) {
                    float_sum += w.data[(o * weight_cin + i) * taps + t];
                    int8_sum += q->second.weights[(o * weight_cin + i) * taps + t];
                }
                const std::size_t channel = depthwise ? o : i;
                drift += float_sum * float_mean[channel] - int8_sum * q->second.weight_scale[o] * int8_mean[channel];
            }
            s[o] = static_cast<float>(drift);
        }
    }
    return shift;
}

// Calibration for large faces: squares centred on the `count` largest faces `detector` finds in
// `image`, 1.6 and 2.5 times the face's longer side (clipped to the image). Group photos hold
// faces of a few dozen pixels, and the coarsest level's maps then never see the values a face
// filling the frame makes: clipped there, a portrait's box grew 8% (README, "int8 RetinaFace").
template <class Detector>
std::vector<facet::Image> face_crops(Detector& detector, const facet::Image& image, int count) {
    std::vector<facet::Face> faces = detector.detect(image);
    const auto side = [](const facet::Face& f) { return std::max(f.box[2] - f.box[0], f.box[3] - f.box[1]); };
    std::stable_sort(faces.begin(), faces.end(), [&](const facet::Face& a, const facet::Face& b) { return side(a) > side(b); });
    faces.resize(std::min(faces.size(), static_cast<std::size_t>(count)));
    std::vector<facet::Image> crops;
    for (const facet::Face& f : faces)
        for (const float margin : {1.6f, 2.5f}) {
            const float cx = (f.box[0] + f.box[2]) / 2, cy = (f.box[1] + f.box[3]) / 2, half = side(f) * margin / 2;
            const int x0 = std::clamp(static_cast<int>(cx - half), 0, image.width), x1 = std::clamp(static_cast<int>(cx + half), 0, image.width);
            const int y0 = std::clamp(static_cast<int>(cy - half), 0, image.height), y1 = std::clamp(static_cast<int>(cy + half), 0, image.height);
            if (x1 - x0 < 2 || y1 - y0 < 2) continue;
            facet::Image& crop = crops.emplace_back(x1 - x0, y1 - y0);
            for (int y = y0; y < y1; ++y) std::copy(image.pixel(x0, y), image.pixel(x1 - 1, y) + 3, crop.pixel(0, y - y0));
        }
    return crops;
}

// The convs facet-quantize converts (`ranges`' keys) whose name has a match of one of `patterns`,
// the values of `option`; a pattern matching none is an error (a misspelt name).
std::set<std::string> layers_matching(const std::vector<std::string>& patterns, const std::map<std::string, InputRange>& ranges,
                                      const std::string& option) {
    std::set<std::string> layers;
    for (const std::string& pattern : patterns) {
        const std::regex re(pattern);
        bool matched = false;
        for (const auto& [layer, range] : ranges)
            if (std::regex_search(layer, re)) {
                layers.insert(layer);
                matched = true;
            }
        if (!matched) throw facet::Error(option + " " + pattern + ": no such conv among those facet-quantize converts");
    }
    return layers;
}

// A conv's input quantisation from the values it saw: by --method, or min/max for a --minmax layer.
facet::QuantParams calibrated_params(const Args& a, const InputRange& r, bool minmax) {
    const double outside = 1.0 - a.percentile / 100.0;
    const auto [lo, hi] = a.method == "minmax" || minmax ? std::pair<float, float>{r.lo, r.hi}
                          : a.method == "percentile"     ? r.quantiles(outside)
                                                         : r.least_divergence(outside);
    return activation_params(lo, hi);
}

std::vector<std::string> image_names(const Args& a) {
    std::vector<std::string> names;
    for (const std::string& path : a.images) names.push_back(base_name(path));
    return names;
}

// `original` (IN's metadata) with "precision": "int8" and "quantization" (FORMAT.md, "int8"): how
// the ranges were chosen, `model_fields` (the model's own, each after ", "), and the layers in
// each precision.
std::string quantized_metadata(const Args& a, const std::string& original, const std::set<std::string>& minmax,
                               const std::string& model_fields, const std::vector<std::string>& int8_layers,
                               const std::vector<std::string>& fp32_layers) {
    std::string quantization = "\"precision\": \"int8\", \"quantization\": {\"method\": " + json_string(a.method);
    if (a.method != "minmax") quantization += ", \"percentile\": " + facet::cli::format_number(a.percentile);
    quantization += ", \"minmax_layers\": " + json_list({minmax.begin(), minmax.end()}) + model_fields +
                    ", \"weights\": \"int8 symmetric per output channel\"" +
                    ", \"activations\": \"uint8 asymmetric per tensor\", \"int8_layers\": " + json_list(int8_layers) +
                    ", \"float32_layers\": " + json_list(fp32_layers) + "}, ";
    std::string metadata = original;
    const std::size_t brace = metadata.find('{');
    if (brace == std::string::npos) throw facet::Error(a.in + ": metadata is not a JSON object");
    metadata.insert(brace + 1, quantization);
    return metadata;
}

// The faces a landmark graph is calibrated on: each calibration image with every face --detector's
// RetinaFace finds in it.
struct CalibrationFaces {
    std::vector<facet::Image> images;
    std::vector<std::vector<facet::Face>> faces;
    std::size_t count = 0;
};

CalibrationFaces calibration_faces(const Args& a) {
    if (a.detector.empty()) throw facet::Error(a.in + ": a graph file is calibrated on face crops: it wants --detector RETINAFACE.facet");
    facet::RetinaFace detector(facet::RetinaFaceModel::from_file(a.detector));
    CalibrationFaces c;
    for (const std::string& path : a.images) {
        c.images.push_back(facet::load_image(path));
        c.faces.push_back(detector.detect(c.images.back()));
        c.count += c.faces.back().size();
    }
    if (c.count == 0) throw facet::Error("the calibration images hold no face " + a.detector + " finds");
    return c;
}

// Runs `model` through FaceLandmarker on every calibration face; `see` gets each conv's input.
void run_landmark_calibration(const std::shared_ptr<const facet::GraphModel>& model, const CalibrationFaces& c,
                              const facet::CalibrationObserver& see) {
    facet::FaceLandmarker landmarker(model);
    landmarker.set_calibration_observer(see);
    for (std::size_t i = 0; i < c.images.size(); ++i) landmarker.landmarks(c.images[i], c.faces[i]);
}

// The dense convs of `model` graph.hpp can run in int8 (1x1 and 3x3, no PReLU, reading a map rather
// than the image), by op name. (The converters name an op's weight <op>.weight, so its int8
// tensors are <op>.weight_scale ..., FORMAT.md's <L>.)
std::set<std::string> int8_candidates(const facet::GraphModel& model) {
    std::set<std::string> layers;
    for (const facet::GraphOp& op : model.ops()) {
        if (op.kind != facet::GraphOp::Kind::conv || op.conv.k() == 2 || op.inputs[0] == model.input_value() ||
            op.conv.fp32.epilogue.kind == facet::Activation::prelu)
            continue;
        layers.insert(op.name);
    }
    return layers;
}

// The calibration images of `a`, then the face crops of each (--face-crops) that `finder` finds.
template <class Detector>
std::vector<facet::Image> calibration_images(const Args& a, Detector& finder) {
    std::vector<facet::Image> images;
    for (const std::string& path : a.images) images.push_back(facet::load_image(path));
    if (a.face_crops > 0)
        for (std::size_t i = 0, files = images.size(); i < files; ++i)
            for (facet::Image& crop : face_crops(finder, images[i], a.face_crops)) images.push_back(std::move(crop));
    return images;
}

// The input range of every conv of the float network `detector` runs, over `images`.
template <class Detector>
std::map<std::string, InputRange> input_ranges(Detector& detector, const std::vector<facet::Image>& images, const Args& a) {
    std::map<std::string, InputRange> ranges;
    run_float_calibration(detector, images, [&](const std::string& layer, const facet::FeatureMap& m) { ranges[layer].see_extremes(m); });
    if (a.method != "minmax")
        run_float_calibration(detector, images, [&](const std::string& layer, const facet::FeatureMap& m) { ranges[layer].see_histogram(m); });
    return ranges;
}

// Which convs become int8 (with their weights and input quantisation) and which stay float32,
// each list in the file's order.
struct Int8Selection {
    std::map<std::string, Int8Layer> int8;
    std::vector<std::string> int8_layers, fp32_layers;
};

Int8Selection select_int8(const facet::WeightFile& file, const std::map<std::string, InputRange>& ranges,
                          const std::set<std::string>& keep_fp32, const std::set<std::string>& minmax, const Args& a) {
    Int8Selection s;
    for (const facet::WeightTensor& t : file.tensors()) {
        const std::string layer = layer_of(t.name, ".weight");
        const auto range = ranges.find(layer);
        if (range == ranges.end()) continue;
        if (keep_fp32.count(layer)) {
            s.fp32_layers.push_back(layer);
            continue;
        }
        s.int8.emplace(layer, Int8Layer::of(t, calibrated_params(a, range->second, minmax.count(layer) > 0)));
        s.int8_layers.push_back(layer);
    }
    if (s.int8_layers.empty()) throw facet::Error("--keep-fp32 keeps every conv float32: nothing is left to quantise");
    return s;
}

// IN's metadata with "precision": "int8" and the "quantization" record (weights/FORMAT.md).
std::string int8_metadata(const Args& a, const std::set<std::string>& minmax, const Int8Selection& selection, bool equalised) {
    return quantized_metadata(a, metadata_text(a.in), minmax,
                              std::string(", \"channel_equalisation\": ") + (equalised ? "true" : "false") +
                                  ", \"bias_correction\": " + (a.correct_bias ? "true" : "false") +
                                  ", \"calibration_images\": " + json_list(image_names(a)) +
                                  ", \"face_crops\": " + std::to_string(a.face_crops),
                              selection.int8_layers, selection.fp32_layers);
}

// Writes OUT: `file` (the float network `detector` runs) with the selected convs int8, their
// biases corrected unless --no-bias-correction. `always_float` says what else stays float32.
template <class Detector>
void write_int8_file(const Args& a, const facet::WeightFile& file, Detector& detector, const std::vector<facet::Image>& images,
                     const Int8Selection& selection, const std::set<std::string>& minmax, bool equalised, const std::string& always_float) {
    using Model = std::decay_t<decltype(detector.model())>;
    const std::string metadata = int8_metadata(a, minmax, selection, equalised);
    // The int8 layers must fit together (the model's load checks that convs reading one uint8 map
    // agree on its quantisation) before the bias correction runs them; and what is written must
    // load as the model it is meant to be.
    const auto check_loads = [&](const std::vector<std::uint8_t>& bytes) {
        try {
            Model(facet::WeightFile::from_bytes(bytes.data(), bytes.size(), a.out));
        } catch (const facet::Error& e) {
            if (a.minmax.empty()) throw;
            throw facet::Error(std::string(e.what()) + " (--minmax must match every conv reading one map)");
        }
    };
    check_loads(int8_file_bytes(file, selection.int8, {}, metadata));
    std::map<std::string, std::vector<float>> bias_shift;
    if (a.correct_bias) bias_shift = corrected_biases(file, detector, selection.int8, images, metadata);
    const std::vector<std::uint8_t> bytes = int8_file_bytes(file, selection.int8, bias_shift, metadata);
    check_loads(bytes);
    facet::save_weight_file(a.out, bytes);
    std::cerr << "facet-quantize: " << a.out << ": " << selection.int8_layers.size() << " convs int8, " << selection.fp32_layers.size()
              << " kept float32 (and " << always_float << "), calibrated on " << images.size() << " images ("
              << images.size() - a.images.size() << " of them face crops)\n";
}

// A landmark graph (usage): int8 weights for the candidate convs, ranges from the face crops.
int quantise_graph(const Args& a, const facet::WeightFile& original) {
    const auto model = std::make_shared<const facet::GraphModel>(original);
    if (model->precision != "fp32") throw facet::Error(a.in + ": is already " + model->precision + " (facet-quantize wants a float32 file)");
    const CalibrationFaces faces = calibration_faces(a);
    const std::set<std::string> candidates = int8_candidates(*model);
    std::map<std::string, InputRange> ranges;
    const auto calibrate = [&](void (InputRange::*see)(const facet::FeatureMap&)) {
        run_landmark_calibration(model, faces, [&](const std::string& op, const facet::LayerInput& in) {
            if (candidates.count(op)) (ranges[op].*see)(*in.floats);
        });
    };
    calibrate(&InputRange::see_extremes);
    if (a.method != "minmax") calibrate(&InputRange::see_histogram);
    const std::set<std::string> keep_fp32 = layers_matching(a.keep_fp32, ranges, "--keep-fp32");
    const std::set<std::string> minmax = layers_matching(a.minmax, ranges, "--minmax");
    const Int8Selection selection = select_int8(original, ranges, keep_fp32, minmax, a);
    // select_int8 finds a conv by its weight tensor, <op>.weight as the converters name it.
    if (selection.int8_layers.size() + selection.fp32_layers.size() != ranges.size())
        throw facet::Error(a.in + ": a conv's weight is not named <op>.weight (its int8 tensors are named after it)");
    const std::string metadata =
        quantized_metadata(a, metadata_text(a.in), minmax,
                           ", \"calibration_images\": " + json_list(image_names(a)) + ", \"detector\": " +
                               json_string(base_name(a.detector)) + ", \"calibration_faces\": " + std::to_string(faces.count),
                           selection.int8_layers, selection.fp32_layers);
    const std::vector<std::uint8_t> bytes = int8_file_bytes(original, selection.int8, {}, metadata);
    facet::GraphModel(facet::WeightFile::from_bytes(bytes.data(), bytes.size(), a.out)); // what is written loads
    facet::save_weight_file(a.out, bytes);
    std::cerr << "facet-quantize: " << a.out << ": " << selection.int8_layers.size() << " convs int8, " << selection.fp32_layers.size()
              << " kept float32 (and every other op), calibrated on " << faces.count << " faces of " << a.images.size() << " images\n";
    return 0;
}

int quantise_retinaface(const Args& a, const facet::WeightFile& original) {
    const auto original_model = std::make_shared<const facet::RetinaFaceModel>(original);
    if (original_model->precision != "fp32")
        throw facet::Error(a.in + ": is already " + original_model->precision + " (facet-quantize wants a float32 file)");
    if (original_model->deformable_context) throw facet::Error(a.in + ": deformable context modules have no int8 form");
    facet::RetinaFace finder(original_model);
    const std::vector<facet::Image> images = calibration_images(a, finder);

    // The float network to quantise: the file's, or its equalised twin (the same function).
    const std::vector<std::uint8_t> equalised = a.equalise ? equalised_file(original, *original_model, images, metadata_text(a.in))
                                                           : std::vector<std::uint8_t>();
    const facet::WeightFile file = a.equalise ? facet::WeightFile::from_bytes(equalised.data(), equalised.size(), a.in + " (equalised)")
                                              : facet::WeightFile::load(a.in);
    facet::RetinaFace detector(std::make_shared<const facet::RetinaFaceModel>(file));
    const std::map<std::string, InputRange> ranges = input_ranges(detector, images, a);
    std::set<std::string> keep_fp32 = layers_matching(a.keep_fp32, ranges, "--keep-fp32");
    const std::set<std::string> minmax = layers_matching(a.minmax, ranges, "--minmax");
    // An int8 depthwise writes uint8 for its pointwise only: a float32 pointwise keeps its depthwise float32.
    for (const auto& block : original_model->blocks)
        if (keep_fp32.count(block.pw.name)) keep_fp32.insert(block.dw.name);
    write_int8_file(a, file, detector, images, select_int8(file, ranges, keep_fp32, minmax, a), minmax, a.equalise,
                    "the stem and heads");
    return 0;
}

// MTCNN: the three nets' convs (calibrated on what the whole cascade feeds them: P-Net the
// pyramid, R-Net and O-Net the crops of the previous stage's candidates); heads and dense layers
// stay float32.
int quantise_mtcnn(const Args& a, const facet::WeightFile& file) {
    const auto model = std::make_shared<const facet::MtcnnModel>(file);
    if (model->precision != "fp32") throw facet::Error(a.in + ": is already " + model->precision + " (facet-quantize wants a float32 file)");
    facet::Mtcnn detector(model);
    const std::vector<facet::Image> images = calibration_images(a, detector);
    const std::map<std::string, InputRange> ranges = input_ranges(detector, images, a);
    const std::set<std::string> keep_fp32 = layers_matching(a.keep_fp32, ranges, "--keep-fp32");
    const std::set<std::string> minmax = layers_matching(a.minmax, ranges, "--minmax");
    write_int8_file(a, file, detector, images, select_int8(file, ranges, keep_fp32, minmax, a), minmax, false,
                    "the heads and dense layers");
    return 0;
}

int run(const Args& a) {
    const facet::WeightFile original = facet::WeightFile::load(a.in);
    if (original.model_kind() == "mtcnn") return quantise_mtcnn(a, original);
    if (original.model_kind() == "graph") return quantise_graph(a, original);
    return quantise_retinaface(a, original);
}

} // namespace

int main(int argc, char** argv) { return facet::cli::tool_main("facet-quantize", argc, argv, parse_args, run); }
