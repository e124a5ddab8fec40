// facet: a modulated deformable conv layer (DCNv2 as mmcv's ModulatedDeformConv2dPack builds it):
// a plain conv on the layer's input predicts, per output pixel, where each kernel tap samples and
// how much each sample weighs; the deformable conv then samples there (kernels/deform_conv.hpp).
#pragma once
#include <cmath>
#include <string>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/tensor.hpp"
#include "../kernels/kernel_set.hpp"

namespace facet {

struct ModulatedDeformConv {
    // A plain conv with the deformable conv's kernel size and stride. Its output channels
    // [0, 2 * taps) are the (dy, dx) offsets of each tap (DeformGeometry's order), channels
    // [2 * taps, 3 * taps) the mask logits: the mask is their sigmoid.
    PackedConv offset_mask;
    PackedDeformConv conv;

    static constexpr int offset_mask_channels(int taps) { return 3 * taps; }
};

// The layer from its offset conv and the deformable conv's own weights packed as a plain conv (a
// k x k conv, padding (k - 1) / 2), whose buffers it takes over (as_deformable).
inline ModulatedDeformConv make_modulated_deform_conv(PackedConv offset_mask, PackedConv&& conv) {
    const int taps = conv.k * conv.k;
    if (offset_mask.k != conv.k || offset_mask.stride != conv.stride || offset_mask.cin != conv.cin ||
        offset_mask.cout != ModulatedDeformConv::offset_mask_channels(taps))
        throw Error("the offset conv of a " + std::to_string(conv.k) + "x" + std::to_string(conv.k) +
                    " deformable conv must have its kernel, stride and input, and " +
                    std::to_string(ModulatedDeformConv::offset_mask_channels(taps)) + " outputs");
    return {std::move(offset_mask), as_deformable(std::move(conv))};
}

// out = layer(in); out may be a vector-aligned channel slice. `scratch` receives the predicted
// offsets and mask (it is resized here and can be reused across layers).
inline void run_modulated_deform_conv(const KernelSet& kernels, const ModulatedDeformConv& layer, const FeatureMap& in,
                                      FeatureBuffer& scratch, const FeatureMap& out, int threads) {
    const DeformGeometry& g = layer.conv.geometry;
    const int taps = g.taps();
    scratch.resize(g.out_h(in.h), g.out_w(in.w), layer.offset_mask.cout);
    kernels.conv_for(layer.offset_mask)(in, layer.offset_mask, scratch.map(), threads);
    const FeatureMap mask = scratch.map().channels(2 * taps, taps);
    // The sigmoid in place: 9 values a pixel, a few per cent of the layer's time.
    parallel_for(0, mask.h, threads, [&](int y) {
        for (int x = 0; x < mask.w; ++x)
            for (float* m = mask.at(y, x); m != mask.at(y, x) + taps; ++m) *m = 1.0f / (1.0f + std::exp(-*m));
    });
    kernels.deform_conv2d(in, scratch.map().channels(0, 2 * taps), &mask, layer.conv, out, threads);
}

} // namespace facet
