// facet: the output size of a ceil-mode max-pool, shared by the kernel's callers and the tests.
#pragma once

namespace facet {

// Output size of a k x k max-pool with stride `stride`, no padding, ceil mode, as PyTorch computes
// it: ceil((in - k) / stride) + 1, so a partial window at the far edge is pooled rather than
// dropped, except that every window must start inside the input. Needs in >= k.
constexpr int maxpool_out_size(int in, int k, int stride) {
    const int out = (in - k + stride - 1) / stride + 1;
    return (out - 1) * stride >= in ? out - 1 : out;
}

} // namespace facet
