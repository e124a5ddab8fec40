// facet: fully connected (dense) layers repacked once, at load, into the layout the SIMD dense
// kernel streams.
//
// A dense layer reads the feature map before it (in_h x in_w x cin, NHWC with a padded channel
// stride) directly: the order in which the checkpoint flattened that map is folded into the
// packing, so the per-frame path has no flatten or transpose copy. MTCNN's R-Net and O-Net were
// trained in Caffe and flatten in (W, H, C) order: PyTorch permutes [N, C, H, W] to [N, W, H, C]
// before view(N, -1), so map element (y, x, c) is input (x * in_h + y) * cin + c of the layer.
#pragma once
#include <cstddef>

#include "conv_weights.hpp"

namespace facet {

// weights: [in_h][in_w][cin][cout_pad], the map's own (row, column, channel) order, so for one
// input value the output channels are one contiguous, aligned run (as in PackedConv). Lanes
// cout..cout_pad-1 hold zero weights and bias.
struct PackedDense {
    int in_h = 0, in_w = 0, cin = 0; // the map one input item is
    int cout = 0, cout_pad = 0;
    Epilogue epilogue;
    AlignedFloats weights, bias, epilogue_data;
};

// From PyTorch's nn.Linear weight [cout][in_w * in_h * cin], whose input was flattened in
// (W, H, C) order (for a 1 x 1 map every order is the same).
inline PackedDense pack_dense(const float* w_whc, const float* bias, int cout, int in_h, int in_w, int cin,
                              Epilogue epilogue) {
    PackedDense p;
    p.in_h = in_h;
    p.in_w = in_w;
    p.cin = cin;
    p.cout = cout;
    p.cout_pad = round_up(cout, kChannelAlign);
    p.epilogue = own_epilogue(epilogue, cout, p.cout_pad, p.epilogue_data);
    const std::size_t inputs = static_cast<std::size_t>(in_h) * in_w * cin;
    p.weights = make_aligned_floats(inputs * p.cout_pad);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.cout_pad));
    for (int o = 0; o < cout; ++o) {
        p.bias[o] = bias ? bias[o] : 0.0f;
        for (int y = 0; y < in_h; ++y)
            for (int x = 0; x < in_w; ++x)
                for (int c = 0; c < cin; ++c) {
                    const std::size_t packed_row = (static_cast<std::size_t>(y) * in_w + x) * cin + c;
                    const std::size_t whc_index = (static_cast<std::size_t>(x) * in_h + y) * cin + c;
                    p.weights[packed_row * p.cout_pad + o] = w_whc[o * inputs + whc_index];
                }
    }
    return p;
}

} // namespace facet
