// facet: convolutions of any geometry (groups, kernel size, stride, padding, dilation per axis),
// their weights repacked once, at load, for the grouped conv kernel (grouped_conv.hpp).
//
// The fixed-shape kernels (conv_nhwc: dense 1x1 / 2x2 / 3x3; dwconv3x3) cover the layers of the
// hand-built models; a graph imported from ONNX can hold any other convolution, which runs here.
#pragma once
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "conv_weights.hpp"

namespace facet {

struct ConvGeometry {
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int dilation_h = 1, dilation_w = 1;
    int groups = 1;

    int out_h(int in_h) const { return window_count(in_h, kernel_h, stride_h, pad_top, pad_bottom, dilation_h); }
    int out_w(int in_w) const { return window_count(in_w, kernel_w, stride_w, pad_left, pad_right, dilation_w); }

    // Output size of a window of `kernel` taps `dilation` apart sliding by `stride` over `size`
    // padded by `begin` and `end` (ONNX's and PyTorch's floor rule); 0 when nothing fits. In 64
    // bits: a file's kernel x dilation must not wrap around into a small window.
    static int window_count(int size, int kernel, int stride, int begin, int end, int dilation) {
        const long long span = static_cast<long long>(size) + begin + end - (static_cast<long long>(dilation) * (kernel - 1) + 1);
        return span < 0 ? 0 : static_cast<int>(span / stride + 1);
    }
};

// Weights in blocks of kChannelAlign (16) output channels. A block's lanes belong to one or more
// whole groups (or to part of one), so together they read one contiguous run of input channels,
// [first, first + count): weights [kernel_h * kernel_w][count][16] hold each lane's weight for each
// of those channels, zero where the channel is in another group than the lane. The kernel then
// works like the dense one (broadcast an input value, FMA it into the block's vectors) over that
// run only: a depthwise-like layer reads 16 channels per block, not all of them.
struct PackedGroupedConv {
    ConvGeometry geometry;
    int cin = 0, cout = 0, cout_pad = 0;
    Epilogue epilogue;
    std::vector<int> block_first, block_count;
    std::vector<std::size_t> block_offset; // floats from `weights` to each block's
    AlignedFloats weights, bias, epilogue_data;
};

// From PyTorch's and ONNX's [cout][cin / groups][kernel_h][kernel_w] layout.
inline PackedGroupedConv pack_grouped_conv(const float* w_oihw, const float* bias, int cout, int cin,
                                           const ConvGeometry& g, Epilogue epilogue) {
    if (g.groups < 1 || cin % g.groups != 0 || cout % g.groups != 0)
        throw Error("grouped conv: " + std::to_string(g.groups) + " groups do not divide " + std::to_string(cin) +
                    " input and " + std::to_string(cout) + " output channels");
    PackedGroupedConv p;
    p.geometry = g;
    p.cin = cin;
    p.cout = cout;
    p.cout_pad = round_up(cout, kChannelAlign);
    p.epilogue = own_epilogue(epilogue, cout, p.cout_pad, p.epilogue_data);
    const int cin_group = cin / g.groups, cout_group = cout / g.groups, taps = g.kernel_h * g.kernel_w;
    const int blocks = p.cout_pad / kChannelAlign;
    std::size_t floats = 0;
    for (int b = 0; b < blocks; ++b) {
        const int first_lane = b * kChannelAlign, last_lane = std::min(first_lane + kChannelAlign, cout) - 1;
        const int first_group = first_lane / cout_group, last_group = last_lane / cout_group;
        p.block_first.push_back(first_group * cin_group);
        p.block_count.push_back((last_group - first_group + 1) * cin_group);
        p.block_offset.push_back(floats);
        floats += static_cast<std::size_t>(taps) * p.block_count.back() * kChannelAlign;
    }
    p.weights = make_aligned_floats(floats);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.cout_pad));
    for (int o = 0; o < cout; ++o) {
        p.bias[o] = bias ? bias[o] : 0.0f;
        const int block = o / kChannelAlign, lane = o % kChannelAlign, group = o / cout_group;
        float* w = p.weights.get() + p.block_offset[block];
        for (int i = 0; i < cin_group; ++i) {
            const int run_index = group * cin_group + i - p.block_first[block];
            for (int t = 0; t < taps; ++t)
                w[(static_cast<std::size_t>(t) * p.block_count[block] + run_index) * kChannelAlign + lane] =
                    w_oihw[(static_cast<std::size_t>(o) * cin_group + i) * taps + t];
        }
    }
    return p;
}

} // namespace facet
