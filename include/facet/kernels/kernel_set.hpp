// facet: the table of SIMD kernels for one instruction set, and the choice among them.
//
// xsimd picks an instruction set from the compiler flags of each translation unit, and facet's
// kernels are templates over the xsimd architecture. A program gets them in one of two ways:
// - Per-ISA objects, for portable binaries (FACET_WITH_ISA_OBJECTS defined; the CMake target
//   facet::facet defines it and adds the objects): include/facet/arch/isa_{sse41,avx2,avx512}.cpp,
//   each compiled with its own flags, fill one KernelSet each, and at run time the best set the CPU
//   supports is used, unless the environment variable FACET_ISA (sse41, avx2, avx512) forces one,
//   which is how the tests run every compiled path on one machine.
// - Headers alone (FACET_WITH_ISA_OBJECTS undefined): this header instantiates one set, for the
//   best instruction set the translation unit's own flags allow (-march=native on an AVX-512 CPU:
//   AVX-512; plain x86-64: SSE2).
// Every kernel has internal linkage (each kernel header wraps them in an anonymous namespace). A
// template instantiated alike in two translation units compiled with different flags would
// otherwise be one weak symbol that the linker takes from either, so that AVX-512 code could reach
// the SSE4.1 path; with internal linkage each object keeps its own copy, in either way and mixed.
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

#include <xsimd/config/xsimd_cpuid.hpp>

#include "../core/error.hpp"
#include "area_row_plan.hpp"
#include "conv_weights.hpp"
#include "deform_conv_weights.hpp"
#include "dense_weights.hpp"
#include "graph_layout.hpp"
#include "int8_layout.hpp"
#include "grouped_conv_weights.hpp"
#include "map_activation.hpp"
#include "pool_geometry.hpp"
#include "stem_layout.hpp"

