// facet: a model's conv layers in the precision their file stores them in, the maps between them,
// and the runner that applies them - shared by every model with int8 layers.
//
// A file may mix precisions layer by layer (weights/FORMAT.md, "int8"): a conv is float32 (or
// bf16, run on the bf16 kernels where the CPU has AVX512-BF16), or int8 with its input's
// quantisation. An int8 layer reads uint8: its producer's own map when the producer writes uint8
// for it, else the float map quantised on the way in. Which producer writes uint8 is the model's
// decision (it knows the graph: e.g. RetinaFaceModel::link_quantized_outputs); the runner follows
// what each layer's requantisation says.
#pragma once
#include <functional>
#include <string>
#include <utility>

#include "../core/tensor.hpp"
#include "../io/weights.hpp"
#include "../kernels/conv_weights_bf16.hpp"
#include "../kernels/int8_layout.hpp"
#include "../kernels/kernel_set.hpp"

namespace facet {

// A conv as the file stores it: float32, or int8 with its input's quantisation; `name` is the
// file's, e.g. "body.stage2.3.3".
struct ConvLayer {
    std::string name;
    PackedConv fp32;       // a float32 layer
    PackedConvInt8 int8;   // an int8 layer (int8.k > 0)
    bool quantized() const { return int8.k != 0; }
    int cin() const { return quantized() ? int8.cin : fp32.cin; }
    int cout() const { return quantized() ? int8.cout : fp32.cout; }
    int k() const { return quantized() ? int8.k : fp32.k; }
    int stride() const { return quantized() ? int8.stride : fp32.stride; }
};

struct DepthwiseLayer {
    std::string name;
    PackedDepthwise fp32;
    PackedDepthwiseInt8 int8; // an int8 layer (int8.c > 0); its output is always uint8, for its int8 pointwise
    bool quantized() const { return int8.c != 0; }
    int c() const { return quantized() ? int8.c : fp32.c; }
    int stride() const { return quantized() ? int8.stride : fp32.stride; }
};

// A map between two layers: float, or uint8 where an int8 layer feeds only int8 layers.
struct LayerMap {
    FeatureBuffer floats;
    QuantizedBuffer bytes;
    bool quantized = false;
    int h() const { return quantized ? bytes.map().h : floats.map().h; }
    int w() const { return quantized ? bytes.map().w : floats.map().w; }
    // FeatureBuffer::set_ring_read, for both maps.
    void set_ring_read(bool read) {
        floats.set_ring_read(read);
        bytes.set_ring_read(read);
    }
};

// What a conv reads, as it reads it: a float32 layer its float map, an int8 layer its uint8 map
// (the producer's own, or the float one quantised on the way in; one of the two is set).
struct LayerInput {
    const FeatureMap* floats = nullptr;
    const QuantizedMap* bytes = nullptr;
};

// Called by a LayerRunner with the input of every conv it runs, named as in the file: what
// facet-quantize calibrates a float network on, and corrects an int8 one's biases by (the means
// of what each int8 layer really reads).
using CalibrationObserver = std::function<void(const std::string& layer, const LayerInput& input)>;

namespace detail {

// A conv stored as `<name>.weight` [cout][cin/groups][k][k] (float32 or bf16) and `<name>.bias`
// [cout] (float32). A bf16 conv of a shape with a bf16 kernel also gets its bf16 pairs.
inline PackedConv load_conv(const WeightFile& f, const std::string& name, int cin, int cout, int k, int stride,
                            Epilogue epilogue) {
    const LayerWeights w = read_layer_weights(f, name + ".weight", {cout, cin, k, k});
    const WeightTensor& b = f.tensor(name + ".bias", {cout});
    PackedConv p = pack_conv(w.values.data(), b.data, cout, cin, k, stride, epilogue);
    if (w.bf16) add_bf16_weights(p);
    return p;
}

inline bool stored_int8(const WeightFile& f, const std::string& name) {
    return f.dtype_of(name + ".weight") == DType::int8;
}

// The int8 tensors of conv `name` (weights/FORMAT.md) but its bias: weights [cout][cin/groups][k][k],
// weight_scale [cout], input_scale [1] and input_zero_point [1]. (A graph op names its bias, if any.)
inline Int8ConvSource read_int8_conv_weights(const WeightFile& f, const std::string& name, int cin_per_group, int cout,
                                             int k, Epilogue activation) {
    const WeightTensor& w = f.int8_tensor(name + ".weight");
    if (w.shape != std::vector<int>{cout, cin_per_group, k, k})
        throw Error(f.path() + ": tensor '" + name + ".weight' has shape " + w.shape_string() + ", expected (" +
                    std::to_string(cout) + ", " + std::to_string(cin_per_group) + ", " + std::to_string(k) + ", " +
                    std::to_string(k) + ")");
    const WeightTensor& zp = f.int32_tensor(name + ".input_zero_point");
    if (zp.count != 1) throw Error(f.path() + ": tensor '" + name + ".input_zero_point' must hold one value");
    Int8ConvSource s;
    s.weights = w.int8s;
    s.weight_scale = f.tensor(name + ".weight_scale", {cout}).data;
    s.input = QuantParams{f.tensor(name + ".input_scale", {1}).data[0], zp.ints[0]};
    s.activation = activation;
    return s;
}

// The same with its bias, `<name>.bias` [cout].
inline Int8ConvSource read_int8_conv(const WeightFile& f, const std::string& name, int cin_per_group, int cout, int k,
                                     Epilogue activation) {
    Int8ConvSource s = read_int8_conv_weights(f, name, cin_per_group, cout, k, activation);
    s.bias = f.tensor(name + ".bias", {cout}).data;
    return s;
}

// A conv in the precision the file stores it in.
inline ConvLayer load_layer(const WeightFile& f, const std::string& name, int cin, int cout, int k, int stride,
                            Epilogue epilogue) {
    ConvLayer layer;
    layer.name = name;
    if (stored_int8(f, name))
        layer.int8 = pack_conv_int8(read_int8_conv(f, name, cin, cout, k, epilogue), cout, cin, k, stride, f.path() + ": " + name);
    else
        layer.fp32 = load_conv(f, name, cin, cout, k, stride, epilogue);
    return layer;
}

inline DepthwiseLayer load_depthwise_layer(const WeightFile& f, const std::string& name, int c, int stride,
                                           Epilogue activation) {
    DepthwiseLayer layer;
    layer.name = name;
    if (stored_int8(f, name)) {
        layer.int8 = pack_depthwise_int8(read_int8_conv(f, name, 1, c, 3, activation), c, stride, f.path() + ": " + name);
    } else {
        const LayerWeights w = read_layer_weights(f, name + ".weight", {c, 1, 3, 3});
        const WeightTensor& b = f.tensor(name + ".bias", {c});
        layer.fp32 = pack_depthwise(w.values.data(), b.data, c, stride, activation);
    }
    return layer;
}

} // namespace detail

// How a conv meets the edge of its input: (k - 1) / 2 pixels of zero padding (RetinaFace's convs),
// or none, output (h - k + 1) x (w - k + 1) ("valid": MTCNN's).
enum class Padding { half_kernel, none };

// Runs layers in their precision for one model call: the kernels, the threads, the scratch that
// quantises a float map for an int8 reader, and the calibration observer. Like the detector that
// owns it, one runner serves one thread at a time.
class LayerRunner {
public:
    explicit LayerRunner(const KernelSet& kernels) : kernels_(&kernels) {}

