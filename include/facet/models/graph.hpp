// facet: graph models: networks imported from ONNX (converters/onnx2facet.py; the file's schema is
// weights/FORMAT.md, model "graph"), run op by op on the kernels of the hand-built models.
//
// GraphModel is what the file says, checked and prepared once: the ops in order with their weights
// repacked for the kernel each one runs on, every value's map shape, and a memory plan. Values
// live in a few buffers ("slots"): a value takes a free slot when its op runs and frees it after
// its last reader, so maps whose lifetimes do not overlap share memory, and a slot is sized for the
// largest value it ever holds. A concatenation's inputs are, where safe, written by their ops
// straight into their channel slices of it, so most concatenations copy nothing
// (plan_in_place_concats). GraphModel is immutable and shared between executors.
// GraphExecutor is a model plus its own slots, allocated when it is made: a run allocates nothing.
// One executor must not run on two threads at once; make one per thread.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"
#include "../io/image.hpp"
#include "../io/weights.hpp"
#include "../kernels/conv_weights_bf16.hpp"
#include "../kernels/kernel_set.hpp"
#include "../kernels/map_copy.hpp"
#include "layers.hpp"

namespace facet {

struct GraphValue {
    std::string name;
    int h = 0, w = 0, c = 0;
    int cstride = 0;        // floats between pixels: round_up(c, 16), 3 for an unpadded image input,
                            // more for a concatenation whose last input's padding lanes reach further
    int slot = -1;          // activations: the executor's buffer holding it
    int constant = -1;      // constants: index into GraphModel::constants()
    int within = -1;        // written in place into this concatenation (a value), or -1
    int channel_offset = 0; // ... at this channel
};

struct GraphOp {
    enum class Kind {
        conv,           // dense 1x1, 2x2, 3x3 (conv_nhwc, Winograd; int8: 1x1 and 3x3, conv_int8.hpp)
        depthwise,      // depthwise 3x3 (dwconv3x3)
        grouped_conv,   // any other convolution (grouped_conv)
        dense,          // fully connected (dense)
        activation,     // an activation on its own (elementwise)
        add,
        mul,
        concat_channels,
        concat_rows,
        avg_pool,
        max_pool,
        resize_nearest,
        softmax,
        flatten,        // a map into one vector, in ONNX's (channel-major) or storage order
        rows,           // an NHWC map regrouped into rows (map_copy.hpp)
        pad,            // zeros appended in rows, columns and channels (map_copy.hpp's pad_end)
    };
    Kind kind = Kind::conv;
    std::string name;
    std::vector<int> inputs;
    int output = -1;
    ConvLayer conv;                  // float32 (or bf16), or int8 reading its input quantised and writing float
    PackedDepthwise depthwise;
    PackedGroupedConv grouped;
    PackedDense dense;
    MapActivation activation;
    AlignedFloats activation_slopes; // a standalone PReLU's, padded to the channel stride
    PoolGeometry pool;
    bool channel_major = false;      // flatten
    std::vector<bool> in_place;      // concat_channels: per input, written in place by its op (no copy)
    bool zero_padding = true;        // concat_channels: zero the padding lanes (no in-place input did)
    int view_inset = 0;              // conv, depthwise: 1 or 2 reads the input from pixel (1, 1) on, that
                                     // many pixels fewer a side (see load_op)
};

struct GraphOutput {
    std::string name;          // the ONNX output's name
    int value = -1;
    std::vector<int> onnx_shape;
    bool channel_major = false; // its ONNX order runs channel-major through the map ([1, C, H, W], H * W > 1)
};

class GraphModel {
public:
    explicit GraphModel(const WeightFile& file) { load(file); }
    static std::shared_ptr<const GraphModel> from_file(const std::string& path) {
        return std::make_shared<const GraphModel>(WeightFile::load(path));
    }

    const std::vector<GraphValue>& values() const { return values_; }
    const std::vector<GraphOp>& ops() const { return ops_; }
    const std::vector<GraphOutput>& outputs() const { return outputs_; }
    const std::vector<FeatureBuffer>& constants() const { return constants_; }
    const GraphValue& input() const { return values_[input_]; }
    int input_value() const { return input_; }

    // For the face models that take a square crop: an Error saying `model_kind` ("a landmark
    // model") takes one unless the input is square.
    void require_square_input(const std::string& model_kind) const {
        const GraphValue& in = input();
        if (in.h != in.w)
            throw Error(model_kind + " takes a square crop; this one's input is " + std::to_string(in.w) + "x" + std::to_string(in.h));
    }

    // Input normalisation: network channel c = (pixel[source_channel[c]] - mean[c]) * scale[c].
    std::array<int, 3> source_channel{};
    std::array<float, 3> mean{}, scale{};

    // The file's "precision": "fp32" (absent), "bf16" (converters/quantize_bf16.py) or "int8"
    // (facet-quantize). Each conv and dense layer is loaded by its weight tensor's dtype: bfloat16
    // weights are widened to float32 (exactly), and pointwise and 3x3 stride-1 dense convs also run
    // on the bf16 kernels where the CPU has AVX512-BF16. int8 weights (weights/FORMAT.md, "int8") are
    // for the dense 1x1 and 3x3 convs that have int8 kernels, on any map but the unpadded image: such
    // a conv quantises its float input on the way in and writes float (its requantisation dequantises),
    // so the memory plan is the float graph's. An int8 weight anywhere else is refused by name.
    std::string precision = "fp32";