namespace facet {

using ConvKernel = void (*)(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads);
using DepthwiseKernel = void (*)(const FeatureMap& in, const PackedDepthwise& w, const FeatureMap& out, int threads);
// out = dw2(pw(dw(conv(in)))): a MobileNet's 3x3 stride-2 stem conv, first block and second
// block's depthwise, fused (mobilenet_stem.hpp; scratch: StemScratch).
using MobileNetStemKernel = void (*)(const StemImage& in, const PackedConv& conv, const PackedDepthwise& dw,
                                     const PackedConv& pw, const PackedDepthwise& dw2, float* scratch,
                                     const FeatureMap& out, int threads);
using UpsampleAddKernel = void (*)(const FeatureMap& coarse, const FeatureMap& fine, int threads);
using MaxPoolKernel = void (*)(const FeatureMap& in, const FeatureMap& out, int threads);
using MaxPoolInt8Kernel = void (*)(const QuantizedMap& in, const QuantizedMap& out, int threads); // out keeps in.q
using DenseKernel = void (*)(const FeatureMap& in, const PackedDense& w, const FeatureMap& out, int threads);
// One row of an area resampling from a summed-area table's rows top and bottom, normalised
// (area_row_plan.hpp); columns: plan.entries of scratch; out: plan.padded() values, floats or
// bytes quantised by q.
using AreaRowKernel = void (*)(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& plan,
                               std::uint32_t* columns, float* out);
using AreaRowInt8Kernel = void (*)(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& plan,
                                   std::uint32_t* columns, QuantParams q, std::uint8_t* out);
using SparseProductKernel = void (*)(const SparseMatrix& a, const GraphFeatures& x, const GraphFeatures& out, int threads);
using ChebyshevConvKernel = void (*)(const SparseMatrix& laplacian, const GraphFeatures& x, const PackedChebConv& w,
                                     float* scratch, const GraphFeatures& out, int threads);

// out = epilogue(deform_conv2d(in, offsets, mask) + bias), torchvision's semantics; mask == nullptr
// is DCNv1 (DeformGeometry: the layouts of offsets and mask).
using DeformConvKernel = void (*)(const FeatureMap& in, const FeatureMap& offsets, const FeatureMap* mask,
                                  const PackedDeformConv& w, const FeatureMap& out, int threads);

// The kernels imported graphs add (models/graph.hpp).
using GroupedConvKernel = void (*)(const FeatureMap& in, const PackedGroupedConv& w, const FeatureMap& out, int threads);
using PoolKernel = void (*)(const FeatureMap& in, const PoolGeometry& g, const FeatureMap& out, int threads);
using MapActivationKernel = void (*)(const FeatureMap& in, const MapActivation& a, const FeatureMap& out, int threads);
using BinaryMapKernel = void (*)(const FeatureMap& a, const FeatureMap& b, const FeatureMap& out, int threads);
using MapKernel = void (*)(const FeatureMap& in, const FeatureMap& out, int threads);

// Every kernel of one instruction set: the single place that names them. Models pick kernels by
// layer shape (conv_for, dwconv_for); the tests and benchmarks call each member directly.
struct KernelSet {
    const char* isa;        // "sse41", "avx2", "avx512"
    int vector_floats;      // floats per SIMD register
    ConvKernel conv3x3_s1;  // dense 3x3, stride 1, pad 1, direct
    ConvKernel conv3x3_s1_winograd; // the same by Winograd F(4x4, 3x3); needs PackedConv::winograd
    ConvKernel conv3x3_s2;  // dense 3x3, stride 2, pad 1
    ConvKernel conv1x1;     // pointwise
    ConvKernel conv2x2_s1;  // dense 2x2, stride 1, no padding (MTCNN)
    DepthwiseKernel dwconv3x3_s1;
    DepthwiseKernel dwconv3x3_s2;
    MobileNetStemKernel mobilenet_stem; // conv 3x3 s2, depthwise, pointwise, depthwise s2, row-fused (RetinaFace)
    UpsampleAddKernel upsample_nearest_add;
    MaxPoolKernel maxpool2x2_s2;  // ceil mode, no padding (MTCNN)
    MaxPoolKernel maxpool3x3_s2;  // ceil mode, no padding (MTCNN)
    DenseKernel dense;            // fully connected, over a batch of inputs (MTCNN)
    AreaRowKernel area_row;       // MTCNN's input: area resampling, normalised (area_resample.hpp)
    SparseProductKernel spmm_csr;         // CSR sparse x dense: mesh up-sampling (graph_conv.hpp)
    ChebyshevConvKernel chebyshev_conv;   // Chebyshev graph conv, bias, optional ELU (graph_conv.hpp)
    DeformConvKernel deform_conv2d;       // deformable conv, any geometry (deform_conv.hpp)
    GroupedConvKernel grouped_conv;       // conv of any groups, kernel, stride, padding, dilation (grouped_conv.hpp)
    PoolKernel avg_pool;                  // average pooling, any window (pool.hpp)
    PoolKernel max_pool;                  // max pooling, any window (pool.hpp)
    MapActivationKernel activation;       // an activation on its own (elementwise.hpp)
    BinaryMapKernel add;                  // a + b, b of a's size or one pixel (elementwise.hpp)
    BinaryMapKernel mul;                  // a * b, likewise
    MapKernel softmax_channels;           // softmax over each pixel's channels (elementwise.hpp)
    MapKernel resize_nearest;             // nearest resampling to the output's size (upsample.hpp)
    // int8 (kernels/*_int8.hpp)
    const char* int8_path;                // "avx512-vnni" where the CPU has it, else the vpmaddwd widening
    ConvInt8Kernel conv1x1_int8;          // dense int8 convs, uint8 or float out (conv_int8.hpp)
    ConvInt8Kernel conv2x2_s1_int8;       // no padding (MTCNN)
    ConvInt8Kernel conv3x3_s1_int8;
    ConvInt8Kernel conv3x3_s2_int8;
    DepthwiseInt8Kernel dwconv3x3_s1_int8;
    DepthwiseInt8Kernel dwconv3x3_s2_int8;
    QuantizeKernel quantize_int8;         // float map -> uint8 map
    MaxPoolInt8Kernel maxpool2x2_s2_int8; // as maxpool2x2_s2 and maxpool3x3_s2, on uint8 maps (maxpool.hpp)
    MaxPoolInt8Kernel maxpool3x3_s2_int8;
    AreaRowInt8Kernel area_row_int8;      // as area_row, quantised (an int8 first conv's input)

    // bf16 (kernels/*_bf16.hpp): AVX512-BF16 kernels for layers with bf16 weights (PackedConv::bf16),
    // null unless the set is AVX-512's, compiled for AVX512-BF16, and the CPU has it. Without them a
    // bf16 layer runs on the fp32 kernels with its weights widened.
    ConvKernel conv1x1_bf16;              // pointwise (conv1x1_bf16.hpp)
    ConvKernel conv3x3_s1_winograd_bf16;  // Winograd F(4x4, 3x3), bf16 GEMMs (winograd_f43_bf16.hpp)

    // The dense conv kernel for a packed layer's shape (and precision).
    ConvKernel conv_for(const PackedConv& w) const {
        if (w.bf16) {
            const ConvKernel bf16 = w.k == 1 ? conv1x1_bf16 : conv3x3_s1_winograd_bf16; // add_bf16_weights: only these shapes
            if (bf16) return bf16;
        }
        if (w.k == 1 && w.stride == 1) return conv1x1;
        if (w.k == 2 && w.stride == 1) return conv2x2_s1;
        if (w.k == 3 && w.stride == 1) return w.winograd ? conv3x3_s1_winograd : conv3x3_s1;
        if (w.k == 3 && w.stride == 2) return conv3x3_s2;
        throw Error("no conv kernel for k=" + std::to_string(w.k) + " stride=" + std::to_string(w.stride));
    }
    DepthwiseKernel dwconv_for(const PackedDepthwise& w) const {
        if (w.stride == 1) return dwconv3x3_s1;
        if (w.stride == 2) return dwconv3x3_s2;
        throw Error("no depthwise kernel for stride=" + std::to_string(w.stride));
    }
    // int8 (kernels/*_int8.hpp)
    ConvInt8Kernel conv_int8_for(const PackedConvInt8& w) const {
        if (w.k == 1 && w.stride == 1) return conv1x1_int8;
        if (w.k == 2 && w.stride == 1) return conv2x2_s1_int8;
        if (w.k == 3 && w.stride == 1) return conv3x3_s1_int8;
        if (w.k == 3 && w.stride == 2) return conv3x3_s2_int8;
        throw Error("no int8 conv kernel for k=" + std::to_string(w.k) + " stride=" + std::to_string(w.stride));
    }
    DepthwiseInt8Kernel dwconv_int8_for(const PackedDepthwiseInt8& w) const {
        if (w.stride == 1) return dwconv3x3_s1_int8;
        if (w.stride == 2) return dwconv3x3_s2_int8;
        throw Error("no int8 depthwise kernel for stride=" + std::to_string(w.stride));
    }
};

enum class Isa { sse2, sse41, avx2, avx512 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
    case Isa::sse2: return "sse2";
    case Isa::sse41: return "sse41";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    }
    return "?";
}