    const KernelSet& kernels() const { return *kernels_; }
    int threads = 1; // threads inside the kernels, set by the owner before each call
    // Sees the input of every later conv; an empty function: none.
    void set_observer(CalibrationObserver observer) { observer_ = std::move(observer); }

    // Runs `w` on `in` into `out`, sized here from the conv's shape.
    void conv(const PackedConv& w, const FeatureMap& in, FeatureBuffer& out) {
        const auto [oh, ow] = conv_out_shape(in, w.k, w.stride);
        out.resize(oh, ow, w.cout);
        kernels_->conv_for(w)(in, w, out.map(), threads);
    }

    // Runs `layer` in its precision on `in` into `out`, uint8 or float as the layer's output says.
    void conv(const ConvLayer& layer, const LayerMap& in, LayerMap& out, Padding padding = Padding::half_kernel) {
        out.quantized = layer.quantized() && layer.int8.requant.quantized_output;
        if (!layer.quantized()) {
            const FeatureMap x = read_region(in.floats.map(), layer.k(), padding);
            const auto [oh, ow] = conv_out_shape(x, layer.k(), layer.stride());
            out.floats.resize(oh, ow, layer.cout());
            return run(layer, x, out.floats.map());
        }
        const QuantizedMap x = read_region(bytes_of(in, layer.int8.input), layer.k(), padding);
        const auto [oh, ow] = conv_out_shape(x, layer.k(), layer.stride());
        if (out.quantized) {
            out.bytes.resize(oh, ow, layer.cout(), layer.int8.requant.output);
            run(layer, x, {&out.bytes.map(), nullptr});
        } else {
            out.floats.resize(oh, ow, layer.cout());
            run(layer, x, {nullptr, &out.floats.map()});
        }
    }