    // For a landmark network (metadata "landmarks", FORMAT.md): how much larger than the detector's
    // box the square it was trained on is, as a fraction of the box's longer side added on each side.
    float landmark_crop_margin = 0.0f;

    // The memory plan: per slot, the value with the most floats assigned to it (the executor
    // sizes the slot for it).
    const std::vector<int>& slot_largest_value() const { return slot_largest_value_; }

private:
    void load(const WeightFile& f);
    int value_index(const std::string& name, const std::string& op) const;
    void load_op(const WeightFile& f, const json::Value& spec);
    void check_op_shape(const GraphOp& op) const;
    void plan_in_place_concats();
    void plan_memory();

    std::vector<GraphValue> values_;
    std::vector<GraphOp> ops_;
    std::vector<GraphOutput> outputs_;
    std::vector<FeatureBuffer> constants_;
    std::vector<int> slot_largest_value_;
    int input_ = -1;
    std::map<std::string, int> value_by_name_;
    std::vector<bool> written_; // while loading: values the input, a constant or an op defines
};

namespace detail {

// Largest map a value may be: 2^28 floats (1 GiB), so that no size computation overflows; and
// the most all of a graph's maps may take together (its memory plan's slots): 1 GiB too, as a
// handful of maps under the first limit, each kept alive, would otherwise ask for gigabytes.
constexpr double kMaxValueFloats = 268435456.0;
constexpr double kMaxPlannedFloats = 268435456.0;
// Largest span of a conv's window, (kernel - 1) x dilation + 1: no map is wider, and it keeps every
// geometry product of the conv kernels within an int. (A pooling window must fit the padded input.)
constexpr long long kMaxWindowSpan = 1 << 24;

// A whole number in [lo, hi] from the metadata.
inline int read_int(const json::Value& v, int lo, int hi, const std::string& what) {
    const double d = v.number();
    if (!(d >= lo && d <= hi) || d != static_cast<int>(d))
        throw Error(what + " must be a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return static_cast<int>(d);
}

inline std::vector<int> read_ints(const json::Value& v, std::size_t count, const std::string& what) {
    if (v.array().size() != count) throw Error(what + " must have " + std::to_string(count) + " numbers");
    std::vector<int> out;
    for (const json::Value& x : v.array()) out.push_back(read_int(x, 0, 1 << 24, what));
    return out;
}

// A finite number a float holds.
inline float read_float(const json::Value& v, const std::string& what) {
    const double d = v.number();
    if (!(std::fabs(d) <= std::numeric_limits<float>::max())) throw Error(what + " is not a finite float");
    return static_cast<float>(d);
}

inline std::size_t value_floats(const GraphValue& v) { return static_cast<std::size_t>(v.h + 2) * (v.w + 2) * v.cstride; }

// Ops whose kernels write exactly lanes [0, round_up(c, 16)) of each output pixel, and so can write
// into a channel slice of a wider map.
inline bool writes_channel_slices(GraphOp::Kind kind) {
    using K = GraphOp::Kind;
    switch (kind) {
    case K::conv: case K::depthwise: case K::grouped_conv: case K::dense: case K::activation: case K::add: case K::mul:
    case K::avg_pool: case K::max_pool: case K::resize_nearest: case K::softmax: return true;
    case K::concat_channels: case K::concat_rows: case K::flatten: case K::rows: case K::pad: break;
    }
    return false;
}

} // namespace detail

inline int GraphModel::value_index(const std::string& name, const std::string& op) const {
    const auto it = value_by_name_.find(name);
    if (it == value_by_name_.end()) throw Error("op '" + op + "' reads or writes '" + name + "', which the graph does not list");
    return it->second;
}

inline void GraphModel::load(const WeightFile& f) {
    f.expect_model("graph");
    f.read_metadata("graph", [&](const json::Value& m) {
        const json::Value& in = m["input"];
        const std::string& color = in["color"].string();
        if (color != "bgr" && color != "rgb") throw Error("input color must be 'bgr' or 'rgb'");
        for (int c = 0; c < 3; ++c) {
            source_channel[c] = color == "bgr" ? 2 - c : c;
            mean[c] = detail::read_float(in["mean"][c], "input mean");
            scale[c] = detail::read_float(in["scale"][c], "input scale");
        }
        if (m.has("precision")) precision = m["precision"].string();
        if (precision != "fp32" && precision != "bf16" && precision != "int8")
            throw Error("precision '" + precision + "' is not supported by graph models (fp32, bf16 or int8 are)");
        if (m.has("landmarks")) {
            landmark_crop_margin = detail::read_float(m["landmarks"]["crop_margin"], "landmarks crop_margin");
            if (!(landmark_crop_margin >= 0.0f && landmark_crop_margin <= 1.0f)) throw Error("landmarks crop_margin must be in [0, 1]");
        }
        const json::Value& g = m["graph"];
        for (const auto& [name, shape] : g["values"].object()) {
            const std::vector<int> s = detail::read_ints(shape, 3, "the shape of value '" + name + "'");
            if (s[0] < 1 || s[1] < 1 || s[2] < 1) throw Error("value '" + name + "' has an empty shape");
            if (static_cast<double>(s[0] + 2) * (s[1] + 2) * round_up(s[2], kChannelAlign) > detail::kMaxValueFloats)
                throw Error("value '" + name + "' is larger than facet's limit of 1 GiB a map");
            value_by_name_[name] = static_cast<int>(values_.size());
            values_.push_back({name, s[0], s[1], s[2]});
        }
        written_.assign(values_.size(), false);
        for (const auto& [name, tensor_name] : g["constants"].object()) {
            const int index = value_index(name, "constants");
            GraphValue& v = values_[index];
            written_[index] = true;
            const WeightTensor& t = f.tensor(tensor_name.string(), {v.h, v.w, v.c});
            v.constant = static_cast<int>(constants_.size());
            constants_.emplace_back(v.h, v.w, v.c);
            const FeatureMap& map = constants_.back().map();
            for (int y = 0; y < v.h; ++y)
                for (int x = 0; x < v.w; ++x) std::copy_n(t.data + (static_cast<std::size_t>(y) * v.w + x) * v.c, v.c, map.at(y, x));
        }
        input_ = value_index(g["input"]["name"].string(), "input");
        written_[input_] = true;
        GraphValue& input = values_[input_];
        if (input.c != 3 || input.constant >= 0) throw Error("the graph input must be a 3-channel image");
        for (const json::Value& op : g["ops"].array()) load_op(f, op);
        for (const json::Value& o : g["outputs"].array()) {
            GraphOutput out;
            out.name = o["name"].string();
            out.value = value_index(o["value"].string(), "outputs");
            if (out.value == input_ || values_[out.value].constant >= 0 || !written_[out.value])
                throw Error("output '" + out.name + "' is not written by any op");
            for (const json::Value& d : o["onnx_shape"].array()) out.onnx_shape.push_back(detail::read_int(d, 1, 1 << 30, "an output's shape"));
            out.channel_major = o["order"].string() == "chw";
            const GraphValue& v = values_[out.value];
            double count = 1;
            for (int d : out.onnx_shape) count *= d;
            if (count != static_cast<double>(v.h) * v.w * v.c)
                throw Error("output '" + out.name + "' has another element count than its value '" + v.name + "'");
            outputs_.push_back(out);
        }
        if (outputs_.empty()) throw Error("the graph has no outputs");
        return 0;
    });
    for (GraphValue& v : values_) v.cstride = round_up(v.c, kChannelAlign);
    // A float dense conv reads only the input's real channels, so the image can be stored unpadded
    // (3 floats a pixel instead of 16) when nothing else reads it. (An int8 conv's quantisation
    // reads whole 16-lane groups.)
    const bool only_convs_read_input = std::all_of(ops_.begin(), ops_.end(), [&](const GraphOp& op) {
        return std::find(op.inputs.begin(), op.inputs.end(), input_) == op.inputs.end() ||
               (op.kind == GraphOp::Kind::conv && !op.conv.quantized()) || op.kind == GraphOp::Kind::grouped_conv;
    });
    if (only_convs_read_input) values_[input_].cstride = values_[input_].c;
    plan_in_place_concats();
    plan_memory();
    double planned = 0;
    for (int v : slot_largest_value_) planned += static_cast<double>(detail::value_floats(values_[v]));
    if (planned > detail::kMaxPlannedFloats)
        throw Error(f.path() + ": the graph's maps need " + std::to_string(static_cast<long long>(planned * 4 / (1 << 20))) +
                    " MiB together, more than facet's limit of 1 GiB");
}

inline Epilogue read_graph_epilogue(const WeightFile& f, const json::Value& a, int channels, bool* standalone_only) {
    const std::string& kind = a["kind"].string();
    *standalone_only = false;
    if (kind == "none") return {};
    if (kind == "relu") return {Activation::relu, 0.0f};
    if (kind == "leaky_relu") {
        const float slope = detail::read_float(a["slope"], "leaky_relu slope");
        *standalone_only = !(slope >= 0.0f && slope <= 1.0f); // the epilogue's max(x, slope * x) needs 0 <= slope <= 1
        return {Activation::leaky_relu, slope};
    }
    if (kind == "prelu") return {Activation::prelu, 0.0f, f.tensor(a["slopes"].string(), {channels}).data};
    throw Error("activation '" + kind + "' is not an epilogue");
}

// A conv's or dense layer's weight tensor as floats: float32, or bfloat16 widened (exactly). An
// int8 one is refused: `int8_refusal` says why this op has none.
inline LayerWeights read_graph_weights(const WeightFile& f, const std::string& name, const std::vector<int>& shape,
                                       const std::string& int8_refusal) {
    if (f.dtype_of(name) == DType::int8) throw Error("weight '" + name + "' is int8, but " + int8_refusal);
    return read_layer_weights(f, name, shape);
}

inline void GraphModel::load_op(const WeightFile& f, const json::Value& spec) {
    GraphOp op;
    op.name = spec["name"].string();
    const std::string& kind = spec["op"].string();
    try {
        op.output = value_index(spec["output"].string(), op.name);
        if (spec.has("inputs"))
            for (const json::Value& name : spec["inputs"].array()) op.inputs.push_back(value_index(name.string(), op.name));
        else
            op.inputs.push_back(value_index(spec["input"].string(), op.name));
        // Every input must be the graph input, a constant or an earlier op's output.
        for (int v : op.inputs)
            if (!written_[v]) throw Error("reads '" + values_[v].name + "' before any op writes it");
        GraphValue& out = values_[op.output];
        if (written_[op.output]) throw Error("writes '" + out.name + "', which is the input, a constant or another op's output");
        written_[op.output] = true;
        const GraphValue& in = values_[op.inputs[0]];
        if (kind == "conv" || kind == "dense") {
            bool standalone_only = false;
            const Epilogue epilogue = read_graph_epilogue(f, spec["activation"], out.c, &standalone_only);
            if (standalone_only) throw Error("a leaky ReLU slope outside [0, 1] cannot be a conv's epilogue");
            const float* bias = spec.has("bias") ? f.tensor(spec["bias"].string(), {out.c}).data : nullptr;
            if (kind == "dense") {
                if (in.h != 1 || in.w != 1) throw Error("a dense layer reads a vector (a 1 x 1 map)");
                const LayerWeights w = read_graph_weights(f, spec["weight"].string(), {out.c, in.c}, "a dense layer has no int8 kernel");
                op.kind = GraphOp::Kind::dense;
                op.dense = pack_dense(w.values.data(), bias, out.c, 1, 1, in.c, epilogue);
            } else {
                const std::vector<int> k = detail::read_ints(spec["kernel"], 2, "kernel");
                const std::vector<int> s = detail::read_ints(spec["stride"], 2, "stride");
                const std::vector<int> p = detail::read_ints(spec["pads"], 4, "pads");
                const std::vector<int> d = detail::read_ints(spec["dilation"], 2, "dilation");
                const int groups = detail::read_int(spec["groups"], 1, in.c, "groups");
                if (in.c % groups != 0 || out.c % groups != 0) throw Error("groups do not divide the channels");
                if (std::min({k[0], k[1], s[0], s[1], d[0], d[1]}) < 1) throw Error("kernel, stride and dilation must be positive");
                for (int axis : {0, 1})
                    if (static_cast<long long>(k[axis] - 1) * d[axis] + 1 > detail::kMaxWindowSpan)
                        throw Error("the kernel with its dilation spans more than 2^24 pixels");
                // TensorFlow's "same" padding at stride 2 pads a 3x3 conv by 0 before and 1 after on an
                // even size. Its output pixel y reads input rows 2y .. 2y + 2: the rows the symmetric
                // pad-1 kernel reads (2y - 1 .. 2y + 1) of the map seen from pixel (1, 1) on, whose
                // zero ring below and right is the input's own. So it runs on that view (inset 1).
                // A "valid" 3x3 conv (no pads, any stride up to 2) reads rows s y .. s y + 2: the rows
                // the pad-1 kernel reads of the map's interior, from pixel (1, 1) on and one pixel in
                // from each edge, its taps on the outermost pixels instead of the ring (inset 2, as
                // mtcnn.hpp's conv_valid).
                const bool three_by_three = d[0] == 1 && d[1] == 1 && k[0] == 3 && k[1] == 3 && s[0] == s[1] && s[0] <= 2;
                op.view_inset = !three_by_three                                    ? 0
                                : s[0] == 2 && p == std::vector<int>{0, 0, 1, 1} ? 1
                                : p == std::vector<int>{0, 0, 0, 0}              ? 2
                                                                                   : 0;
                const bool plain = op.view_inset > 0 || (d[0] == 1 && d[1] == 1 && k[0] == k[1] && s[0] == s[1] &&
                                                  std::all_of(p.begin(), p.end(), [&](int v) { return v == (k[0] - 1) / 2; }));
                const int stride = s[0], size = k[0];
                const bool dense = plain && groups == 1 && ((size <= 2 && stride == 1) || (size == 3 && stride <= 2));
                const std::string& weight = spec["weight"].string();
                const auto float_weights = [&] {
                    return read_graph_weights(f, weight, {out.c, in.c / groups, k[0], k[1]},
                                              "graph models run only dense 1x1 and 3x3 convs without PReLU in int8");
                };
                op.conv.name = op.name;
                if (dense && f.dtype_of(weight) == DType::int8 && size != 2 && epilogue.kind != Activation::prelu) {
                    // Its scales are named after the weight (FORMAT.md, "int8": <L>.weight_scale ...).
                    const std::string suffix = ".weight";
                    if (weight.size() <= suffix.size() || weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) != 0)
                        throw Error("int8 weight '" + weight + "' must be named <layer>.weight (its scales are <layer>.weight_scale ...)");
                    Int8ConvSource source = detail::read_int8_conv_weights(f, weight.substr(0, weight.size() - suffix.size()), in.c,
                                                                           out.c, size, epilogue);
                    source.bias = bias;
                    op.kind = GraphOp::Kind::conv;
                    op.conv.int8 = pack_conv_int8(source, out.c, in.c, size, stride, f.path() + ": op '" + op.name + "'");
                } else if (dense) {
                    const LayerWeights w = float_weights();
                    op.kind = GraphOp::Kind::conv;
                    op.conv.fp32 = pack_conv(w.values.data(), bias, out.c, in.c, size, stride, epilogue);
                    if (w.bf16) add_bf16_weights(op.conv.fp32); // a shape without a bf16 kernel runs widened
                } else if (plain && groups == in.c && groups == out.c && size == 3 && stride <= 2) {
                    const LayerWeights w = float_weights();
                    op.kind = GraphOp::Kind::depthwise;
                    op.depthwise = pack_depthwise(w.values.data(), bias, out.c, stride, epilogue);
                } else {
                    const LayerWeights w = float_weights();
                    op.view_inset = 0;
                    ConvGeometry g;
                    g.kernel_h = k[0]; g.kernel_w = k[1];
                    g.stride_h = s[0]; g.stride_w = s[1];
                    g.pad_top = p[0]; g.pad_left = p[1]; g.pad_bottom = p[2]; g.pad_right = p[3];
                    g.dilation_h = d[0]; g.dilation_w = d[1];
                    g.groups = groups;
                    op.kind = GraphOp::Kind::grouped_conv;
                    op.grouped = pack_grouped_conv(w.values.data(), bias, out.c, in.c, g, epilogue);
                }
            }
        } else if (kind == "activation") {
            op.kind = GraphOp::Kind::activation;
            const json::Value& a = spec["activation"];
            const std::string& name = a["kind"].string();
            if (name == "clip") {
                op.activation = {MapActivation::Kind::clip, {}, detail::read_float(a["min"], "clip min"), detail::read_float(a["max"], "clip max")};
                if (!(op.activation.low <= op.activation.high)) throw Error("clip min is above max");
            } else if (name == "sigmoid") {
                op.activation = {MapActivation::Kind::sigmoid, {}, 0.0f, 0.0f};
            } else {
                bool standalone_only = false;
                Epilogue e = read_graph_epilogue(f, a, out.c, &standalone_only);
                if (standalone_only) { // a leaky ReLU with slope outside [0, 1] is a PReLU of equal slopes
                    op.activation_slopes = make_aligned_floats(static_cast<std::size_t>(round_up(out.c, kChannelAlign)));
                    std::fill_n(op.activation_slopes.get(), out.c, e.slope);
                    e = {Activation::prelu, 0.0f, op.activation_slopes.get()};
                } else {
                    e = own_epilogue(e, out.c, round_up(out.c, kChannelAlign), op.activation_slopes);
                }
                op.activation = {MapActivation::Kind::epilogue, e, 0.0f, 0.0f};
            }
        } else if (kind == "add" || kind == "mul") {
            op.kind = kind == "add" ? GraphOp::Kind::add : GraphOp::Kind::mul;
        } else if (kind == "concat") {
            const std::string& axis = spec["axis"].string();
            if (axis != "channels" && axis != "rows") throw Error("concat axis must be 'channels' or 'rows'");
            op.kind = axis == "channels" ? GraphOp::Kind::concat_channels : GraphOp::Kind::concat_rows;
        } else if (kind == "avg_pool" || kind == "max_pool") {
            op.kind = kind == "avg_pool" ? GraphOp::Kind::avg_pool : GraphOp::Kind::max_pool;
            const std::vector<int> k = detail::read_ints(spec["kernel"], 2, "kernel");
            const std::vector<int> s = detail::read_ints(spec["stride"], 2, "stride");
            const std::vector<int> p = detail::read_ints(spec["pads"], 4, "pads");
            if (std::min({k[0], k[1], s[0], s[1]}) < 1) throw Error("kernel and stride must be positive");
            if (std::max(p[0], p[2]) >= k[0] || std::max(p[1], p[3]) >= k[1]) throw Error("pads must be smaller than the kernel");
            PoolGeometry& g = op.pool;
            g.kernel_h = k[0]; g.kernel_w = k[1];
            g.stride_h = s[0]; g.stride_w = s[1];
            g.pad_top = p[0]; g.pad_left = p[1]; g.pad_bottom = p[2]; g.pad_right = p[3];
            g.count_include_pad = kind == "avg_pool" && spec["count_include_pad"].boolean();
        } else if (kind == "resize_nearest") {
            op.kind = GraphOp::Kind::resize_nearest;
        } else if (kind == "softmax") {
            op.kind = GraphOp::Kind::softmax;
        } else if (kind == "flatten") {
            op.kind = GraphOp::Kind::flatten;
            op.channel_major = spec["order"].string() == "chw";
        } else if (kind == "rows") {
            op.kind = GraphOp::Kind::rows;
        } else if (kind == "pad") {
            op.kind = GraphOp::Kind::pad;
        } else {
            throw Error("unknown op kind '" + kind + "'");
        }
        check_op_shape(op);
    } catch (const Error& e) {
        throw Error("op '" + op.name + "' (" + kind + "): " + e.what());
    }
    ops_.push_back(std::move(op));
}

// The output shape each op computes from its inputs must be the one the file declares.
inline void GraphModel::check_op_shape(const GraphOp& op) const {
    const GraphValue& in = values_[op.inputs[0]];
    const GraphValue& out = values_[op.output];
    const auto expect = [&](bool ok, const std::string& what) {
        if (!ok) throw Error(what + " (input " + std::to_string(in.h) + "x" + std::to_string(in.w) + "x" + std::to_string(in.c) +
                             ", output " + std::to_string(out.h) + "x" + std::to_string(out.w) + "x" + std::to_string(out.c) + ")");
    };
    using K = GraphOp::Kind;
    const std::size_t inputs = op.inputs.size();
    const bool two = op.kind == K::add || op.kind == K::mul;
    const bool many = op.kind == K::concat_channels || op.kind == K::concat_rows;
    expect(two ? inputs == 2 : many ? inputs >= 1 : inputs == 1, "wrong number of inputs");
    if (op.kind != K::add && op.kind != K::mul)
        for (int v : op.inputs) expect(values_[v].constant < 0, "only add and mul read constants");
    // An inset conv's view must hold a pixel, or its taps would read past the zero ring.
    expect(std::min(in.h, in.w) > op.view_inset, op.view_inset == 1 ? "pads 0 before and 1 after need an input of at least 2x2"
                                                                    : "a 3x3 conv without pads needs an input of at least 3x3");
    switch (op.kind) {
    case K::conv: {
        const ConvLayer& w = op.conv;
        expect(in.c == w.cin() && out.h == conv_out_size(in.h - op.view_inset, w.k(), w.stride()) &&
                   out.w == conv_out_size(in.w - op.view_inset, w.k(), w.stride()),
               "output shape does not follow from the conv");
        break;
    }
    case K::depthwise:
        expect(in.c == out.c && out.h == conv_out_size(in.h - op.view_inset, 3, op.depthwise.stride) &&
                   out.w == conv_out_size(in.w - op.view_inset, 3, op.depthwise.stride),
               "output shape does not follow from the depthwise conv");
        break;
    case K::grouped_conv:
        expect(out.h == op.grouped.geometry.out_h(in.h) && out.w == op.grouped.geometry.out_w(in.w),
               "output shape does not follow from the conv");
        break;
    case K::dense: expect(out.h == 1 && out.w == 1, "a dense layer outputs a vector"); break;
    case K::activation:
    case K::softmax: expect(in.h == out.h && in.w == out.w && in.c == out.c, "shape changes"); break;
    case K::add:
    case K::mul: {
        const GraphValue& b = values_[op.inputs[1]];
        expect(in.h == out.h && in.w == out.w && in.c == out.c && b.c == out.c && in.constant < 0 &&
                   ((b.h == in.h && b.w == in.w) || (b.h == 1 && b.w == 1)),
               "operands do not match (the second must have the first's size or be one pixel)");
        break;
    }
    case K::concat_channels:
    case K::concat_rows: {
        long long total = 0;
        for (int v : op.inputs) {
            const GraphValue& x = values_[v];
            const bool channels = op.kind == K::concat_channels;
            expect(channels ? x.h == out.h && x.w == out.w : x.w == out.w && x.c == out.c, "inputs do not concatenate");
            total += channels ? x.c : x.h;
        }
        expect(total == (op.kind == K::concat_channels ? out.c : out.h), "inputs do not add up to the output");
        break;
    }
    case K::avg_pool:
    case K::max_pool: {
        const PoolGeometry& g = op.pool;
        // Floor or ceil mode (the converter decided): the last window must start inside the
        // input or its leading pad, so every window holds at least one input pixel.
        // The window must fit the padded input (ONNX's rule; a larger one has no floor count).
        const auto fits = [](int size, int o, int k, int s, int begin, int end) {
            const long long room = static_cast<long long>(size) + begin + end - k;
            if (room < 0) return false;
            const long long floor_count = room / s + 1;
            return o >= 1 && (o == floor_count || o == floor_count + 1) && static_cast<long long>(o - 1) * s < size + begin;
        };
        expect(in.c == out.c && fits(in.h, out.h, g.kernel_h, g.stride_h, g.pad_top, g.pad_bottom) &&
                   fits(in.w, out.w, g.kernel_w, g.stride_w, g.pad_left, g.pad_right),
               "output shape does not follow from the pooling window");
        break;
    }
    case K::resize_nearest: expect(in.c == out.c, "channels change"); break;
    case K::flatten:
        expect(out.h == 1 && out.w == 1 && static_cast<long long>(out.c) == static_cast<long long>(in.h) * in.w * in.c,
               "a flatten keeps the element count and outputs a vector");
        break;
    case K::pad:
        expect(out.h >= in.h && out.w >= in.w && out.c >= in.c, "a pad makes no axis smaller");
        break;
    case K::rows:
        expect(out.w == 1 && in.c % out.c == 0 && static_cast<long long>(out.h) == static_cast<long long>(in.h) * in.w * (in.c / out.c),
               "rows regroup the map's values");
        break;
    }
}

// Input k of a channel concatenation is written in place, into its slice at channel offset_k, by
// the op producing it when: that op writes channel slices, the value is no graph output and
// appears once among the inputs (and in no other in-place concatenation). Its padding lanes
// (zeros, up to a multiple of 16) then spill into input k + 1's first channels, so input k + 1
// must be written later: by its op running later, or by the concatenation copying it. The
// concatenation's channel stride grows if the last input's padding reaches past it.
inline void GraphModel::plan_in_place_concats() {
    std::vector<int> producer(values_.size(), -1);
    for (std::size_t i = 0; i < ops_.size(); ++i) producer[ops_[i].output] = static_cast<int>(i);
    std::vector<bool> is_output(values_.size(), false);
    for (const GraphOutput& o : outputs_) is_output[o.value] = true;
    for (GraphOp& op : ops_) {
        if (op.kind != GraphOp::Kind::concat_channels) continue;
        const int n = static_cast<int>(op.inputs.size());
        std::vector<int> offset(n, 0);
        for (int k = 1; k < n; ++k) offset[k] = offset[k - 1] + values_[op.inputs[k - 1]].c;
        op.in_place.assign(n, false);
        GraphValue& concat = values_[op.output];
        for (int k = n - 1; k >= 0; --k) { // from the last, so that input k + 1's decision is known
            const int v = op.inputs[k];
            GraphValue& x = values_[v];
            const bool once = std::count(op.inputs.begin(), op.inputs.end(), v) == 1;
            const bool spill_ok = x.c % kChannelAlign == 0 || k == n - 1 || !op.in_place[k + 1] ||
                                  producer[op.inputs[k + 1]] > producer[v];
            if (producer[v] < 0 || !detail::writes_channel_slices(ops_[producer[v]].kind) || is_output[v] || x.within >= 0 ||
                !once || !spill_ok)
                continue;
            op.in_place[k] = true;
            x.within = op.output;
            x.channel_offset = offset[k];
            concat.cstride = std::max(concat.cstride, round_up(offset[k] + round_up(x.c, kChannelAlign), kChannelAlign));
        }
        for (int k = 0; k < n; ++k)
            if (op.in_place[k]) values_[op.inputs[k]].cstride = concat.cstride;
        const GraphValue& last = values_[op.inputs[n - 1]];
        op.zero_padding = !(op.in_place[n - 1] && offset[n - 1] + round_up(last.c, kChannelAlign) >= round_up(concat.c, kChannelAlign));
    }
}

// Assigns every activation a slot: a value takes a free slot (the smallest large enough, else the
// largest, grown) when it is first written, and gives it back after its last reader; the input and
// the outputs keep theirs. A value written in place into a concatenation lives in the concatenation's slot, which
// so lives from the first of its inputs' ops to the last reader of it or of any of them.
inline void GraphModel::plan_memory() {
    const int count = static_cast<int>(values_.size()), never = static_cast<int>(ops_.size());
    const auto root = [&](int v) { return values_[v].within >= 0 ? values_[v].within : v; };
    std::vector<int> last_read(count, -1);
    for (int i = 0; i < never; ++i)
        for (int v : ops_[i].inputs) last_read[root(v)] = std::max(last_read[root(v)], i);
    // Outputs are read after the run; the input is kept from run to run (run() twice computes the same).
    for (const GraphOutput& o : outputs_) last_read[root(o.value)] = never;
    last_read[input_] = never;
    std::vector<std::size_t> capacity; // floats, per slot
    std::vector<int> free_slots;
    const auto take_slot = [&](int v) {
        const std::size_t need = detail::value_floats(values_[v]);
        int best = -1;
        for (int s : free_slots) {
            const bool fits = capacity[s] >= need, best_fits = best >= 0 && capacity[best] >= need;
            if (best < 0 || (fits && (!best_fits || capacity[s] < capacity[best])) || (!fits && !best_fits && capacity[s] > capacity[best]))
                best = s;
        }
        if (best < 0) {
            best = static_cast<int>(capacity.size());
            capacity.push_back(0);
            slot_largest_value_.push_back(v);
        } else {
            free_slots.erase(std::find(free_slots.begin(), free_slots.end(), best));
        }
        if (need > capacity[best]) {
            capacity[best] = need;
            slot_largest_value_[best] = v;
        }
        values_[v].slot = best;
    };
    const auto release_after = [&](int op_index, int v) {
        if (values_[v].constant < 0 && last_read[v] <= op_index) free_slots.push_back(values_[v].slot);
    };
    take_slot(input_);
    for (int i = 0; i < never; ++i) {
        // The output's slot is taken while the inputs still hold theirs: kernels write out of place.
        const int written = root(ops_[i].output);
        const bool first_write = values_[written].slot < 0;
        if (first_write) take_slot(written);
        values_[ops_[i].output].slot = values_[written].slot;
        std::vector<int> read;
        for (int v : ops_[i].inputs) read.push_back(root(v));
        std::sort(read.begin(), read.end());
        read.erase(std::unique(read.begin(), read.end()), read.end());
        for (int v : read)
            if (last_read[v] == i) release_after(i, v);
        if (first_write) release_after(i, written); // written, never read
    }
}

// A GraphModel's scratch memory and its runs.
class GraphExecutor {
public:
    explicit GraphExecutor(std::shared_ptr<const GraphModel> model, const KernelSet& kernels = default_kernel_set(),
                           int threads = 1)
        : model_(std::move(model)), maps_(model_->values().size()), layers_(kernels) {
        layers_.threads = threads;
        for (const GraphOp& op : model_->ops())
            if (op.kind == GraphOp::Kind::conv && op.conv.quantized()) {
                const GraphValue& in = model_->values()[op.inputs[0]];
                layers_.reserve_quantized_input(in.h, in.w, in.c);
            }
        for (int v : model_->slot_largest_value()) {
            const GraphValue& value = model_->values()[v];
            slots_.emplace_back();
            slots_.back().resize(value.h, value.w, value.cstride, 1);
        }
        for (std::size_t v = 0; v < maps_.size(); ++v) {
            const GraphValue& value = model_->values()[v];
            if (value.constant >= 0) maps_[v] = model_->constants()[value.constant].map();
        }
        shape(model_->input_value()); // zeros until set
    }

