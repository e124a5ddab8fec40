// facet: the window of a pooling layer (average or max), any size, stride and padding.
#pragma once

namespace facet {

struct PoolGeometry {
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    // Average pooling: divide by the window's size clipped to the padded input (true) or to the
    // input itself (false), as ONNX's count_include_pad and PyTorch's AvgPool2d.
    bool count_include_pad = false;
};

} // namespace facet
