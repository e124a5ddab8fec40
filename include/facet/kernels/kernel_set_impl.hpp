// facet: fills a KernelSet with the kernel templates instantiated for one xsimd architecture.
// Included only by include/facet/arch/isa_*.cpp, each compiled with its instruction set's flags.
#pragma once
#include "conv_nhwc.hpp"
#include "dwconv3x3.hpp"
#include "kernel_set.hpp"
#include "upsample.hpp"

namespace facet::simd {

template <class Arch>
const KernelSet& make_kernel_set(const char* isa) {
    static const KernelSet set{
        isa,
        static_cast<int>(Batch<Arch>::size),
        &conv_nhwc<Arch, 3, 1>,
        &conv_nhwc<Arch, 3, 2>,
        &conv_nhwc<Arch, 1, 1>,
        &conv_nhwc<Arch, 2, 1>,
        &dwconv3x3_nhwc<Arch, 1>,
        &dwconv3x3_nhwc<Arch, 2>,
        &upsample_nearest_add_nhwc<Arch>,
    };
    return set;
}

} // namespace facet::simd