    const GraphModel& model() const { return *model_; }
    const KernelSet& kernels() const { return layers_.kernels(); }

    // The network input: fill its interior, or call set_input. It keeps its values from run to run.
    const FeatureMap& input() { return maps_[model_->input_value()]; }

    // The input from an 8-bit image of exactly the input's size, normalised as the file says.
    void set_input(const Image& image) {
        const GraphValue& v = model_->input();
        if (image.width != v.w || image.height != v.h)
            throw Error("graph input is " + std::to_string(v.w) + "x" + std::to_string(v.h) + ", the image " +
                        std::to_string(image.width) + "x" + std::to_string(image.height));
        const FeatureMap& in = input();
        const GraphModel& m = *model_;
        for (int y = 0; y < v.h; ++y)
            for (int x = 0; x < v.w; ++x)
                for (int c = 0; c < 3; ++c) in.at(y, x)[c] = (image.pixel(x, y)[m.source_channel[c]] - m.mean[c]) * m.scale[c];
    }

    // Sees the input of every dense conv (float32, or int8: the bytes it reads) in later runs, named
    // by its op: what facet-quantize calibrates a graph on. An empty function: none.
    void set_calibration_observer(CalibrationObserver observer) { layers_.set_observer(std::move(observer)); }

    // Runs every op on the current input.
    void run() {
        for (const GraphOp& op : model_->ops()) run_op(op);
    }

