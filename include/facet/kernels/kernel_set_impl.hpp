// facet: fills a KernelSet with the kernel templates instantiated for one instruction set.
// Included by include/facet/arch/isa_*.cpp, each compiled with its instruction set's flags, and
// by kernel_set.hpp for a program built from the headers alone (its own flags' set).
#pragma once
#include "area_resample.hpp"
#include "conv1x1_bf16.hpp"
#include "conv_int8.hpp"
#include "conv_nhwc.hpp"
#include "deform_conv.hpp"
#include "dense.hpp"
#include "dwconv3x3.hpp"
#include "elementwise.hpp"
#include "graph_conv.hpp"
#include "grouped_conv.hpp"
#include "kernel_set.hpp"
#include "maxpool.hpp"
#include "mobilenet_stem.hpp"
#include "pool.hpp"
#include "upsample.hpp"
#include "winograd.hpp"
#include "winograd_f43_bf16.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// The xsimd architecture of each instruction set.
template <Isa> struct ArchOf;
template <> struct ArchOf<Isa::sse2> { using type = xsimd::sse2; };
template <> struct ArchOf<Isa::sse41> { using type = xsimd::sse4_1; };
template <> struct ArchOf<Isa::avx2> { using type = xsimd::fma3<xsimd::avx2>; };
template <> struct ArchOf<Isa::avx512> { using type = xsimd::avx512f; };

// bf16 (kernels/*_bf16.hpp): `kernel` where this is the AVX-512 set and the CPU has AVX512_BF16.
// The object is compiled with -mavx512bf16 (cmake/facetKernels.cmake), which lets only these
// kernels' intrinsics emit BF16 instructions (facet has no __bf16 arithmetic for the compiler to
// vectorise), so nothing else in it needs the extension.
template <Isa I>
ConvKernel bf16_kernel(ConvKernel kernel) {
    return I == Isa::avx512 && cpu_has_avx512_bf16() ? kernel : nullptr;
}

template <Isa I>
const KernelSet& make_kernel_set() {
    using Arch = typename ArchOf<I>::type;
    // int8 (kernels/*_int8.hpp)
    static const Int8KernelTable int8 = int8_kernel_table<Arch>();
    static const KernelSet set{
        isa_name(I),
        static_cast<int>(Batch<Arch>::size),
        &conv_nhwc<Arch, 3, 1>,
        &conv3x3_s1_winograd_nhwc<Arch>,
        &conv_nhwc<Arch, 3, 2>,
        &conv_nhwc<Arch, 1, 1>,
        &conv_nhwc<Arch, 2, 1>,
        &dwconv3x3_nhwc<Arch, 1>,
        &dwconv3x3_nhwc<Arch, 2>,
        &mobilenet_stem_nhwc<Arch>,
        &upsample_nearest_add_nhwc<Arch>,
        &maxpool_nhwc<Arch, 2, 2, FeatureMap>,
        &maxpool_nhwc<Arch, 3, 2, FeatureMap>,
        &dense_nhwc<Arch>,
        &area_row<Arch>,
        &spmm_csr<Arch>,
        &chebyshev_conv<Arch>,
        &deform_conv2d_nhwc<Arch>,
        &grouped_conv_nhwc<Arch>,
        &avg_pool2d_nhwc<Arch>,
        &max_pool2d_nhwc<Arch>,
        &activation_nhwc<Arch>,
        &add_nhwc<Arch>,
        &mul_nhwc<Arch>,
        &softmax_channels_nhwc<Arch>,
        &resize_nearest_nhwc<Arch>,
        // int8 (kernels/*_int8.hpp)
        int8.path,
        int8.conv1x1,
        int8.conv2x2_s1,
        int8.conv3x3_s1,
        int8.conv3x3_s2,
        int8.dwconv3x3_s1,
        int8.dwconv3x3_s2,
        int8.quantize,
        &maxpool_nhwc<Arch, 2, 2, QuantizedMap>,
        &maxpool_nhwc<Arch, 3, 2, QuantizedMap>,
        &area_row_int8<Arch>,
        // bf16 (kernels/*_bf16.hpp)
#if defined(__AVX512BF16__)
        bf16_kernel<I>(&conv1x1_bf16_nhwc),
        bf16_kernel<I>(&conv3x3_s1_winograd_bf16_nhwc),
#else
        nullptr,
        nullptr,
#endif
    };
    return set;
}

} // namespace
} // namespace facet::simd
