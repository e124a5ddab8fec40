// facet kernels for AVX-512F (and AVX512-BF16, used only where cpuid finds it). Compile with -mavx512f -mavx512bw -mavx512bf16 -mavx2 -mfma
// (the facet::facet CMake target does).
#define FACET_WITH_ISA_OBJECTS 1 // this file is one of them
#include "../kernels/kernel_set_impl.hpp"

const facet::KernelSet& facet::kernel_set_avx512() { return simd::make_kernel_set<Isa::avx512>(); }