    // Output i as a map, and its elements in the ONNX output's order (into `out`, output_size(i)
    // floats, or a new vector).
    const FeatureMap& output_map(std::size_t i) const { return maps_[model_->outputs().at(i).value]; }
    std::size_t output_size(std::size_t i) const {
        const GraphValue& v = model_->values()[model_->outputs().at(i).value];
        return static_cast<std::size_t>(v.h) * v.w * v.c;
    }
    void read_output(std::size_t i, float* out) const {
        const GraphOutput& o = model_->outputs().at(i);
        const FeatureMap& m = output_map(i);
        for (int y = 0; y < m.h; ++y)
            for (int x = 0; x < m.w; ++x)
                for (int c = 0; c < m.c; ++c) {
                    const std::size_t pixel = static_cast<std::size_t>(y) * m.w + x;
                    out[o.channel_major ? c * static_cast<std::size_t>(m.h) * m.w + pixel : pixel * m.c + c] = m.at(y, x)[c];
                }
    }
    std::vector<float> output(std::size_t i) const {
        std::vector<float> out(output_size(i));
        read_output(i, out.data());
        return out;
    }

    // Floats of scratch memory held (constant from construction on: runs allocate nothing).
    std::size_t scratch_floats() const {
        std::size_t total = 0;
        for (const FeatureBuffer& s : slots_) total += s.capacity_floats();
        return total;
    }

private:
    // Value v's map, its slot shaped for it (or for the concatenation it is a slice of). A slot's
    // ring is zeroed only when its shape changes.
    const FeatureMap& shape(int v) {
        const GraphValue& value = model_->values()[v];
        const int root = value.within >= 0 ? value.within : v;
        const GraphValue& r = model_->values()[root];
        FeatureBuffer& slot = slots_[r.slot];
        slot.resize(r.h, r.w, r.cstride, 1);
        maps_[root] = slot.map();
        maps_[root].c = r.c;
        if (root != v) maps_[v] = maps_[root].channels(value.channel_offset, value.c);
        return maps_[v];
    }