    // The same into a channel slice of a float map (a concatenation), or a slice of a batch.
    void conv_into(const ConvLayer& layer, const LayerMap& in, const FeatureMap& out_slice, Padding padding = Padding::half_kernel) {
        if (!layer.quantized()) return run(layer, read_region(in.floats.map(), layer.k(), padding), out_slice);
        run(layer, read_region(bytes_of(in, layer.int8.input), layer.k(), padding), {nullptr, &out_slice});
    }

    // Runs `layer` (an int8 one with float output) on the float map `in` into the float map `out`
    // (a whole map or a channel slice of one). With `inset` > 0 it reads `in` from pixel (1, 1) on,
    // `inset` pixels fewer a side (graph.hpp's view_inset): that view's ring is `in`'s own pixels,
    // so an int8 layer quantises all of `in` and reads the same view of the bytes.
    void conv_to_floats(const ConvLayer& layer, const FeatureMap& in, int inset, const FeatureMap& out) {
        const auto view = [inset](const auto& map) { return inset > 0 ? map.pixels(1, 1, map.h - inset, map.w - inset) : map; };
        if (!layer.quantized()) return run(layer, view(in), out);
        run(layer, view(quantized(in, layer.int8.input)), {nullptr, &out});
    }

    // Sizes the scratch that quantises a float map for an int8 layer for one of h x w x c, so that
    // later calls on maps no larger allocate nothing.
    void reserve_quantized_input(int h, int w, int c) { quantized_input_.resize(h, w, c, QuantParams{}); }

    void dwconv(const DepthwiseLayer& layer, const LayerMap& in, LayerMap& out) {
        const int oh = conv_out_size(in.h(), 3, layer.stride()), ow = conv_out_size(in.w(), 3, layer.stride());
        out.quantized = layer.quantized();
        if (!layer.quantized()) {
            observe(layer.name, in.floats.map());
            out.floats.resize(oh, ow, layer.c());
            return kernels_->dwconv_for(layer.fp32)(in.floats.map(), layer.fp32, out.floats.map(), threads);
        }
        const QuantizedMap& x = bytes_of(in, layer.int8.input);
        observe(layer.name, x);
        out.bytes.resize(oh, ow, layer.c(), layer.int8.requant.output);
        kernels_->dwconv_int8_for(layer.int8)(x, layer.int8, out.bytes.map(), threads);
    }

private:
    // The output's height and width of a k x k conv of this stride on the map x (float or uint8).
    template <class Map>
    static std::pair<int, int> conv_out_shape(const Map& x, int k, int stride) {
        return {conv_out_size(x.h, k, stride), conv_out_size(x.w, k, stride)};
    }

    // The input of an int8 layer as bytes: the map's own (in `q` by construction: its producer
    // writes uint8 only for readers in that quantisation), or its float values quantised with `q`.
    const QuantizedMap& bytes_of(const LayerMap& in, const QuantParams& q) {
        if (in.quantized) return in.bytes.map();
        return quantized(in.floats.map(), q);
    }

    // `f` quantised with `q`, in the scratch.
    const QuantizedMap& quantized(const FeatureMap& f, const QuantParams& q) {
        quantized_input_.resize(f.h, f.w, f.c, q);
        kernels_->quantize_int8(f, quantized_input_.map(), threads);
        return quantized_input_.map();
    }

    // What a conv of size k reads of `map`: all of it, or for an unpadded 3x3 its interior, on
    // which the padded kernel's border taps read the map's outermost pixels instead of the ring.
    // (1x1 and 2x2 kernels have no padding either way.)
    template <class Map>
    static Map read_region(const Map& map, int k, Padding padding) {
        return padding == Padding::none && k == 3 ? map.pixels(1, 1, map.h - 2, map.w - 2) : map;
    }

    // The one place a conv runs: the observer sees its input, then its kernel.
    void run(const ConvLayer& layer, const FeatureMap& x, const FeatureMap& out) {
        observe(layer.name, x);
        kernels_->conv_for(layer.fp32)(x, layer.fp32, out, threads);
    }
    void run(const ConvLayer& layer, const QuantizedMap& x, const ConvInt8Output& out) {
        observe(layer.name, x);
        kernels_->conv_int8_for(layer.int8)(x, layer.int8, out, threads);
    }

    void observe(const std::string& layer, const FeatureMap& floats) {
        if (observer_) observer_(layer, {&floats, nullptr});
    }
    void observe(const std::string& layer, const QuantizedMap& bytes) {
        if (observer_) observer_(layer, {nullptr, &bytes});
    }

    const KernelSet* kernels_;
    QuantizedBuffer quantized_input_; // a float map quantised for the int8 layer reading it
    CalibrationObserver observer_;
};

} // namespace facet
