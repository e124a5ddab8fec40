// facet: deformable convolution (DCNv1, modulated DCNv2): its geometry, the layout of its offset
// and mask maps, and its weights repacked once, at load, for the SIMD kernel (deform_conv.hpp).
#pragma once
#include <string>

#include "conv_weights.hpp"

namespace facet {

// Everything torchvision.ops.deform_conv2d takes besides the tensors. The sample point of output
// pixel (oy, ox) and kernel tap (i, j) is (oy * stride_h - pad_h + i * dilation_h + dy,
// ox * stride_w - pad_w + j * dilation_w + dx), read with bilinear interpolation, zero outside.
//
// Offset map: output size, offset_channels() channels; the (dy, dx) of offset group g and tap
// t = i * kw + j are channels 2 * (g * taps() + t) and that + 1, as torchvision orders them.
// Mask map (DCNv2 only): output size, mask_channels() channels; channel g * taps() + t multiplies
// that sample.
struct DeformGeometry {
    int kh = 3, kw = 3;
    int stride_h = 1, stride_w = 1;
    int pad_h = 1, pad_w = 1;
    int dilation_h = 1, dilation_w = 1;
    int groups = 1;        // input and output channels split into this many independent convs
    int offset_groups = 1; // input channels split into this many runs, each with its own offsets

    int taps() const { return kh * kw; }
    int offset_channels() const { return 2 * offset_groups * taps(); }
    int mask_channels() const { return offset_groups * taps(); }
    int out_h(int in_h) const { return (in_h + 2 * pad_h - (dilation_h * (kh - 1) + 1)) / stride_h + 1; }
    int out_w(int in_w) const { return (in_w + 2 * pad_w - (dilation_w * (kw - 1) + 1)) / stride_w + 1; }
};

// weights: [taps][cin][cout_pad], the layout of PackedConv: for one tap and one input channel the
// output channels are one contiguous, aligned run. With groups > 1 the matrix is block-diagonal
// (an output channel's weights for other groups' input channels are zero), so the kernel's GEMM is
// one dense product; it skips the zero blocks only for speed. Lanes cout..cout_pad-1 are zero.
struct PackedDeformConv {
    int cin = 0, cout = 0, cout_pad = 0;
    DeformGeometry geometry;
    Epilogue epilogue;
    AlignedFloats weights, bias, epilogue_data;
};

// From PyTorch's [cout][cin / groups][kh][kw] layout.
inline PackedDeformConv pack_deform_conv(const float* w_oihw, const float* bias, int cout, int cin,
                                         const DeformGeometry& geometry, Epilogue epilogue) {
    const DeformGeometry& g = geometry;
    if (g.groups < 1 || cin % g.groups != 0 || cout % g.groups != 0)
        throw Error("deformable conv: " + std::to_string(g.groups) + " groups do not divide " + std::to_string(cin) +
                    " input and " + std::to_string(cout) + " output channels");
    if (g.offset_groups < 1 || cin % g.offset_groups != 0)
        throw Error("deformable conv: " + std::to_string(g.offset_groups) + " offset groups do not divide " +
                    std::to_string(cin) + " input channels");
    PackedDeformConv p;
    p.cin = cin;
    p.cout = cout;
    p.cout_pad = round_up(cout, kChannelAlign);
    p.geometry = g;
    p.epilogue = own_epilogue(epilogue, cout, p.cout_pad, p.epilogue_data);
    p.weights = make_aligned_floats(static_cast<std::size_t>(g.taps()) * cin * p.cout_pad);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.cout_pad));
    const int cin_group = cin / g.groups, cout_group = cout / g.groups;
    for (int o = 0; o < cout; ++o) {
        p.bias[o] = bias ? bias[o] : 0.0f;
        const int first_input = o / cout_group * cin_group;
        for (int i = 0; i < cin_group; ++i)
            for (int t = 0; t < g.taps(); ++t)
                p.weights[(static_cast<std::size_t>(t) * cin + first_input + i) * p.cout_pad + o] =
                    w_oihw[(static_cast<std::size_t>(o) * cin_group + i) * g.taps() + t];
    }
    return p;
}

// A dense conv packed by pack_conv (groups 1, padding (k - 1) / 2) as the deformable conv with the
// same weights: the layouts are the same, so it takes over the buffers instead of repacking.
inline PackedDeformConv as_deformable(PackedConv&& conv) {
    PackedDeformConv p;
    p.cin = conv.cin;
    p.cout = conv.cout;
    p.cout_pad = conv.cout_pad;
    const int pad = (conv.k - 1) / 2;
    p.geometry = DeformGeometry{conv.k, conv.k, conv.stride, conv.stride, pad, pad, 1, 1, 1, 1};
    p.epilogue = conv.epilogue;
    p.weights = std::move(conv.weights);
    p.bias = std::move(conv.bias);
    p.epilogue_data = std::move(conv.epilogue_data);
    conv = PackedConv{};
    return p;
}

} // namespace facet