    void run_op(const GraphOp& op) {
        using K = GraphOp::Kind;
        const FeatureMap& out = shape(op.output);
        // An inset op reads the map from pixel (1, 1) on: its ring above and left is the map's
        // first row and column, below and right the map's zero ring (inset 1) or its last row
        // and column (inset 2).
        const FeatureMap& first = maps_[op.inputs[0]];
        const int inset = op.view_inset;
        const FeatureMap in = inset > 0 ? first.pixels(1, 1, first.h - inset, first.w - inset) : first;
        const KernelSet& k = layers_.kernels();
        const int threads = layers_.threads;
        switch (op.kind) {
        case K::conv: layers_.conv_to_floats(op.conv, first, inset, out); break;
        case K::depthwise: k.dwconv_for(op.depthwise)(in, op.depthwise, out, threads); break;
        case K::grouped_conv: k.grouped_conv(in, op.grouped, out, threads); break;
        case K::dense: k.dense(in, op.dense, out, threads); break;
        case K::activation: k.activation(in, op.activation, out, threads); break;
        case K::add: k.add(in, maps_[op.inputs[1]], out, threads); break;
        case K::mul: k.mul(in, maps_[op.inputs[1]], out, threads); break;
        case K::avg_pool: k.avg_pool(in, op.pool, out, threads); break;
        case K::max_pool: k.max_pool(in, op.pool, out, threads); break;
        case K::resize_nearest: k.resize_nearest(in, out, threads); break;
        case K::softmax: k.softmax_channels(in, out, threads); break;
        case K::concat_channels: {
            int first = 0;
            for (std::size_t i = 0; i < op.inputs.size(); ++i) {
                const FeatureMap& part = maps_[op.inputs[i]];
                if (!op.in_place[i]) copy_channels(part, out, first);
                first += part.c;
            }
            if (op.zero_padding) zero_padding_lanes(out);
            break;
        }
        case K::concat_rows: {
            int first = 0;
            for (int v : op.inputs) {
                copy_rows(maps_[v], out, first);
                first += maps_[v].h;
            }
            zero_padding_lanes(out);
            break;
        }
        case K::flatten: flatten_map(in, out, op.channel_major); break;
        case K::rows: regroup_rows(in, out); break;
        case K::pad: pad_end(in, out); break;
        }
    }

    std::shared_ptr<const GraphModel> model_;
    std::vector<FeatureBuffer> slots_;
    std::vector<FeatureMap> maps_; // per value: where it is now (a slot, a slice of one, a constant)
    LayerRunner layers_;           // the kernels and threads; runs the dense convs in their precision
};

} // namespace facet