inline bool cpu_supports(Isa isa) {
    const auto cpu = xsimd::available_architectures();
    switch (isa) {
    case Isa::sse2: return cpu.sse2;
    case Isa::sse41: return cpu.sse4_1;
    case Isa::avx2: return cpu.fma3_avx2;
    case Isa::avx512:
#if defined(FACET_WITH_ISA_OBJECTS) || defined(__AVX512BW__)
        // The AVX-512 object is built with AVX512BW (-mavx512bf16 implies it; cmake/facetKernels.cmake),
        // as are headers-alone kernels whose flags allow it: the compiler may use it anywhere.
        return cpu.avx512f && cpu.avx512bw;
#else
        return cpu.avx512f;
#endif
    }
    return false;
}

#if defined(FACET_WITH_ISA_OBJECTS)
// Defined in include/facet/arch/isa_*.cpp, one per instruction set.
const KernelSet& kernel_set_sse41();
const KernelSet& kernel_set_avx2();
const KernelSet& kernel_set_avx512();

// The instruction sets this program has kernels for, best last.
inline std::vector<Isa> compiled_isas() { return {Isa::sse41, Isa::avx2, Isa::avx512}; }
#else
// The best instruction set this translation unit's flags allow (x86-64 always has SSE2).
#if defined(__AVX512F__)
constexpr Isa kNativeIsa = Isa::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
constexpr Isa kNativeIsa = Isa::avx2;
#elif defined(__SSE4_1__)
constexpr Isa kNativeIsa = Isa::sse41;
#else
constexpr Isa kNativeIsa = Isa::sse2;
#endif
namespace {
inline const KernelSet& native_kernel_set(); // below, after the kernels
}
inline std::vector<Isa> compiled_isas() { return {kNativeIsa}; }
#endif

inline const KernelSet& kernel_set(Isa isa) {
    if (!cpu_supports(isa)) throw Error(std::string("this CPU does not support ") + isa_name(isa));
#if defined(FACET_WITH_ISA_OBJECTS)
    switch (isa) {
    case Isa::sse41: return kernel_set_sse41();
    case Isa::avx2: return kernel_set_avx2();
    case Isa::avx512: return kernel_set_avx512();
    case Isa::sse2: break;
    }
    throw Error(std::string("no ") + isa_name(isa) + " kernels in this program (it has sse41, avx2 and avx512)");
#else
    if (isa == kNativeIsa) return native_kernel_set();
    throw Error(std::string("no ") + isa_name(isa) + " kernels in this program: built from the headers alone, it has the " +
                isa_name(kNativeIsa) + " kernels its compiler flags allow (link include/facet/arch/isa_*.cpp and define "
                "FACET_WITH_ISA_OBJECTS for the run-time choice)");
#endif
}

// The instruction sets this program has kernels for and this CPU can run, best last.
inline std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : compiled_isas())
        if (cpu_supports(isa)) out.push_back(isa);
    return out;
}

inline Isa parse_isa(const std::string& name) {
    for (Isa isa : {Isa::sse2, Isa::sse41, Isa::avx2, Isa::avx512})
        if (name == isa_name(isa)) return isa;
    throw Error("unknown instruction set '" + name + "' (expected sse2, sse41, avx2 or avx512)");
}

// FACET_ISA if set, else the best the CPU supports. Resolved once per call; cheap.
inline const KernelSet& default_kernel_set() {
    if (const char* forced = std::getenv("FACET_ISA"); forced && *forced) return kernel_set(parse_isa(forced));
    const auto isas = supported_isas();
    if (isas.empty())
        throw Error(std::string("this CPU lacks ") + isa_name(compiled_isas().front()) +
                    ", the least instruction set this program's kernels need");
    return kernel_set(isas.back());
}

} // namespace facet

#if !defined(FACET_WITH_ISA_OBJECTS)
#include "kernel_set_impl.hpp"

namespace facet {
namespace {
inline const KernelSet& native_kernel_set() { return simd::make_kernel_set<kNativeIsa>(); }
} // namespace
} // namespace facet
#endif
